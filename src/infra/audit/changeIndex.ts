import { open, readFile } from 'node:fs/promises';
import { z } from 'zod';
import { type AuditEvent, parseAuditLine } from '../../core/audit/audit';
import { writeFileAtomic } from '../storage/fileStore';
import { forEachLine } from './lines';

/**
 * Where each change's events lie in an audit log: change id → offset, length
 * and seq of each of its lines (on disk packed in one string per change,
 * `offset.length.seq,…`, decoded only for the change asked for), for the log
 * up to `end`. The last indexed event
 * (`lastOffset`, `lastLength`, `lastSeq`, `lastHash`) anchors the index to the chain: if
 * that line is no longer there, the log was cut or replaced and the index is
 * built again.
 */
const IndexFileSchema = z.object({
  version: z.literal(1),
  end: z.number().int().nonnegative(),
  lastOffset: z.number().int().nonnegative(),
  lastLength: z.number().int().nonnegative(),
  lastSeq: z.number().int().nonnegative(),
  lastHash: z.string(),
  changes: z.record(z.string(), z.string().regex(/^(\d+\.\d+\.\d+)(,\d+\.\d+\.\d+)*$/)),
});
type IndexState = Omit<z.infer<typeof IndexFileSchema>, 'changes'> & {
  /** Packed as on disk until asked for, then [offset, length, seq, …]. */
  changes: Record<string, string | number[]>;
};

const CHANGE_KEY = Buffer.from('"changeId":"');
const SEQ_KEY = Buffer.from('"seq":');
const HASH_KEY = Buffer.from('"hash":"');
/** From the top-level hash's first character to `"seq":`: the hash, then `","prevHash":"`, the previous hash and `",`. */
const HASH_TAIL = 64 + '","prevHash":"'.length + 64 + '",'.length;

function unpack(entries: string | number[] | undefined): number[] {
  if (entries === undefined) return [];
  if (typeof entries !== 'string') return entries;
  return entries.split(/[.,]/).map(Number);
}

function pack(entries: string | number[]): string {
  if (typeof entries === 'string') return entries;
  const parts: string[] = [];
  for (let at = 0; at < entries.length; at += 3) parts.push(`${entries[at]}.${entries[at + 1]}.${entries[at + 2]}`);
  return parts.join(',');
}

const empty = (): IndexState => ({ version: 1, end: 0, lastOffset: 0, lastLength: 0, lastSeq: 0, lastHash: '', changes: {} });

