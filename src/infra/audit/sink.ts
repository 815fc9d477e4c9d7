import { createHash } from 'node:crypto';
import { open, readFile, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { z } from 'zod';
import { LaneError } from '../../core/errors';
import { Emitter } from '../../core/events';
import type { Logger } from '../../core/logger';
import { writeFileAtomic } from '../storage/fileStore';
import { createLockFile, inspectLockFile, newLockToken, releaseLockFile } from './lock';

const gzip = promisify(gzipCallback);

/**
 * Ships a repository's audit log to an org endpoint (agentLanes.audit.sinkEndpoint).
 *
 * The log itself is the durable outbox; `sink-cursor.json` next to it holds the
 * last event the sink acknowledged. Each POST carries the next events after
 * the cursor as a gzip JSON array (the stored lines, byte for byte, so the sink
 * can check every hash); a 2xx answer acknowledges the whole batch and moves
 * the cursor, which is written to disk before the next batch is read. A batch
 * that got no 2xx is sent again after a back-off, so a sink that stored a
 * batch but whose answer was lost sees it twice: the sink deduplicates by the
 * event's `hash` (or repository + `seq`). Nothing acknowledged is ever sent again.
 */

const SINK_CURSOR_FILE = 'sink-cursor.json';
const LOCK_REFRESH_MS = 30_000;
const LOCK_STALE_MS = 15 * 60_000;

export interface AuditSinkOptions {
  endpoint: string;
  auditFile: string;
  /** The repository key, sent with every batch and stored in the cursor. */
  repoKey: string;
  /** Defaults to sink-cursor.json next to the audit file. */
  cursorFile?: string;
  batchSize?: number;
  maxBatchBytes?: number;
  timeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often to look for events appended by another process. */
  pollIntervalMs?: number;
  /** How a batch goes on the wire; the default sends the stored lines as a JSON array. */
  transport?: SinkTransport;
  /** A value for the Authorization header (for example "Bearer …" from SecretStorage). */
  getAuthorization?: () => Promise<string | undefined>;
  logger?: Logger;
  random?: () => number;
  /**
   * The log no longer continues the chain the sink acknowledged, or holds a
   * line that is not an intact event: called once per break (the caller records it).
   */
  onChainBroken?: (problem: SinkChainBreak) => void;
}

/**
 * How a batch of sealed log lines goes on the wire: the org sink takes them as
 * stored, an OTLP collector as log records. The sink gzips the body, and keeps
 * the cursor, the back-off and the lock the same whatever the transport.
 */
export interface SinkTransport {
  /** Names the sender in the log: "Audit sink", "OTLP log export". */
  readonly label: string;
  readonly contentType: string;
  /** The request body for these lines (each a sealed event, as stored). */
  encode(lines: readonly string[]): Uint8Array | Promise<Uint8Array>;
}

const JSON_ARRAY_TRANSPORT: SinkTransport = {
  label: 'Audit sink',
  contentType: 'application/json',
  encode: (lines) => Buffer.from(`[${lines.join(',')}]`, 'utf8'),
};

/** Why nothing more is shipped: the chain the sink holds does not go on in the log. */
export interface SinkChainBreak {
  /**
   * rewritten: the event at the acknowledged seq has another hash; missing: the log
   * no longer holds it; notIntact: a line after the cursor is not an intact event.
   */
  problem: 'rewritten' | 'missing' | 'notIntact';
  /** The last seq the sink acknowledged. */
  acknowledgedSeq: number;
  /** Byte offset in the log where the break shows. */
  offset: number;
  message: string;
}

/** broken: the log does not continue the chain the sink holds; nothing more is sent until it does. */
type SinkState = 'idle' | 'sending' | 'waiting' | 'passive' | 'broken' | 'stopped';

export interface SinkStatus {
  state: SinkState;
  endpoint: string;
  /** The last seq the sink acknowledged (0: none yet). */
  acknowledgedSeq: number;
  consecutiveFailures: number;
  lastError?: string | undefined;
  nextAttemptAt?: string;
}

const CursorSchema = z.object({
  version: z.literal(1),
  endpoint: z.string(),
  repoKey: z.string(),
  seq: z.number().int().nonnegative(),
  hash: z.string(),
  /** Byte offset just after the acknowledged event's line. */
  offset: z.number().int().nonnegative(),
  updatedAt: z.string(),
});
type Cursor = z.infer<typeof CursorSchema>;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Which setting an endpoint comes from, for the words of its errors. */
export interface EndpointSetting {
  /** "audit sink endpoint" */
  what: string;
  /** "agentLanes.audit.sinkEndpoint" */
  setting: string;
  /** An example value. */
  example: string;
}

const AUDIT_SINK_SETTING: EndpointSetting = {
  what: 'audit sink endpoint',
  setting: 'agentLanes.audit.sinkEndpoint',
  example: 'https://audit.example.com/v1/events',
};

/** HTTPS, or plain HTTP to this machine only; no credentials in the URL. */
export function validateSinkEndpoint(value: string, named: EndpointSetting = AUDIT_SINK_SETTING): { url: URL } | { error: string } {
  const { what, setting, example } = named;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return {
      error: `The ${what} "${value}" is not a URL. Set ${setting} to an https:// address, for example ${example}.`,
    };
  }
  if (url.username || url.password) {
    return {
      error: `The ${what} contains a user name or password. Remove them from ${setting}; Agent Lanes sends the token from its secret storage instead.`,
    };
  }
  const loopback = LOOPBACK.has(url.hostname) || /^127(?:\.\d{1,3}){3}$/.test(url.hostname);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return { url };
  if (url.protocol === 'http:') {
    return {
      error: `The ${what} ${url.origin} uses plain HTTP. Use https://, or http:// only for a receiver on this machine (localhost).`,
    };
  }
  return { error: `The ${what} must be an https:// URL, not ${url.protocol}//. Change ${setting}.` };
}

