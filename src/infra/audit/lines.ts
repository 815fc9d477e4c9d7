import { open } from 'node:fs/promises';
import { parseAuditLine } from '../../core/audit/audit';
import { AuditLogError } from './auditLogError';

/** How much of a log is read at a time; a longer line grows the buffer. */
export const READ_CHUNK = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/**
 * Calls `onLine` with each line's bytes (no terminator), streaming, so a log of
 * any size is read in constant memory. Returns the file's size and whether it
 * ends with a newline. Each read gets a fresh buffer of `chunk` bytes (callers
 * may keep the views they got), so the chunk bounds the memory held by
 * buffers the garbage collector has not freed yet.
 */
export async function forEachLine(
  file: string,
  onLine: (bytes: Buffer, lineNumber: number, offset: number) => void,
  startOffset = 0,
  endOffset = Infinity,
  chunk = READ_CHUNK,
): Promise<{ size: number; endsWithNewline: boolean; lines: number }> {
  const handle = await open(file, 'r');
  try {
    let buffer = Buffer.allocUnsafe(chunk);
    let filled = 0;
    let position = startOffset;
    let lineNumber = 0;
    let lineOffset = startOffset;
    let lastByte = -1;
    for (;;) {
      if (filled === buffer.length) {
        // One line longer than the buffer: grow it.
        const bigger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(bigger, 0, 0, filled);
        buffer = bigger;
      }
      const wanted = Math.min(buffer.length - filled, endOffset - position);
      const { bytesRead } = wanted > 0 ? await handle.read(buffer, filled, wanted, position) : { bytesRead: 0 };
      if (bytesRead === 0) break;
      position += bytesRead;
      const end = filled + bytesRead;
      lastByte = buffer[end - 1]!;
      let start = 0;
      let newline = buffer.indexOf(NEWLINE, filled);
      while (newline !== -1 && newline < end) {
        onLine(buffer.subarray(start, newline), ++lineNumber, lineOffset);
        lineOffset += newline + 1 - start;
        start = newline + 1;
        newline = buffer.indexOf(NEWLINE, start);
      }
      // Keep the unfinished line for the next read; callers got views, so a fresh buffer is needed.
      const rest = end - start;
      const next = Buffer.allocUnsafe(Math.max(chunk, rest * 2));
      buffer.copy(next, 0, start, end);
      buffer = next;
      filled = rest;
    }
    if (filled > 0) onLine(buffer.subarray(0, filled), ++lineNumber, lineOffset);
    return { size: position, endsWithNewline: lastByte === NEWLINE || position === startOffset, lines: lineNumber };
  } finally {
    await handle.close();
  }
}

/** Where a log ends: its last complete event, and what follows it. */
export interface TailState {
  size: number;
  /** seq and hash of the last complete line, the chain continues from them. */
  lastSeq: number;
  lastHash: string;
  /** Bytes after the last newline that are not an event (a torn append). */
  torn?: { offset: number; bytes: Buffer } | undefined;
  /** The file ends with a complete event but no newline (edited by hand). */
  missingNewline: boolean;
}

/** Reads seq and hash leniently: an edited last line still anchors the chain, and verify reports the edit. */
function lineAnchor(text: string): { seq: number; hash: string } | undefined {
  const sealed = parseAuditLine(text);
  if (sealed) return { seq: sealed.seq, hash: sealed.hash };
  try {
    const value = JSON.parse(text) as { seq?: unknown; hash?: unknown };
    if (Number.isInteger(value.seq) && typeof value.hash === 'string' && /^[0-9a-f]{64}$/.test(value.hash)) {
      return { seq: value.seq as number, hash: value.hash };
    }
  } catch {
    // Not JSON: the caller decides between a torn line and a file that is no audit log.
  }
  return undefined;
}

export async function readTail(file: string): Promise<TailState> {
  const own = await open(file, 'r');
  try {
    const { size } = await own.stat();
    if (size === 0) return { size, lastSeq: 0, lastHash: '', missingNewline: false };
    let window = 64 * 1024;
    for (;;) {
      const start = Math.max(0, size - window);
      const buffer = Buffer.alloc(size - start);
      await own.read(buffer, 0, buffer.length, start);
      const endsWithNewline = buffer[buffer.length - 1] === NEWLINE;
      const lastNewline = endsWithNewline ? buffer.length - 1 : buffer.lastIndexOf(NEWLINE);
      const previousNewline = lastNewline <= 0 ? -1 : buffer.lastIndexOf(NEWLINE, lastNewline - 1);
      if (start > 0 && previousNewline === -1) {
        window *= 4;
        continue;
      }
      let torn: TailState['torn'];
      let missingNewline = false;
      let completeEnd = lastNewline;
      if (!endsWithNewline) {
        const trailing = buffer.subarray(lastNewline + 1);
        const anchor = lineAnchor(trailing.toString('utf8'));
        if (anchor) {
          missingNewline = true;
          return { size, lastSeq: anchor.seq, lastHash: anchor.hash, missingNewline };
        }
        torn = { offset: start + lastNewline + 1, bytes: Buffer.from(trailing) };
        completeEnd = lastNewline;
      }
      if (completeEnd < 0) return { size, lastSeq: 0, lastHash: '', torn, missingNewline };
      const lineStart = endsWithNewline ? previousNewline + 1 : buffer.lastIndexOf(NEWLINE, completeEnd - 1) + 1;
      const text = buffer.subarray(lineStart, completeEnd).toString('utf8').replace(/\r$/, '');
      const anchor = lineAnchor(text);
      if (!anchor) {
        throw new AuditLogError(
          'notAuditLog',
          `${file} is not an Agent Lanes audit log: its last line is not an audit event. Run "agent-lanes audit verify ${file}" to see what is wrong, then move the file aside so a new log can start.`,
        );
      }
      return { size, lastSeq: anchor.seq, lastHash: anchor.hash, torn, missingNewline };
    }
  } finally {
    await own.close();
  }
}

/** The repository named by the first event (audit.created), if the first line is one. */
export async function readFirstEvent(file: string): Promise<{ repoKey?: string; parsed: boolean }> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    const newline = text.indexOf('\n');
    if (newline < 0) return { parsed: false };
    try {
      const first = JSON.parse(text.slice(0, newline)) as { action?: unknown; details?: { repoKey?: unknown } };
      const repoKey = first.action === 'audit.created' && typeof first.details?.repoKey === 'string' ? first.details.repoKey : undefined;
      return { ...(repoKey === undefined ? {} : { repoKey }), parsed: true };
    } catch {
      return { parsed: false };
    }
  } finally {
    await handle.close();
  }
}
