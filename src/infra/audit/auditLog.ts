import { createHash, randomBytes } from 'node:crypto';
import { EXTENSION_ACTOR } from '../../core/constants';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { z } from 'zod';
import {
  AuditChainVerifier,
  genesisDetails,
  parseAuditLine,
  sealEvent,
  type AuditEvent,
  type AuditEventInput,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyResult,
} from '../../core/audit/audit';
import type { Actor } from '../../core/change';
import type { DecisionRecord } from '../../core/decision';
import { Emitter } from '../../core/events';
import type { Logger } from '../../core/logger';
import { BUILTIN_SECRET_PATTERNS, mergeSummaries, redactText, redactValue, type SecretPattern } from '../../core/redaction';
import type { RedactionSummary } from '../../core/evidence';
import { writeFileAtomic } from '../storage/fileStore';

export type AuditLogErrorCode = 'foreignRepository' | 'notAuditLog' | 'locked' | 'tooLarge' | 'closed' | 'noRepository';

export class AuditLogError extends Error {
  constructor(
    readonly code: AuditLogErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuditLogError';
  }
}

/** An event line longer than this is refused: large content belongs in a file, with its digest in the event. */
export const MAX_EVENT_BYTES = 1024 * 1024;
const READ_CHUNK = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Calls `onLine` with each line's bytes (no terminator), streaming, so a log of
 * any size is read in constant memory. Returns the file's size and whether it
 * ends with a newline.
 */