/** What an indexed line must hold: its change and its seq; an entry that does not makes the index stale. */
function lineFields(text: string): { changeId?: unknown; seq?: unknown; hash?: unknown } | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as { changeId?: unknown; seq?: unknown; hash?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An index of a log's events by change, kept beside the log (`<log>.index.json`)
 * and in memory, so the History view reads a change's lines rather than the
 * whole log. It is a cache: missing, unreadable or stale (its anchor line is
 * gone, or an entry no longer holds its change and seq), it is built again
 * from the log. Lines appended since it was written are indexed on the next
 * read. Every event it returns is checked as a scan would: its own hash, its
 * change. (The proof bundle does not use it: it scans the log.)
 */
export class AuditChangeIndex {
  private state: IndexState | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** How many times the index was built from the start of the log (tests and logs). */
  rebuilds = 0;

  constructor(
    private readonly logFile: string,
    readonly indexFile = `${logFile}.index.json`,
  ) {}

  /** A change's intact events, oldest first, and their lines as stored: what a scan up to `endOffset` finds. */
  eventsFor(changeId: string, endOffset: number): Promise<{ events: AuditEvent[]; lines: string[] }> {
    const run = this.queue.then(() => this.read(changeId, endOffset));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async read(changeId: string, endOffset: number): Promise<{ events: AuditEvent[]; lines: string[] }> {
    for (let attempt = 0; ; attempt++) {
      const state = await this.current(endOffset, attempt > 0);
      const entries = unpack(state.changes[changeId]);
      if (entries.length) state.changes[changeId] = entries;
      const found = await this.readEntries(changeId, entries);
      if (found) return found;
      // An entry no longer holds its event: the log changed under the index. Once more from the start.
      this.state = undefined;
      if (attempt > 0) throw new Error(`The audit log ${this.logFile} changed while its index was being built; try again.`);
    }
  }

  /** The index, loaded, checked against the log and brought up to `endOffset`. */
  private async current(endOffset: number, fromScratch: boolean): Promise<IndexState> {
    let state = fromScratch ? undefined : (this.state ?? (await this.load()));
    if (state && !(await this.anchored(state, endOffset))) state = undefined;
    if (!state) {
      this.rebuilds++;
      state = empty();
    }
    const before = state.end;
    await this.catchUp(state, endOffset);
    this.state = state;
    // A cache: a write that fails costs a rebuild next session, nothing else.
    if (state.end !== before) {
      const changes = Object.fromEntries(Object.entries(state.changes).map(([id, entries]) => [id, pack(entries)]));
      await writeFileAtomic(this.indexFile, JSON.stringify({ ...state, changes })).catch(() => undefined);
    }
    return state;
  }

  private async load(): Promise<IndexState | undefined> {
    try {
      const parsed = IndexFileSchema.safeParse(JSON.parse(await readFile(this.indexFile, 'utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether the index's last line is still where it was, the same event (seq and hash): the log only grew since. */
  private async anchored(state: IndexState, endOffset: number): Promise<boolean> {
    if (state.end === 0) return true;
    if (state.end > endOffset || !state.lastHash) return false;
    const handle = await open(this.logFile, 'r');
    try {
      const length = state.lastLength + 1;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, state.lastOffset);
      if (bytesRead !== length || buffer[length - 1] !== 0x0a) return false;
      const fields = lineFields(buffer.subarray(0, length - 1).toString('utf8'));
      return fields?.seq === state.lastSeq && fields.hash === state.lastHash;
    } finally {
      await handle.close();
    }
  }

  /**
   * Indexes the complete lines from the index's end to `endOffset` (a torn last
   * line waits for its newline). Lines are canonical JSON with sorted keys, so
   * they are read without parsing: seq is the last key, the top-level hash the
   * last `"hash":"`, and a top-level changeId the first `"changeId":"` (only
   * action, actor and at come before it). A line that is not canonical is
   * caught when it is read (readEntries) or anchors the index (anchored).
   */
  private async catchUp(state: IndexState, endOffset: number): Promise<void> {
    if (endOffset <= state.end) return;
    let anchor: { bytes: Buffer; offset: number; seq: number; hashAt: number } | undefined;
    await forEachLine(
      this.logFile,
      (bytes, _line, offset) => {
        const next = offset + bytes.length + 1;
        if (next > endOffset) return;
        state.end = next;
        // `…,"hash":"<64 hex>","prevHash":"<64 hex>","seq":<digits>}`, read from the end.
        const close = bytes[bytes.length - 1] === 0x0d ? bytes.length - 2 : bytes.length - 1;
        if (bytes[close] !== 0x7d) return;
        let seq = 0;
        let digit = close - 1;
        for (let place = 1; digit >= 0 && bytes[digit]! >= 0x30 && bytes[digit]! <= 0x39; digit--, place *= 10)
          seq += (bytes[digit]! - 0x30) * place;
        const seqAt = digit + 1 - SEQ_KEY.length;
        if (digit === close - 1 || seqAt < 0 || !bytes.subarray(seqAt, digit + 1).equals(SEQ_KEY)) return;
        const changeAt = bytes.indexOf(CHANGE_KEY);
        if (changeAt >= 0) {
          const start = changeAt + CHANGE_KEY.length;
          const end = bytes.indexOf(0x22, start);
          const changeId = end > start ? bytes.toString('utf8', start, end) : '';
          if (changeId && !changeId.includes('\\')) {
            const entries = (state.changes[changeId] = unpack(state.changes[changeId]));
            entries.push(offset, bytes.length, seq);
          }
        }
        const hashAt = seqAt - HASH_TAIL;
        if (hashAt >= HASH_KEY.length) anchor = { bytes, offset, seq, hashAt };
      },
      state.end,
      endOffset,
    );
    // The last event anchors the index, if it has the canonical shape (anchored() checks it by parsing).
    if (anchor && anchor.bytes.subarray(anchor.hashAt - HASH_KEY.length, anchor.hashAt).equals(HASH_KEY)) {
      state.lastOffset = anchor.offset;
      state.lastLength = anchor.bytes.length;
      state.lastSeq = anchor.seq;
      state.lastHash = anchor.bytes.toString('latin1', anchor.hashAt, anchor.hashAt + 64);
    }
  }

  /**
   * The entries' events, checked; undefined when an entry no longer holds its
   * seq (the log changed) or holds another change (the index was edited).
   */
  private async readEntries(changeId: string, entries: readonly number[]): Promise<{ events: AuditEvent[]; lines: string[] } | undefined> {
    const events: AuditEvent[] = [];
    const lines: string[] = [];
    if (!entries.length) return { events, lines };
    const handle = await open(this.logFile, 'r');
    try {
      const reads: Promise<{ text: string; seq: number; complete: boolean }>[] = [];
      for (let at = 0; at < entries.length; at += 3) {
        const [offset, length, seq] = [entries[at]!, entries[at + 1]!, entries[at + 2]!];
        const buffer = Buffer.alloc(length);
        reads.push(
          handle.read(buffer, 0, length, offset).then(({ bytesRead }) => ({
            text: buffer.subarray(0, bytesRead).toString('utf8'),
            seq,
            complete: bytesRead === length,
          })),
        );
      }
      for (const { text, seq, complete } of await Promise.all(reads)) {
        const fields = lineFields(text);
        if (!complete || fields?.seq !== seq) return undefined;
        if (fields.changeId !== changeId) {
          // No top-level change: "changeId" was a key inside the details, not this change's event.
          if (fields.changeId === undefined) continue;
          return undefined;
        }
        // An event whose own hash does not match (edited) is left out, as a scan leaves it out; verify names it.
        const event = parseAuditLine(text);
        if (event?.changeId === changeId) {
          events.push(event);
          lines.push(text);
        }
      }
    } finally {
      await handle.close();
    }
    return { events, lines };
  }
}