/** Why a batch was not acknowledged: no answer in time, no connection, or an answer other than 2xx. */
type SinkHttpErrorKind = 'sinkTimeout' | 'sinkUnreachable' | 'sinkRefused';

class SinkHttpError extends LaneError {
  constructor(
    kind: SinkHttpErrorKind,
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(kind, message);
  }
}

interface FoundEvent {
  line?: BatchLine;
  /** Where the line starts, or where the intact lines end. */
  offset: number;
  lastSeq: number;
  notIntactAt?: number;
}

interface ReadLines {
  lines: BatchLine[];
  /** Offset of the first line that is not an intact event, when one was met. */
  notIntactAt?: number;
}

interface BatchLine {
  text: string;
  seq: number;
  hash: string;
  prevHash: string;
  /** Offset just after this line's newline. */
  end: number;
}

const HASH_MEMBER = ',"hash":"';

/**
 * seq, hash and prevHash of a line the log sealed, when the line is one: its
 * hash must be the SHA-256 of the line without its hash member, so a piece of
 * a line, an edited line or a line from another format is refused.
 */
function sealedLine(text: string): { seq: number; hash: string; prevHash: string } | undefined {
  if (!text.startsWith('{"')) return undefined;
  // prevHash and seq close every sealed line; the top-level hash is the last "hash" member before them.
  const tail = /,"prevHash":"([0-9a-f]{64})","seq":(\d+)\}$/.exec(text);
  if (!tail) return undefined;
  const at = text.lastIndexOf(HASH_MEMBER, tail.index);
  const hash = at < 0 ? '' : text.slice(at + HASH_MEMBER.length, at + HASH_MEMBER.length + 64);
  if (!/^[0-9a-f]{64}$/.test(hash) || text[at + HASH_MEMBER.length + 64] !== '"') return undefined;
  const stripped = text.slice(0, at) + text.slice(at + HASH_MEMBER.length + 65);
  if (createHash('sha256').update(stripped, 'utf8').digest('hex') !== hash) return undefined;
  return { seq: Number(tail[2]), hash, prevHash: tail[1]! };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