export async function forEachLine(
  file: string,
  onLine: (bytes: Buffer, lineNumber: number, offset: number) => void,
  startOffset = 0,
  endOffset = Infinity,
): Promise<{ size: number; endsWithNewline: boolean; lines: number }> {
  const handle = await open(file, 'r');
  try {
    let buffer = Buffer.allocUnsafe(READ_CHUNK);
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
      const next = Buffer.allocUnsafe(Math.max(READ_CHUNK, rest * 2));
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

/**
 * The file's size at a moment no batch is being written (taken under the
 * lock), so a reader never mistakes another process's write in progress for a
 * torn line. Best effort: a copy in a read-only folder has no writer to wait for.
 */
async function settledSize(file: string): Promise<number> {
  try {
    return await withAuditLock(file, async () => (await stat(file)).size, 2_000);
  } catch (error) {
    if (isMissing(error)) throw error;
    return Infinity;
  }
}

/** Verifies a log file by streaming it (a million events take a few seconds). */
export async function verifyAuditFile(file: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const verifier = new AuditChainVerifier(options);
  await forEachLine(file, (bytes) => verifier.pushBytes(bytes), 0, await settledSize(file));
  return verifier.finish();
}

interface TailState {
  size: number;
  /** seq and hash of the last complete line, the chain continues from them. */
  lastSeq: number;
  lastHash: string;
  /** Bytes after the last newline that are not an event (a torn append). */
  torn?: { offset: number; bytes: Buffer };
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

async function readTail(file: string, handle?: FileHandle): Promise<TailState> {
  const own = handle ?? (await open(file, 'r'));
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
    if (!handle) await own.close();
  }
}

async function readFirstEvent(file: string): Promise<{ repoKey?: string; parsed: boolean }> {
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
      return { repoKey, parsed: true };
    } catch {
      return { parsed: false };
    }
  } finally {
    await handle.close();
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Whether a process with this id runs (a lock's owner); EPERM means it runs as someone else. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` holding `<file>.lock`, so two editor windows on worktrees of one
 * repository (which share the log) never interleave or fork the chain. A lock
 * left by a process that no longer runs is taken over.
 */
export async function withAuditLock<T>(file: string, work: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const lockFile = `${file}.lock`;
  const deadline = Date.now() + timeoutMs;
  const token = `${process.pid} ${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lockFile, token, { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readFile(lockFile, 'utf8').catch(() => '');
      const pid = Number(holder.split(' ')[0]);
      const age = await stat(lockFile).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      // An empty lock is a writer that died between creating and filling it.
      const stale = holder === '' ? age > 1000 : !Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && !processAlive(pid));
      if (stale || age > 60_000) {
        await unlink(lockFile).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        throw new AuditLogError(
          'locked',
          `The audit log ${file} is locked by process ${pid || '?'}. If no Agent Lanes window or command is running, delete ${lockFile} and try again.`,
        );
      }
      await sleep(Math.min(50, 2 + attempt * 2));
    }
  }
  try {
    return await work();
  } finally {
    const holder = await readFile(lockFile, 'utf8').catch(() => '');
    if (holder === token) await unlink(lockFile).catch(() => undefined);
  }
}

export interface AuditLogOptions {
  /** The repository the log belongs to (RepoStorage.repoKey); read from the file when omitted. */
  repoKey?: string;
  /** Flush as soon as this many events wait. */
  maxBatch?: number;
  /** Otherwise flush this long after the first waiting event. */
  flushDelayMs?: number;
  lockTimeoutMs?: number;
  /** Secret patterns (built-ins plus policy patterns from compileSecretPatterns). */
  patterns?: readonly SecretPattern[];
  /**
   * Cut a torn last line when opening (recorded as audit.repaired). Default
   * true. When false the line stays until repair() or the first append.
   */
  repairTornTail?: boolean;
  /** Who repairs recorded by this log are attributed to; the extension by default. */
  actor?: Actor;
  logger?: Logger;
  now?: () => Date;
}

export interface RepairResult {
  repaired: boolean;
  removedBytes: number;
  event?: AuditEvent;
  message: string;
}

interface Pending {
  input: AuditEventInput;
  details: Record<string, unknown>;
  resolve: (event: AuditEvent) => void;
  reject: (error: unknown) => void;
}

/**
 * The per-repository audit log writer and reader. Appends are redacted,
 * chained and written in batches with one fsync per batch; append() resolves
 * once its event is on disk.
 */
export class AuditLog {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private lastSeq = 0;
  private lastHash = '';
  private knownSize = 0;
  private needsNewline = false;
  private tornTail: TailState['torn'];
  private closed = false;
  /** Set when open() cut a torn last line. */
  repairedOnOpen: RepairResult | undefined;
  private readonly appended = new Emitter<AuditEvent[]>();
  /** Fires after each durable batch (the sink and the History view listen). */
  readonly onDidAppend = this.appended.event;
  readonly repoKey: string;

  private constructor(
    readonly file: string,
    repoKey: string,
    private readonly options: AuditLogOptions,
  ) {
    this.options = { ...options };
    this.repoKey = repoKey;
  }

  private get patterns(): readonly SecretPattern[] {
    return this.options.patterns ?? BUILTIN_SECRET_PATTERNS;
  }

  /** After a policy refresh: later appends are redacted with these (compileSecretPatterns output). */
  setSecretPatterns(patterns: readonly SecretPattern[]): void {
    this.options.patterns = patterns;
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /**
   * Opens (or creates) a log. A new log starts with `audit.created` naming the
   * repository; an existing one must belong to the same repository.
   */
  static async open(file: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const first = await readFirstEvent(file).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    if (first?.repoKey && options.repoKey && first.repoKey !== options.repoKey) {
      throw new AuditLogError(
        'foreignRepository',
        `The audit log ${file} belongs to another repository (${first.repoKey.slice(0, 12)}…), not this one (${options.repoKey.slice(0, 12)}…). Move it aside; Agent Lanes then starts a new log here.`,
      );
    }
    const repoKey = options.repoKey ?? first?.repoKey;
    if (!repoKey) {
      throw new AuditLogError(
        'noRepository',
        first
          ? `${file} does not start with an "audit.created" event naming its repository, so it is not an Agent Lanes audit log.`
          : `No audit log at ${file}: give the repository key to create one.`,
      );
    }
    const log = new AuditLog(file, repoKey, options);
    await withAuditLock(file, () => log.startUnderLock(), options.lockTimeoutMs);
    return log;
  }

  private get actor(): Actor {
    return this.options.actor ?? EXTENSION_ACTOR;
  }

  private async startUnderLock(): Promise<void> {
    this.repairedOnOpen = await this.syncWithFile(this.options.repairTornTail ?? true);
    // A new log starts at once, so it names its repository before anything else happens.
    if (this.knownSize === 0 && !this.tornTail) await this.writeUnderLock([]);
  }

  /** Re-reads the file's tail; another process may have appended, or a crash may have torn the last line. */
  private async syncWithFile(repairTorn: boolean): Promise<RepairResult | undefined> {
    let tail: TailState;
    try {
      tail = await readTail(this.file);
    } catch (error) {
      if (!isMissing(error)) throw error;
      this.knownSize = 0;
      this.lastSeq = 0;
      this.lastHash = '';
      return undefined;
    }
    this.applyTail(tail);
    return this.tornTail && repairTorn ? this.cutTornTail(this.actor) : undefined;
  }

  private applyTail(tail: TailState): void {
    this.knownSize = tail.size;
    this.lastSeq = tail.lastSeq;
    this.lastHash = tail.lastHash;
    this.needsNewline = tail.missingNewline;
    this.tornTail = tail.torn;
  }

  private async cutTornTail(actor: Actor): Promise<RepairResult> {
    const torn = this.tornTail as NonNullable<TailState['torn']>;
    this.tornTail = undefined;
    const handle = await open(this.file, 'r+');
    try {
      await handle.truncate(torn.offset);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.knownSize = torn.offset;
    this.needsNewline = false;
    const preview = redactText(torn.bytes.toString('utf8').replace(/\0/g, '').slice(0, 200), this.patterns).text;
    const details = {
      reason: 'tornLastLine',
      removedBytes: torn.bytes.length,
      removedSha256: createHash('sha256').update(torn.bytes).digest('hex'),
      removedPreview: preview,
      afterSeq: this.lastSeq,
    };
    const [event] = await this.writeUnderLock([{ actor, action: 'audit.repaired', details }]);
    this.options.logger?.warn(`Audit log ${this.file}: removed a torn last line (${torn.bytes.length} bytes) and recorded audit.repaired.`);
    return {
      repaired: true,
      removedBytes: torn.bytes.length,
      event,
      message: `Removed a torn last line of ${torn.bytes.length} bytes after event ${details.afterSeq}; recorded as event ${event?.seq}.`,
    };
  }

  /**
   * Seals and writes events at the current end of the file, after a genesis
   * event when the file is empty; the caller holds the lock. Returns the
   * events for `inputs` only.
   */
  private async writeUnderLock(inputs: AuditEventInput[]): Promise<AuditEvent[]> {
    // Never write after a torn line: it would end up in the middle of the log.
    if (this.tornTail) await this.cutTornTail(this.actor);
    const genesis = this.knownSize === 0 ? 1 : 0;
    if (genesis) inputs = [{ actor: EXTENSION_ACTOR, action: 'audit.created', details: genesisDetails(this.repoKey) }, ...inputs];
    const events: AuditEvent[] = [];
    const lines: string[] = [];
    let seq = this.lastSeq;
    let prevHash = this.lastHash || '0'.repeat(64);
    for (const input of inputs) {
      const { event, line } = sealEvent({
        seq: ++seq,
        at: input.at ?? this.now().toISOString(),
        actor: input.actor,
        action: input.action,
        changeId: input.changeId,
        details: input.details ?? {},
        policy: input.policy,
        decisionId: input.decisionId,
        prevHash,
      });
      if (Buffer.byteLength(line) > MAX_EVENT_BYTES) {
        throw new AuditLogError(
          'tooLarge',
          `An audit event for "${input.action}" is larger than ${MAX_EVENT_BYTES} bytes; record large content as a file and put its digest in the event details.`,
        );
      }
      prevHash = event.hash;
      events.push(event);
      lines.push(line);
    }
    const text = (this.needsNewline ? '\n' : '') + lines.join('\n') + '\n';
    const data = Buffer.from(text, 'utf8');
    const handle = await open(this.file, 'a', 0o600);
    try {
      await handle.write(data);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    this.knownSize += data.length;
    this.needsNewline = false;
    this.lastSeq = seq;
    this.lastHash = prevHash;
    return events.slice(genesis);
  }

  /**
   * Records one event; resolves with it (seq, hash) once it is on disk. Details
   * are redacted first; what was redacted is counted in `details.redactions`.
   */
  append(input: AuditEventInput): Promise<AuditEvent> {
    if (this.closed)
      return Promise.reject(new AuditLogError('closed', `The audit log ${this.file} is closed; reopen it to record "${input.action}".`));
    const redacted = redactValue(input.details ?? {}, this.patterns);
    const details = redacted.summary.total > 0 ? { ...redacted.value, redactions: redacted.summary } : redacted.value;
    // Checked here so one oversized event cannot fail the batch it would share with others.
    if (Buffer.byteLength(JSON.stringify(details)) > MAX_EVENT_BYTES - 2048) {
      return Promise.reject(
        new AuditLogError(
          'tooLarge',
          `The details of the audit event "${input.action}" are larger than ${MAX_EVENT_BYTES} bytes; record large content as a file and put its digest in the event details.`,
        ),
      );
    }
    return new Promise<AuditEvent>((resolve, reject) => {
      this.pending.push({ input, details, resolve, reject });
      const maxBatch = this.options.maxBatch ?? 256;
      if (this.pending.length >= maxBatch) this.scheduleFlush(0);
      else this.scheduleFlush(this.options.flushDelayMs ?? 5);
    });
  }

  private scheduleFlush(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  /** Writes everything waiting; resolves when it is on disk (or failed). */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.chain;
    this.chain = this.chain.then(() => this.writeBatch(batch));
    return this.chain;
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    try {
      const events = await withAuditLock(
        this.file,
        async () => {
          const size = await stat(this.file).then(
            (s) => s.size,
            (error: unknown) => (isMissing(error) ? -1 : Promise.reject(error)),
          );
          if (size !== this.knownSize) await this.syncWithFile(true);
          return this.writeUnderLock(batch.map((item) => ({ ...item.input, details: item.details })));
        },
        this.options.lockTimeoutMs,
      );
      batch.forEach((item, index) => item.resolve(events[index]!));
      this.appended.fire(events);
    } catch (error) {
      this.options.logger?.error(`Audit log ${this.file}: could not write ${batch.length} event(s): ${(error as Error).message}`);
      for (const item of batch) item.reject(error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    this.appended.dispose();
  }

  get head(): { seq: number; hash: string } {
    return { seq: this.lastSeq, hash: this.lastHash };
  }

  async verify(options: Omit<VerifyOptions, 'expectedRepoKey'> = {}): Promise<VerifyResult> {
    await this.flush();
    return verifyAuditFile(this.file, { ...options, expectedRepoKey: this.repoKey });
  }

  /** Every intact event, and what is wrong with the log (a torn last line, a break in the chain). */
  async readAll(): Promise<{ events: AuditEvent[]; problems: VerifyFailure[] }> {
    await this.flush();
    return readAuditFile(this.file, { expectedRepoKey: this.repoKey });
  }

  /** The events of one change, oldest first (the History view). */
  async eventsFor(changeId: string): Promise<AuditEvent[]> {
    await this.flush();
    return readChangeEvents(this.file, changeId).then((found) => found.events);
  }

  /** Cuts a torn last line and records audit.repaired saying what was cut. */
  async repair(actor: Actor = EXTENSION_ACTOR): Promise<RepairResult> {
    await this.flush();
    return withAuditLock(
      this.file,
      async () => {
        this.applyTail(await readTail(this.file));
        if (!this.tornTail) return { repaired: false, removedBytes: 0, message: 'The last line is complete: nothing to repair.' };
        return this.cutTornTail(actor);
      },
      this.options.lockTimeoutMs,
    );
  }
}

/** Reads every intact event of a log file and verifies it in the same pass. */
export async function readAuditFile(
  file: string,
  options: VerifyOptions = {},
): Promise<{ events: AuditEvent[]; problems: VerifyFailure[] }> {
  const verifier = new AuditChainVerifier(options);
  const events: AuditEvent[] = [];
  await forEachLine(
    file,
    (bytes) => {
      verifier.pushBytes(bytes);
      const event = parseAuditLine(bytes.toString('utf8'));
      if (event) events.push(event);
    },
    0,
    await settledSize(file),
  );
  const result = verifier.finish();
  return { events, problems: result.ok ? [] : [result] };
}

/** A change's events (intact ones) and their lines exactly as stored, so each line's hash can be re-checked. */
export async function readChangeEvents(
  file: string,
  changeId: string,
  endOffset?: number,
): Promise<{ events: AuditEvent[]; lines: string[] }> {
  endOffset ??= await settledSize(file);
  const needle = Buffer.from(`"changeId":${JSON.stringify(changeId)}`);
  const events: AuditEvent[] = [];
  const lines: string[] = [];
  await forEachLine(
    file,
    (bytes) => {
      if (bytes.indexOf(needle) < 0) return;
      const text = bytes.toString('utf8');
      const event = parseAuditLine(text);
      if (event?.changeId === changeId) {
        events.push(event);
        lines.push(text);
      }
    },
    0,
    endOffset,
  );
  return { events, lines };
}

/** Repairs a log file from the command line (no AuditLog open elsewhere in this process). */
export async function repairAuditFile(file: string, actor: Actor): Promise<RepairResult> {
  await stat(file);
  const log = await AuditLog.open(file, { repairTornTail: false, actor }).catch(async (error: unknown) => {
    // A log whose only line is torn has no repository to read: cut it without reopening.
    if (error instanceof AuditLogError && error.code === 'noRepository') return undefined;
    throw error;
  });
  if (!log) {
    const size = (await stat(file)).size;
    if (size === 0) return { repaired: false, removedBytes: 0, message: 'The log is empty: nothing to repair.' };
    throw new AuditLogError(
      'notAuditLog',
      `${file} does not start with an audit event, so it cannot be repaired; it is not an Agent Lanes audit log.`,
    );
  }
  try {
    return await log.repair(actor);
  } finally {
    await log.close();
  }
}

export const CHECKPOINT_FORMAT = 'agent-lanes.audit-checkpoint';

export const AuditCheckpointFileSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  version: z.literal(1),
  file: z.string(),
  count: z.number().int().nonnegative(),
  headHash: z.string(),
  exportedAt: z.string(),
  repoKey: z.string().optional(),
  sha256: z.string(),
  verified: z.boolean(),
  problem: z.object({ problem: z.string(), seq: z.number(), lineNumber: z.number(), message: z.string() }).optional(),
});
export type AuditCheckpointFile = z.infer<typeof AuditCheckpointFileSchema>;

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  } finally {
    await handle.close().catch(() => undefined);
  }
  return hash.digest('hex');
}

/** `endOffset` Infinity: the caller holds the lock already. */
async function checkpointFor(
  file: string,
  name: string,
  now: Date,
  endOffset?: number,
): Promise<{ checkpoint: AuditCheckpointFile; verification: VerifyResult }> {
  const verifier = new AuditChainVerifier();
  await forEachLine(file, (bytes) => verifier.pushBytes(bytes), 0, endOffset ?? (await settledSize(file)));
  const verification = verifier.finish();
  const checkpoint: AuditCheckpointFile = {
    format: CHECKPOINT_FORMAT,
    version: 1,
    file: name,
    count: verification.count,
    headHash: verification.headHash,
    exportedAt: now.toISOString(),
    sha256: await sha256OfFile(file),
    verified: verification.ok,
  };
  if (verification.ok && verification.repoKey) checkpoint.repoKey = verification.repoKey;
  if (!verification.ok) {
    checkpoint.problem = {
      problem: verification.problem,
      seq: verification.seq,
      lineNumber: verification.lineNumber,
      message: verification.message,
    };
  }
  return { checkpoint, verification };
}

/** Reads a checkpoint.json written by exportAudit or a proof bundle. */
export async function readCheckpointFile(file: string): Promise<AuditCheckpointFile> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(
      `Cannot read the checkpoint ${file}: ${(error as Error).message}. Give the checkpoint.json written by "Export Audit Log".`,
    );
  }
  const parsed = AuditCheckpointFileSchema.safeParse(value);
  if (!parsed.success) {
    throw new Error(
      `${file} is not an audit checkpoint (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}). Give the checkpoint.json written by "Export Audit Log".`,
    );
  }
  return parsed.data;
}

/**
 * Copies the log to `destDir/audit.jsonl` (under the log's lock, so no batch
 * is half copied) and writes `destDir/checkpoint.json` with its count and head hash.
 */
export async function exportAudit(
  file: string,
  destDir: string,
  options: { log?: AuditLog; now?: Date } = {},
): Promise<{ logFile: string; checkpointFile: string; checkpoint: AuditCheckpointFile; verification: VerifyResult }> {
  await options.log?.flush();
  await mkdir(destDir, { recursive: true });
  const logFile = join(destDir, 'audit.jsonl');
  const temp = `${logFile}.${randomBytes(4).toString('hex')}.tmp`;
  await withAuditLock(file, () => copyFile(file, temp));
  await rename(temp, logFile);
  const { checkpoint, verification } = await checkpointFor(logFile, basename(logFile), options.now ?? new Date());
  const checkpointFile = join(destDir, 'checkpoint.json');
  await writeFileAtomic(checkpointFile, JSON.stringify(checkpoint, null, 2) + '\n');
  return { logFile, checkpointFile, checkpoint, verification };
}

export interface ProofBundleInput {
  changeId: string;
  /** The change's unified diff. */
  diffText: string;
  evidence: unknown;
  logs: { name: string; text: string }[];
  decisions: DecisionRecord[];
  auditFile: string;
  /** The archive to write (…/something.tar.gz). */
  dest: string;
  log?: AuditLog;
  patterns?: readonly SecretPattern[];
  now?: Date;
}

export interface ProofBundleResult {
  file: string;
  files: string[];
  redaction: RedactionSummary;
  checkpoint: AuditCheckpointFile;
  eventCount: number;
}

function safeLogName(name: string, used: Set<string>): string {
  let base =
    name
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[.-]+/, '')
      .slice(0, 80) || 'log';
  if (!base.endsWith('.log')) base += '.log';
  let candidate = base;
  for (let n = 2; used.has(candidate); n++) candidate = base.replace(/\.log$/, `-${n}.log`);
  used.add(candidate);
  return candidate;
}

function bundleReadme(input: {
  changeId: string;
  createdAt: string;
  files: { name: string; what: string }[];
  redaction: RedactionSummary;
  checkpoint: AuditCheckpointFile;
  eventCount: number;
}): string {
  const kinds = Object.entries(input.redaction.byKind)
    .map(([kind, count]) => `${kind} × ${count}`)
    .join(', ');
  return `# Proof bundle for change ${input.changeId}

Written by Agent Lanes on ${input.createdAt}. Everything here is plain text;
no Agent Lanes or VS Code is needed to read it.

## Files

${input.files.map((file) => `- \`${file.name}\`: ${file.what}`).join('\n')}

## Redaction

Secrets were replaced with \`[REDACTED:kind]\` before anything was written:
${input.redaction.total === 0 ? 'nothing secret-like was found.' : `${input.redaction.total} replacement(s) (${kinds}).`}
The diff hash in \`evidence.json\` is the hash of the original diff, so it
does not match \`change.diff\` where something was redacted.

## Checking the audit events

Each line of \`audit-events.jsonl\` is one event. Its \`hash\` is the SHA-256
(hex) of the event without its \`hash\` member, serialised as RFC 8785
canonical JSON; \`prevHash\` is the hash of the event before it in the full
repository log (which holds every change's events, so the lines here are not
consecutive). \`checkpoint.json\` records the full log at export time:
${input.checkpoint.count} events, head hash \`${input.checkpoint.headHash}\`${input.checkpoint.verified ? ', verified intact' : `, NOT intact: ${input.checkpoint.problem?.message ?? ''}`}.
With the full log, \`npx agent-lanes audit verify audit.jsonl --checkpoint checkpoint.json\`
checks the whole chain. This change has ${input.eventCount} event(s).

Check that no file changed since the export with \`sha256sum -c SHA256SUMS\`.
`;
}

/**
 * Writes one .tar.gz for a change: its diff, evidence, redacted logs, policy
 * decisions, audit events, the log's checkpoint, checksums and a README.
 */
export async function exportProofBundle(input: ProofBundleInput): Promise<ProofBundleResult> {
  await input.log?.flush();
  const patterns = input.patterns ?? BUILTIN_SECRET_PATTERNS;
  const now = input.now ?? new Date();
  const root = `agent-lanes-proof-${input.changeId.replace(/[^A-Za-z0-9._-]+/g, '-')}`;
  const diff = redactText(input.diffText, patterns);
  const evidence = redactValue(input.evidence, patterns);
  const decisions = redactValue(input.decisions, patterns);
  const used = new Set<string>();
  const logs = input.logs.map((entry) => ({ name: `logs/${safeLogName(entry.name, used)}`, ...redactText(entry.text, patterns) }));
  // Under the lock, so the events and the checkpoint describe the same, complete state of the log.
  const { lines, checkpoint } = await withAuditLock(input.auditFile, async () => ({
    lines: (await readChangeEvents(input.auditFile, input.changeId, Infinity)).lines,
    checkpoint: (await checkpointFor(input.auditFile, basename(input.auditFile), now, Infinity)).checkpoint,
  }));
  const redaction = mergeSummaries(diff.summary, evidence.summary, decisions.summary, ...logs.map((entry) => entry.summary));

  const contents: { name: string; text: string; what: string }[] = [
    { name: 'change.diff', text: diff.text, what: 'the change as a unified diff against its base commit (redacted)' },
    {
      name: 'evidence.json',
      text: JSON.stringify(evidence.value, null, 2) + '\n',
      what: 'the evidence record: agent, prompt reference, base and head, files, tasks and tests, flags (redacted)',
    },
    {
      name: 'decisions.json',
      text: JSON.stringify(decisions.value, null, 2) + '\n',
      what: 'every policy decision for the change: action, effect, matched rules with policy@version, explanation',
    },
    ...logs.map((entry) => ({ name: entry.name, text: entry.text, what: 'a task or agent log, redacted' })),
    {
      name: 'audit-events.jsonl',
      text: lines.map((line) => line + '\n').join(''),
      what: "the change's events from the repository's audit log, one JSON event per line, exactly as stored",
    },
    {
      name: 'checkpoint.json',
      text: JSON.stringify(checkpoint, null, 2) + '\n',
      what: "the repository audit log's event count and head hash when this bundle was written",
    },
  ];
  const sums = contents.map((entry) => `${createHash('sha256').update(entry.text, 'utf8').digest('hex')}  ${entry.name}`).join('\n') + '\n';
  const described = [
    { name: 'README.md', what: 'this file' },
    ...contents.map(({ name, what }) => ({ name, what })),
    { name: 'SHA256SUMS', what: 'SHA-256 of every other file, for `sha256sum -c SHA256SUMS`' },
  ];
  const readme = bundleReadme({
    changeId: input.changeId,
    createdAt: now.toISOString(),
    files: described,
    redaction,
    checkpoint,
    eventCount: lines.length,
  });
  const entries = [{ name: 'README.md', text: readme }, ...contents, { name: 'SHA256SUMS', text: sums }];

  await mkdir(dirname(input.dest), { recursive: true });
  const temp = `${input.dest}.${randomBytes(4).toString('hex')}.tmp`;
  const pack = tar.pack();
  const written = pipeline(pack, createGzip(), createWriteStream(temp, { mode: 0o600 }));
  try {
    pack.entry({ name: `${root}/`, type: 'directory', mode: 0o755, mtime: now });
    if (logs.length) pack.entry({ name: `${root}/logs/`, type: 'directory', mode: 0o755, mtime: now });
    for (const entry of entries) {
      await new Promise<void>((resolve, reject) =>
        pack.entry({ name: `${root}/${entry.name}`, mode: 0o644, mtime: now }, Buffer.from(entry.text, 'utf8'), (error) =>
          error ? reject(error) : resolve(),
        ),
      );
    }
    pack.finalize();
    await written;
    await rename(temp, input.dest);
  } catch (error) {
    pack.destroy();
    await written.catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  return { file: input.dest, files: entries.map((entry) => `${root}/${entry.name}`), redaction, checkpoint, eventCount: lines.length };
}
