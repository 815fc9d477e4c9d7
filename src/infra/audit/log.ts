import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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
import { EXTENSION_ACTOR } from '../../core/constants';
import { Emitter } from '../../core/events';
import type { Logger } from '../../core/logger';
import type { EffectivePolicy } from '../../core/policy/merge';
import { BUILTIN_SECRET_PATTERNS, compileSecretPatterns, redactText, redactValue, type SecretPattern } from '../../core/redaction';
import { AuditLogError } from './auditLogError';
import { AuditChangeIndex } from './changeIndex';
import { forEachLine, isMissing, READ_CHUNK, readFirstEvent, readTail, type TailState } from './lines';
import { settledSize, withAuditLock } from './lock';

/** An event line longer than this is refused: large content belongs in a file, with its digest in the event. */
const MAX_EVENT_BYTES = 1024 * 1024;

/** Verifies a log file by streaming it (a million events take a few seconds). */
export async function verifyAuditFile(file: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const verifier = new AuditChainVerifier(options);
  await forEachLine(file, (bytes) => verifier.pushBytes(bytes), 0, await settledSize(file));
  return verifier.finish();
}

export interface AuditLogOptions {
  /** The repository the log belongs to (RepoStorage.repoKey); read from the file when omitted. */
  repoKey?: string;
  /** Flush as soon as this many events wait. */
  maxBatch?: number;
  /**
   * While a batch is being written, flush the next one this long after its
   * first event at the latest (it goes as soon as the write in flight ends).
   * An append to an idle log is written at once.
   */
  flushDelayMs?: number;
  lockTimeoutMs?: number;
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
 * once its event is on disk. Group commit: an append to an idle log is written
 * at once (with whatever else was appended in the same turn of the event loop);
 * those that arrive while a batch is being written go together in the next.
 */
export class AuditLog {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Batches handed to the chain and not written yet. */
  private writing = 0;
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

  private secretPatterns: () => readonly SecretPattern[] = () => BUILTIN_SECRET_PATTERNS;

  private get patterns(): readonly SecretPattern[] {
    return this.secretPatterns();
  }

  /**
   * Where appends get the secret patterns they redact with (built-ins plus the
   * policy's, from compileSecretPatterns); asked at each append, so a policy change applies at once.
   */
  setSecretPatterns(source: () => readonly SecretPattern[]): void {
    this.secretPatterns = source;
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
      if (this.pending.length >= maxBatch || this.writing === 0) this.scheduleFlush(0);
      else this.scheduleFlush(this.options.flushDelayMs ?? 5);
    });
  }

  /** The secret patterns appends redact with (the built-in and the policy's), for content stored beside the log. */
  get secretPatternsNow(): readonly SecretPattern[] {
    return this.patterns;
  }

  /**
   * Writes a content-addressed file into `folder` beside the log (for content
   * too large for an event, whose digest the event then records): durable
   * before it resolves, so it is on disk before the event that names it. A file
   * of that name with the same content is kept as it is.
   */
  async writeBeside(folder: string, name: string, text: string): Promise<string> {
    if (!/^[\w.-]+$/.test(folder) || !/^[\w-]+\.json$/.test(name))
      throw new Error(`audit: not a file name for beside the log: ${folder}/${name}`);
    const dir = join(dirname(this.file), folder);
    const target = join(dir, name);
    const existing = await readFile(target, 'utf8').catch(() => undefined);
    if (existing === text) return target;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temporary = `${target}.${process.pid}.${Date.now()}.tmp`;
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(text);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target).catch(async (error: unknown) => {
      await rm(temporary, { force: true });
      throw error;
    });
    return target;
  }

  private scheduleFlush(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) return;
    if (delayMs === 0) {
      // After the appends of this turn of the event loop, without a timer's extra millisecond.
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        void this.flush();
      });
      return;
    }
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
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.chain;
    this.writing++;
    this.chain = this.chain
      .then(() => this.writeBatch(batch))
      .then(() => {
        this.writing--;
        // What arrived during the write goes now, as one batch.
        if (this.writing === 0 && this.pending.length && !this.closed) this.scheduleFlush(0);
      });
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

  private changeIndex: AuditChangeIndex | undefined;

  /** The events of one change, oldest first (the History view), read through the index of the log by change. */
  async eventsFor(changeId: string): Promise<AuditEvent[]> {
    await this.flush();
    this.changeIndex ??= new AuditChangeIndex(this.file);
    const settled = await settledSize(this.file);
    const end = Number.isFinite(settled) ? settled : (await stat(this.file)).size;
    return (await this.changeIndex.eventsFor(changeId, end)).events;
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

/**
 * Makes the log redact what policy calls a secret too, not only the built-in
 * kinds, whatever the policy becomes (read at each append, compiled again only
 * when the policy's list changes).
 */
export function redactWithPolicyPatterns(log: AuditLog, policy: { readonly effective: EffectivePolicy }): void {
  let compiled: { source: EffectivePolicy['policy']['secretPatterns']; patterns: readonly SecretPattern[] } | undefined;
  log.setSecretPatterns(() => {
    const source = policy.effective.policy.secretPatterns;
    if (!compiled || compiled.source !== source) compiled = { source, patterns: compileSecretPatterns(source ?? []).patterns };
    return compiled.patterns;
  });
}

/** Reads every intact event of a log file and verifies it in the same pass. */
async function readAuditFile(file: string, options: VerifyOptions = {}): Promise<{ events: AuditEvent[]; problems: VerifyFailure[] }> {
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

const CHECKPOINT_FORMAT = 'agent-lanes.audit-checkpoint';

const AuditCheckpointFileSchema = z.object({
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
export async function checkpointFor(
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