export class AuditSink {
  private readonly url: URL;
  private readonly transport: SinkTransport;
  private readonly cursorFile: string;
  private readonly lockFile: string;
  private readonly lockToken = newLockToken();
  private cursor: Cursor | undefined;
  private batchSize: number;
  private running: Promise<void> | undefined;
  private stopController = new AbortController();
  private wake: (() => void) | undefined;
  private holdsLock = false;
  private current: SinkStatus;
  private readonly changed = new Emitter<SinkStatus>();
  readonly onDidChangeStatus = this.changed.event;

  constructor(private readonly options: AuditSinkOptions) {
    const checked = validateSinkEndpoint(options.endpoint);
    if ('error' in checked) throw new Error(checked.error);
    this.url = checked.url;
    this.transport = options.transport ?? JSON_ARRAY_TRANSPORT;
    this.cursorFile = options.cursorFile ?? join(dirname(options.auditFile), SINK_CURSOR_FILE);
    this.lockFile = `${this.cursorFile}.lock`;
    this.batchSize = options.batchSize ?? 500;
    this.current = { state: 'idle', endpoint: this.url.href, acknowledgedSeq: 0, consecutiveFailures: 0 };
  }

  get status(): SinkStatus {
    return { ...this.current };
  }

  private setStatus(patch: Partial<SinkStatus>): void {
    this.current = { ...this.current, ...patch };
    if (patch.state && patch.state !== 'waiting') delete this.current.nextAttemptAt;
    this.changed.fire(this.status);
  }

  /** Starts shipping in the background; safe to call twice. */
  start(): void {
    if (this.running) return;
    this.stopController = new AbortController();
    this.running = this.loop().catch((error: unknown) => {
      this.options.logger?.error(`${this.transport.label} stopped: ${(error as Error).message}`);
      this.setStatus({ state: 'stopped', lastError: (error as Error).message });
    });
  }

  /** New events were appended: look now instead of at the next poll. */
  notify(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    this.wake?.();
    await this.running;
    this.running = undefined;
    await this.releaseLock();
    this.setStatus({ state: 'stopped' });
  }

  private async loadCursor(): Promise<Cursor> {
    const fresh: Cursor = {
      version: 1,
      endpoint: this.url.href,
      repoKey: this.options.repoKey,
      seq: 0,
      hash: '',
      offset: 0,
      updatedAt: new Date().toISOString(),
    };
    const text = await readFile(this.cursorFile, 'utf8').catch(() => undefined);
    if (text === undefined) return fresh;
    let parsed: ReturnType<typeof CursorSchema.safeParse>;
    try {
      parsed = CursorSchema.safeParse(JSON.parse(text));
    } catch {
      parsed = CursorSchema.safeParse(undefined);
    }
    if (!parsed.success) {
      this.options.logger?.warn(
        `${this.transport.label}: ${this.cursorFile} is unreadable; sending the whole log again (the receiver drops duplicates by hash).`,
      );
      return fresh;
    }
    // A different sink or a different repository's log has seen none of these events.
    if (parsed.data.endpoint !== this.url.href || parsed.data.repoKey !== this.options.repoKey) return fresh;
    return parsed.data;
  }

  private async tryLock(): Promise<boolean> {
    if (this.holdsLock) return true;
    if (await createLockFile(this.lockFile, this.lockToken)) {
      this.holdsLock = true;
      return true;
    }
    const { ageMs, abandoned } = await inspectLockFile(this.lockFile);
    if (abandoned || ageMs > LOCK_STALE_MS) {
      await unlink(this.lockFile).catch(() => undefined);
      return this.tryLock();
    }
    return false;
  }

  private lockTouchedAt = 0;

  /** A held lock is refreshed, so one left by a process whose pid was reused still goes stale. */
  private async touchLock(): Promise<void> {
    if (Date.now() - this.lockTouchedAt < LOCK_REFRESH_MS) return;
    this.lockTouchedAt = Date.now();
    const now = new Date();
    await utimes(this.lockFile, now, now).catch(() => undefined);
  }

  private async releaseLock(): Promise<void> {
    if (!this.holdsLock) return;
    this.holdsLock = false;
    await releaseLockFile(this.lockFile, this.lockToken);
  }

  private async idle(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.stopController.signal;
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
      if (signal.aborted) done();
    });
    this.wake = undefined;
  }

  private async loop(): Promise<void> {
    const signal = this.stopController.signal;
    const poll = this.options.pollIntervalMs ?? 5_000;
    while (!signal.aborted) {
      // One sender per log: another window on a worktree of the same repository may be shipping it.
      if (!(await this.tryLock())) {
        this.cursor = undefined;
        if (this.current.state !== 'passive') this.setStatus({ state: 'passive' });
        await this.idle(poll);
        continue;
      }
      await this.touchLock();
      this.cursor ??= await this.loadCursor();
      if (this.current.acknowledgedSeq !== this.cursor.seq) this.setStatus({ acknowledgedSeq: this.cursor.seq });
      const { lines: batch, broken } = await this.readBatch(this.cursor);
      // A break is reported once what comes before it has been shipped.
      if (broken && batch.length === 0) this.reportBroken(broken);
      else if (!broken) this.clearBroken();
      if (batch.length === 0) {
        const state = broken ? 'broken' : 'idle';
        if (this.current.state !== state) this.setStatus({ state, ...(broken ? { lastError: broken.message } : {}) });
        await this.idle(poll);
        continue;
      }
      this.setStatus({ state: 'sending' });
      try {
        await this.post(batch);
      } catch (error) {
        if (signal.aborted) break;
        await this.backOff(error as Error);
        continue;
      }
      const last = batch[batch.length - 1]!;
      this.cursor = { ...this.cursor, seq: last.seq, hash: last.hash, offset: last.end, updatedAt: new Date().toISOString() };
      await writeFileAtomic(this.cursorFile, JSON.stringify(this.cursor, null, 2) + '\n');
      this.setStatus({ acknowledgedSeq: last.seq, consecutiveFailures: 0, lastError: undefined });
      this.batchSize = this.options.batchSize ?? 500;
    }
  }

  private async backOff(error: Error): Promise<void> {
    const failures = this.current.consecutiveFailures + 1;
    if (error instanceof SinkHttpError && error.status === 413 && this.batchSize > 1) {
      this.batchSize = Math.max(1, Math.floor(this.batchSize / 2));
      this.setStatus({ consecutiveFailures: failures, lastError: error.message });
      return;
    }
    const min = this.options.minBackoffMs ?? 1_000;
    const max = this.options.maxBackoffMs ?? 5 * 60_000;
    const ceiling = Math.min(max, min * 2 ** Math.min(failures - 1, 30));
    // Jitter spreads the retries of many developers after an outage of the org sink.
    let delay = ceiling / 2 + (this.options.random ?? Math.random)() * (ceiling / 2);
    if (error instanceof SinkHttpError && error.retryAfterMs !== undefined) delay = Math.min(max, Math.max(delay, error.retryAfterMs));
    this.options.logger?.warn(`${this.transport.label} ${this.url.origin}: ${error.message}; retrying in ${Math.round(delay)} ms.`);
    this.setStatus({
      state: 'waiting',
      consecutiveFailures: failures,
      lastError: error.message,
      nextAttemptAt: new Date(Date.now() + delay).toISOString(),
    });
    await sleep(delay, this.stopController.signal);
    await this.touchLock();
  }

  private brokenKey: string | undefined;

  /** A break is warned about and handed to onChainBroken once, however often the loop meets it again. */
  private reportBroken(broken: SinkChainBreak): void {
    const key = `${broken.problem}:${broken.offset}`;
    if (key === this.brokenKey) return;
    this.brokenKey = key;
    this.options.logger?.error(`${this.transport.label} ${this.url.origin}: ${broken.message}`);
    this.setStatus({ lastError: broken.message });
    this.options.onChainBroken?.(broken);
  }

  private clearBroken(): void {
    if (this.brokenKey === undefined) return;
    this.brokenKey = undefined;
    this.options.logger?.info(`${this.transport.label} ${this.url.origin}: the audit log continues the shipped chain again.`);
    this.setStatus({ lastError: undefined });
  }

  /**
   * The next complete lines after the cursor; a torn last line is left for
   * repair. When the log no longer continues at the cursor's offset (it was
   * replaced, or rewritten with other line lengths), the place is found again
   * by seq; an event there with another hash, or no such event, is a break.
   */
  private async readBatch(cursor: Cursor): Promise<{ lines: BatchLine[]; broken?: SinkChainBreak }> {
    let read = await this.readLinesFrom(cursor.offset);
    if (!(await this.continuesAt(cursor, read))) {
      const found = await this.findEvent(cursor.seq);
      if (found.line?.hash !== cursor.hash) return { lines: [], broken: this.breakAt(cursor, found) };
      if (found.line.end !== cursor.offset) {
        this.options.logger?.warn(
          `${this.transport.label}: the log no longer continues at byte ${cursor.offset}; event ${cursor.seq} is now at byte ${found.offset}.`,
        );
        cursor.offset = found.line.end;
      }
      read = await this.readLinesFrom(cursor.offset);
      const first = read.lines[0];
      if (first && (first.seq !== cursor.seq + 1 || first.prevHash !== cursor.hash)) {
        const message = `event ${first.seq} at byte ${cursor.offset} of the audit log does not follow event ${cursor.seq}, the last one the sink acknowledged: the chain was broken after it. Nothing more is sent; run "Agent Lanes: Verify Audit Log".`;
        return { lines: [], broken: { problem: 'rewritten', acknowledgedSeq: cursor.seq, offset: cursor.offset, message } };
      }
    }
    if (read.notIntactAt === undefined) return { lines: read.lines };
    const offset = read.notIntactAt;
    const last = read.lines.at(-1)?.seq ?? cursor.seq;
    const message = `the line at byte ${offset} of the audit log (after event ${last}) is not an intact event, so the chain is broken there and nothing after it is sent. Run "Agent Lanes: Verify Audit Log".`;
    return { lines: read.lines, broken: { problem: 'notIntact', acknowledgedSeq: cursor.seq, offset, message } };
  }

  /** The log goes on at the cursor: its offset starts a line, and that line (if any) follows the acknowledged event. */
  private async continuesAt(cursor: Cursor, read: ReadLines): Promise<boolean> {
    if (cursor.offset === 0) return cursor.seq === 0;
    const first = read.lines[0];
    if (first) {
      if (first.seq !== cursor.seq + 1 || first.prevHash !== cursor.hash) return false;
    } else if (read.notIntactAt === cursor.offset) return false;
    const handle = await open(this.options.auditFile, 'r').catch(() => undefined);
    if (!handle) return false;
    try {
      const before = Buffer.alloc(1);
      const { bytesRead } = await handle.read(before, 0, 1, cursor.offset - 1);
      return bytesRead === 1 && before[0] === 0x0a;
    } finally {
      await handle.close();
    }
  }

  /** The line holding `seq`, read from the start; or where the intact lines end before it. */
  private async findEvent(seq: number): Promise<FoundEvent> {
    let offset = 0;
    let lastSeq = 0;
    if (seq === 0) return { offset, lastSeq };
    for (;;) {
      const read = await this.readLinesFrom(offset, 10_000);
      for (const line of read.lines) {
        if (line.seq === seq) return { line, offset, lastSeq };
        offset = line.end;
        lastSeq = line.seq;
      }
      if (read.notIntactAt !== undefined) return { offset, lastSeq, notIntactAt: read.notIntactAt };
      if (read.lines.length === 0) return { offset, lastSeq };
    }
  }

  private breakAt(cursor: Cursor, found: FoundEvent): SinkChainBreak {
    const after = `Nothing more is sent; run "Agent Lanes: Verify Audit Log". If the log was replaced on purpose, delete ${this.cursorFile} to ship it from its first event.`;
    const acknowledgedSeq = cursor.seq;
    if (found.line) {
      return {
        problem: 'rewritten',
        acknowledgedSeq,
        offset: found.offset,
        message: `event ${cursor.seq} in the audit log has hash ${found.line.hash.slice(0, 12)}…, but the sink acknowledged ${cursor.hash.slice(0, 12)}… for it: the log was rewritten after it was shipped. ${after}`,
      };
    }
    if (found.notIntactAt !== undefined) {
      return {
        problem: 'notIntact',
        acknowledgedSeq,
        offset: found.notIntactAt,
        message: `the line at byte ${found.notIntactAt} of the audit log (after event ${found.lastSeq}) is not an intact event, before event ${cursor.seq} that the sink acknowledged. ${after}`,
      };
    }
    return {
      problem: 'missing',
      acknowledgedSeq,
      offset: found.offset,
      message: `the audit log ends at event ${found.lastSeq}, but the sink acknowledged events up to ${cursor.seq}: events were removed or the log was replaced. ${after}`,
    };
  }

  private async readLinesFrom(offset: number, maxLines = this.batchSize): Promise<ReadLines> {
    const handle = await open(this.options.auditFile, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!handle) return { lines: [] };
    const maxBytes = this.options.maxBatchBytes ?? 4 * 1024 * 1024;
    const lines: BatchLine[] = [];
    try {
      let position = offset;
      let carry = Buffer.alloc(0);
      let bytes = 0;
      while (lines.length < maxLines && bytes < maxBytes) {
        const chunk = Buffer.alloc(256 * 1024);
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const data = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        let start = 0;
        let newline = data.indexOf(0x0a, start);
        const base = position - data.length;
        while (newline !== -1 && lines.length < maxLines && (bytes < maxBytes || lines.length === 0)) {
          const text = data.subarray(start, newline).toString('utf8');
          const sealed = sealedLine(text);
          // Not a sealed event: the chain is broken here; verify says why, and nothing after it is sent.
          if (!sealed) return { lines, notIntactAt: base + start };
          lines.push({ text, ...sealed, end: base + newline + 1 });
          bytes += newline - start + 1;
          start = newline + 1;
          newline = data.indexOf(0x0a, start);
        }
        if (lines.length >= maxLines || bytes >= maxBytes) break;
        carry = Buffer.from(data.subarray(start));
      }
    } finally {
      await handle.close();
    }
    return { lines };
  }

  private async post(batch: BatchLine[]): Promise<void> {
    const body = await gzip(await this.transport.encode(batch.map((line) => line.text)));
    const headers: Record<string, string> = {
      'Content-Type': this.transport.contentType,
      'Content-Encoding': 'gzip',
      'User-Agent': 'agent-lanes-audit-sink/1',
      'X-Agent-Lanes-Repository': this.options.repoKey,
      'X-Agent-Lanes-First-Seq': String(batch[0]!.seq),
      'X-Agent-Lanes-Last-Seq': String(batch[batch.length - 1]!.seq),
      'Idempotency-Key': `${this.options.repoKey}:${batch[0]!.seq}-${batch[batch.length - 1]!.seq}`,
    };
    const authorization = await this.options.getAuthorization?.();
    if (authorization) headers.Authorization = authorization;
    const timeoutMs = this.options.timeoutMs ?? 15_000;
    const signal = AbortSignal.any([this.stopController.signal, AbortSignal.timeout(timeoutMs)]);
    let response: Response;
    try {
      // No redirects: one could lead the events to a plain-HTTP or another host.
      response = await fetch(this.url, { method: 'POST', headers, body, signal, redirect: 'error' });
      await response.arrayBuffer();
    } catch (error) {
      const name = (error as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') throw new SinkHttpError('sinkTimeout', `no answer within ${timeoutMs} ms`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new SinkHttpError('sinkUnreachable', `cannot reach the sink (${cause?.code ?? cause?.message ?? (error as Error).message})`);
    }
    if (response.ok) return;
    const retryAfter = response.headers.get('retry-after');
    const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    throw new SinkHttpError('sinkRefused', `the sink answered HTTP ${response.status}`, response.status, seconds);
  }
}
