import { hash as oneShotHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { ActorSchema, type Actor } from '../change';

/**
 * The audit trail: one JSON Lines file per repository. Every line is one event
 * in RFC 8785 canonical form; `hash` is SHA-256 over the canonical form of the
 * event without `hash`, and `prevHash` is the previous event's `hash`, so an
 * edit, a deletion, an insertion or a reorder breaks the chain.
 */

/** Every action the product records. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const AUDIT_ACTIONS = [
  'audit.created',
  'audit.repaired',
  'audit.exported',
  'audit.proofBundleExported',
  'audit.sinkBroken',
  'change.create',
  'change.discard',
  'lane.transition',
  'agent.start',
  'agent.stop',
  'agent.tool',
  'agent.isolation',
  'agent.interrupted',
  'task.run',
  'sandbox.prepare',
  'policy.decision',
  'policy.refresh',
  'review.approve',
  'review.requestChanges',
  'review.reject',
  'approval.invalidated',
  'push',
  'pr.create',
  'pr.update',
  'pr.ready',
  'pr.closed',
  'action.authorize',
  'action.status',
  'action.escalate',
  'action.rollback',
  'killSwitch.change',
  'cleanup',
  'workspaceTrust.change',
] as const;
/** @internal Exported for its unit tests; the product calls it inside this module. */
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** prevHash of the first event. */
/** @internal Exported for tests and benchmarks; the product uses it inside this module. */
export const GENESIS_HASH = '0'.repeat(64);
const AUDIT_FORMAT_VERSION = 1;

const HEX64 = /^[0-9a-f]{64}$/;

const AuditEventSchema = z.looseObject({
  seq: z.number().int().positive(),
  at: z.iso.datetime({ message: 'a UTC ISO time such as 2026-11-21T10:00:00.000Z' }),
  actor: ActorSchema,
  action: z.string().min(1),
  changeId: z.string().min(1).optional(),
  details: z.record(z.string(), z.unknown()),
  policy: z
    .string()
    .regex(/^.+@.+$/, '"id@version"')
    .optional(),
  decisionId: z.string().min(1).optional(),
  prevHash: z.string().regex(HEX64, '64 lower-case hex digits'),
  hash: z.string().regex(HEX64, '64 lower-case hex digits'),
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

/** What a caller records; the log adds seq, at (unless given), prevHash and hash. */
export interface AuditEventInput {
  actor: Actor;
  action: AuditAction;
  changeId?: string;
  details?: Record<string, unknown>;
  policy?: string;
  decisionId?: string;
  /** Defaults to the time of the append. */
  at?: string;
}

export type UnhashedAuditEvent = Omit<AuditEvent, 'hash'>;

function sha256Hex(data: string | Uint8Array): string {
  return oneShotHash('sha256', data, 'hex');
}

function canonical(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('audit: an event must be a JSON object.');
  return text;
}

/** SHA-256 hex over the RFC 8785 canonical form of the event without `hash`. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function hashEvent(event: UnhashedAuditEvent | AuditEvent): string {
  const { hash: _ignored, ...rest } = event as AuditEvent;
  return sha256Hex(canonical(rest));
}

/** Builds the next event in the chain and its line (canonical JSON, no newline). */
export function sealEvent(unhashed: UnhashedAuditEvent): { event: AuditEvent; line: string } {
  const clean = withoutUndefined(unhashed);
  const body = canonical(clean);
  const hash = sha256Hex(body);
  const event = { ...clean, hash } as AuditEvent;
  // Canonical order puts "hash" right before "policy" (when present) or "prevHash"; those
  // members come after "details" and hold plain strings, so the last occurrence is the top-level one.
  const anchor = body.lastIndexOf(clean.policy !== undefined ? ',"policy":' : ',"prevHash":');
  const line =
    anchor > 0 && !hasUnknownMembers(clean) ? `${body.slice(0, anchor)},"hash":"${hash}"${body.slice(anchor)}` : canonical(event);
  return { event, line };
}

const KNOWN_MEMBERS = new Set(['seq', 'at', 'actor', 'action', 'changeId', 'details', 'policy', 'decisionId', 'prevHash']);
function hasUnknownMembers(event: object): boolean {
  for (const key of Object.keys(event)) if (!KNOWN_MEMBERS.has(key)) return true;
  return false;
}

function withoutUndefined<T extends object>(value: T): T {
  const copy: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) if (field !== undefined) copy[key] = field;
  return copy as T;
}

/** The first event of every log: it names the repository the log belongs to. */
export function genesisDetails(repoKey: string): Record<string, unknown> {
  return { repoKey, formatVersion: AUDIT_FORMAT_VERSION };
}

export type AuditProblem =
  'edited' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'rewritten' | 'torn' | 'notJson' | 'invalid' | 'foreignRepository';

interface AuditCheckpoint {
  count: number;
  headHash: string;
  exportedAt?: string;
  /** The repository of the exported log (a checkpoint of another repository's log proves nothing about this one). */
  repoKey?: string;
}

export interface VerifyOptions {
  /** The repository the log must belong to (RepoStorage.repoKey). */
  expectedRepoKey?: string;
  /** A checkpoint exported earlier: detects removal from the end and a rewritten chain. */
  checkpoint?: AuditCheckpoint;
}

interface VerifyOk {
  ok: true;
  count: number;
  headHash: string;
  repoKey?: string;
  firstAt?: string;
  lastAt?: string;
}

export interface VerifyFailure {
  ok: false;
  problem: AuditProblem;
  /** The first seq that cannot be trusted. */
  seq: number;
  /** 1-based line of the file where the problem shows. */
  lineNumber: number;
  message: string;
  /** Events verified before the problem, and the hash of the last of them. */
  count: number;
  headHash: string;
}

export type VerifyResult = VerifyOk | VerifyFailure;

interface ParsedLine {
  lineNumber: number;
  raw: string;
  /** Undefined when the line is not JSON; `invalid` explains a JSON line that is no event. */
  event?: AuditEvent;
  invalid?: string;
  notJson?: boolean;
  selfHashOk?: boolean;
  /** The parsed event matches its hash, but the line is not its canonical form. */
  nonCanonical?: true;
}

/**
 * Checks a line's own hash, and that the line is exactly the canonical form of
 * its event: lines the log writes are canonical, so the SHA-256 of the raw
 * text minus its hash member must be that hash. A line that parses to an event
 * with the right hash but is written otherwise (a duplicate member, such as a
 * forged "details" before the real one, other key order or spacing) is not
 * accepted: another reader could see other contents than were hashed.
 */
function selfHashMatches(raw: string, event: AuditEvent): { ok: boolean; nonCanonical?: true } {
  const member = `"hash":"${event.hash}"`;
  const at = raw.lastIndexOf(member);
  if (at > 0) {
    let stripped: string | undefined;
    if (raw[at + member.length] === ',') stripped = raw.slice(0, at) + raw.slice(at + member.length + 1);
    else if (raw[at - 1] === ',') stripped = raw.slice(0, at - 1) + raw.slice(at + member.length);
    if (stripped !== undefined && sha256Hex(stripped) === event.hash) return { ok: true };
  }
  return hashEvent(event) === event.hash ? { ok: false, nonCanonical: true } : { ok: false };
}

function parseLine(raw: string, lineNumber: number): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { lineNumber, raw, notJson: true };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { lineNumber, raw, notJson: true };
  }
  const parsed = looksLikeEvent(value as Record<string, unknown>) ? undefined : AuditEventSchema.safeParse(value);
  if (parsed && !parsed.success) {
    const issue = parsed.error.issues[0];
    return { lineNumber, raw, invalid: `${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'not an audit event'}` };
  }
  // The raw object, not zod's copy: unknown members count towards the hash.
  const event = value as AuditEvent;
  const self = selfHashMatches(raw, event);
  return { lineNumber, raw, event, selfHashOk: self.ok, ...(self.nonCanonical ? { nonCanonical: true as const } : {}) };
}

const ISO_UTC: RegExp = z.regexes.datetime({});
const ACTOR_TYPES = new Set(ActorSchema.shape.type.options as readonly string[]);
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);
const optionalText = (value: unknown) => value === undefined || (typeof value === 'string' && value.length > 0);

/**
 * The schema's checks written out by hand: zod costs more than hashing on a
 * log of a million lines. Only a true answer is trusted; false falls back to
 * zod, which also explains what is wrong.
 */
function looksLikeEvent(value: Record<string, unknown>): boolean {
  const { seq, at, actor, action, details, policy } = value;
  return (
    typeof seq === 'number' &&
    Number.isInteger(seq) &&
    seq > 0 &&
    typeof at === 'string' &&
    ISO_UTC.test(at) &&
    isPlainObject(actor) &&
    ACTOR_TYPES.has(actor.type as string) &&
    typeof actor.id === 'string' &&
    typeof action === 'string' &&
    action.length > 0 &&
    optionalText(value.changeId) &&
    optionalText(value.decisionId) &&
    isPlainObject(details) &&
    (policy === undefined || (typeof policy === 'string' && /^.+@.+$/.test(policy))) &&
    typeof value.prevHash === 'string' &&
    HEX64.test(value.prevHash) &&
    typeof value.hash === 'string' &&
    HEX64.test(value.hash)
  );
}

function looksTorn(raw: string): boolean {
  // A crash leaves the start of an event, or zeros where the file system had not written data yet.
  return raw.startsWith('{') || /^\0+$/.test(raw);
}

const short = (hash: string) => hash.slice(0, 12);

const DECODER = new TextDecoder();
const ENCODER = new TextEncoder();
const PREV_MEMBER = ENCODER.encode(',"prevHash":"');
const SEQ_MEMBER = ENCODER.encode('","seq":');
const HASH_MEMBER = ENCODER.encode(',"hash":"');

function bytesEqual(bytes: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (at < 0 || at + expected.length > bytes.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

interface Anomaly {
  line: ParsedLine;
  /** seq the line should have had. */
  expected: number;
  /** Hash of the last good event before it, and of the one before that. */
  lastHash: string;
  beforeLastHash: string;
  lastCount: number;
  /** For a gap: the missing seqs, and where one of them turned up later. */
  missing?: { from: number; to: number; foundAt?: number; foundSeq?: number };
  next?: ParsedLine;
}

/**
 * Verifies an audit log line by line, so a log of a million events never has
 * to be held in memory. Feed lines without their terminator, then call finish().
 */
export class AuditChainVerifier {
  private lineNumber = 0;
  private count = 0;
  private lastHash = GENESIS_HASH;
  private beforeLastHash = GENESIS_HASH;
  private lastSeq = 0;
  private repoKey: string | undefined;
  private firstAt: string | undefined;
  private lastAt: string | undefined;
  private anomaly: Anomaly | undefined;
  private failure: VerifyFailure | undefined;
  private pendingBlank: number | undefined;
  /** The last line accepted on the fast path, read only at the end for its time. */
  private lastLineBytes: Uint8Array | undefined;
  private scratch = new Uint8Array(4096);

  constructor(private readonly options: VerifyOptions = {}) {}

  /**
   * One line as UTF-8 bytes, without its terminator. A line the writer sealed
   * is checked straight from its bytes: the SHA-256 of the line minus its
   * hash member must equal that hash, so its bytes are exactly what was sealed
   * (the writer seals only valid events) and parsing it again would prove
   * nothing more. Anything else takes the full path through push().
   * Returns true when the line is the next event of the chain (its successor
   * may still show that it was re-hashed), so a reader need not hash it again.
   */
  pushBytes(bytes: Uint8Array): boolean {
    const fast = this.failure || this.anomaly || this.pendingBlank !== undefined || this.lastSeq === 0 ? undefined : this.sealedLine(bytes);
    if (!fast || fast.seq !== this.lastSeq + 1) {
      const before = this.count;
      this.push(DECODER.decode(bytes));
      return this.count > before;
    }
    this.lineNumber++;
    if (!this.acceptHash(fast.seq, fast.hash, this.lineNumber)) return false;
    this.lastLineBytes = bytes;
    return true;
  }

  /** Reads seq and hash from a canonical line that links to the last hash and whose own hash checks out; undefined otherwise. */
  private sealedLine(input: Uint8Array): { seq: number; hash: string } | undefined {
    const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const end = bytes.length;
    if (end < 160 || bytes[end - 1] !== 0x7d /* } */) return undefined;
    // Tail: ,"prevHash":"<64 hex>","seq":<digits>}
    let digitsStart = end - 1;
    let seq = 0;
    let scale = 1;
    while (digitsStart > 0 && bytes[digitsStart - 1]! >= 0x30 && bytes[digitsStart - 1]! <= 0x39) {
      digitsStart--;
      seq += (bytes[digitsStart]! - 0x30) * scale;
      scale *= 10;
    }
    if (digitsStart === end - 1 || end - digitsStart > 16) return undefined;
    const prevStart = digitsStart - SEQ_MEMBER.length - 64 - PREV_MEMBER.length;
    if (prevStart < 0 || !bytesEqual(bytes, prevStart, PREV_MEMBER) || !bytesEqual(bytes, digitsStart - SEQ_MEMBER.length, SEQ_MEMBER))
      return undefined;
    // prevHash must be the last hash: compared in place, no string made.
    const last = this.lastHash;
    for (let i = 0, at = prevStart + PREV_MEMBER.length; i < 64; i++) if (bytes[at + i] !== last.charCodeAt(i)) return undefined;
    const hashStart = bytes.lastIndexOf(HASH_MEMBER, prevStart - HASH_MEMBER.length);
    if (hashStart < 0) return undefined;
    const hash = bytes.toString('latin1', hashStart + HASH_MEMBER.length, hashStart + HASH_MEMBER.length + 64);
    const memberEnd = hashStart + HASH_MEMBER.length + 65;
    // No hex check: a hash that equals a computed SHA-256 is hex, and prevHash equals the previous hash.
    if (bytes[memberEnd - 1] !== 0x22 /* " */) return undefined;
    const strippedLength = end - (memberEnd - hashStart);
    if (this.scratch.length < strippedLength) this.scratch = new Uint8Array(strippedLength * 2);
    // Buffer.copy, not set(subarray): no view object per line.
    bytes.copy(this.scratch, 0, 0, hashStart);
    bytes.copy(this.scratch, hashStart, memberEnd, end);
    if (sha256Hex(this.scratch.subarray(0, strippedLength)) !== hash) return undefined;
    return { seq, hash };
  }

  push(raw: string): void {
    this.lineNumber++;
    if (this.failure) return;
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (this.anomaly) {
      this.observeAfterAnomaly(raw);
      return;
    }
    if (raw.trim() === '') {
      // A blank line is harmless only at the very end (an editor's final newline).
      this.pendingBlank ??= this.lineNumber;
      return;
    }
    if (this.pendingBlank !== undefined) {
      const lineNumber = this.pendingBlank;
      this.fail(
        'notJson',
        this.lastSeq + 1,
        lineNumber,
        `Line ${lineNumber} is blank: an audit log has one event per line and no blank lines, so the file was edited.`,
      );
      return;
    }
    const line = parseLine(raw, this.lineNumber);
    const expected = this.lastSeq + 1;
    const event = line.event;
    if (!event || !line.selfHashOk) {
      this.anomaly = this.newAnomaly(line, expected);
      return;
    }
    if (event.seq === expected && event.prevHash === this.lastHash) {
      if (!this.accept(event, line)) return;
      return;
    }
    const anomaly = this.newAnomaly(line, expected);
    if (event.seq > expected && event.prevHash !== this.lastHash) anomaly.missing = { from: expected, to: event.seq - 1 };
    this.anomaly = anomaly;
  }

  private accept(event: AuditEvent, line: ParsedLine): boolean {
    if (event.seq === 1) {
      if (event.action !== 'audit.created') {
        this.fail(
          'invalid',
          1,
          line.lineNumber,
          `The first event is "${event.action}", not "audit.created": this file does not start an Agent Lanes audit log (its beginning may have been cut off).`,
        );
        return false;
      }
      const repoKey = typeof event.details.repoKey === 'string' ? event.details.repoKey : undefined;
      this.repoKey = repoKey;
      const expectedKey = this.options.expectedRepoKey;
      if (expectedKey !== undefined && repoKey !== expectedKey) {
        this.fail(
          'foreignRepository',
          1,
          line.lineNumber,
          repoKey
            ? `This audit log belongs to another repository (${short(repoKey)}…), not this one (${short(expectedKey)}…): it was copied or moved from another repository's storage.`
            : `This audit log does not name its repository, so it cannot be tied to this one (${short(expectedKey)}…).`,
        );
        return false;
      }
      const checkpointKey = this.options.checkpoint?.repoKey;
      if (checkpointKey !== undefined && repoKey !== checkpointKey) {
        const exportedAt = this.options.checkpoint?.exportedAt;
        this.fail(
          'foreignRepository',
          1,
          line.lineNumber,
          `The checkpoint${exportedAt ? ` exported at ${exportedAt}` : ''} belongs to another repository (${short(checkpointKey)}…), not to this log's (${repoKey ? `${short(repoKey)}…` : 'none named'}): give the checkpoint.json exported from this log.`,
        );
        return false;
      }
      this.firstAt = event.at;
    }
    if (!this.acceptHash(event.seq, event.hash, line.lineNumber)) return false;
    this.lastAt = event.at;
    this.lastLineBytes = undefined;
    return true;
  }

  private acceptHash(seq: number, hash: string, lineNumber: number): boolean {
    const checkpoint = this.options.checkpoint;
    if (checkpoint && seq === checkpoint.count && hash !== checkpoint.headHash) {
      this.fail(
        'rewritten',
        seq,
        lineNumber,
        `Event ${seq} has hash ${short(hash)}…, but the checkpoint${checkpoint.exportedAt ? ` exported at ${checkpoint.exportedAt}` : ''} recorded ${short(checkpoint.headHash)}…: the log was rewritten after the checkpoint.`,
      );
      return false;
    }
    this.count++;
    this.lastSeq = seq;
    this.beforeLastHash = this.lastHash;
    this.lastHash = hash;
    return true;
  }

  private newAnomaly(line: ParsedLine, expected: number): Anomaly {
    return { line, expected, lastHash: this.lastHash, beforeLastHash: this.beforeLastHash, lastCount: this.count };
  }

  private observeAfterAnomaly(raw: string): void {
    const anomaly = this.anomaly as Anomaly;
    // Blank lines are skipped here so an editor's final newline cannot hide a torn line.
    if (!anomaly.next && raw.trim() !== '') anomaly.next = parseLine(raw, this.lineNumber);
    const missing = anomaly.missing;
    if (missing && missing.foundAt === undefined) {
      const seq = /"seq":(\d+)/.exec(raw);
      const value = seq ? Number(seq[1]) : NaN;
      if (value >= missing.from && value <= missing.to) {
        missing.foundAt = this.lineNumber;
        missing.foundSeq = value;
      }
    }
  }

  private fail(
    problem: AuditProblem,
    seq: number,
    lineNumber: number,
    message: string,
    count = this.count,
    headHash = this.lastHash,
  ): void {
    this.failure = { ok: false, problem, seq, lineNumber, message, count, headHash };
  }

  /** The chain continues at `next` as if `line` were not there. */
  private static linksAround(next: ParsedLine | undefined, anomaly: Anomaly): boolean {
    const event = next?.event;
    return !!event && !!next?.selfHashOk && event.seq === anomaly.expected && event.prevHash === anomaly.lastHash;
  }

  private classify(anomaly: Anomaly): VerifyFailure {
    const { line, expected, next } = anomaly;
    const n = line.lineNumber;
    const base = { count: anomaly.lastCount, headHash: anomaly.lastHash };
    const make = (problem: AuditProblem, seq: number, lineNumber: number, message: string): VerifyFailure => ({
      ok: false,
      problem,
      seq,
      lineNumber,
      message,
      ...base,
    });
    const inserted = AuditChainVerifier.linksAround(next, anomaly);
    if (!line.event) {
      if (!next && line.notJson && looksTorn(line.raw)) {
        return make(
          'torn',
          expected,
          n,
          `The last line (${n}) is an incomplete event, cut off by a crash or a full disk. Run "agent-lanes audit repair" to remove it; the repair is recorded in the log.`,
        );
      }
      if (inserted) {
        return make(
          'inserted',
          expected,
          n,
          `Line ${n} is not an audit event${line.invalid ? ` (${line.invalid})` : ''}, and the chain continues past it: the line was inserted.`,
        );
      }
      if (line.notJson) {
        return make(
          'notJson',
          expected,
          n,
          n === 1
            ? `Line 1 is not JSON: this file is not an audit log in JSON Lines form (one JSON event per line).`
            : `Line ${n} is not JSON: the log was edited by hand or damaged (expected event ${expected} there).`,
        );
      }
      return make('invalid', expected, n, `Line ${n} is JSON but not a valid audit event (${line.invalid}).`);
    }
    const event = line.event;
    if (!line.selfHashOk) {
      if (line.nonCanonical)
        return make(
          'edited',
          expected,
          n,
          `Event ${event.seq} on line ${n} is not written in its canonical form (a member repeated, such as a second "details", or keys reordered or spaced): the line was changed after it was written, and a reader could see other contents than its hash covers.`,
        );
      if (inserted)
        return make(
          'inserted',
          expected,
          n,
          `Line ${n} (claiming seq ${event.seq}) does not belong to the chain, which continues past it with seq ${expected}: the line was inserted.`,
        );
      return make(
        'edited',
        expected,
        n,
        `Event ${event.seq} on line ${n} was changed after it was written: its contents no longer match its hash ${short(event.hash)}….`,
      );
    }
    // The line is intact in itself, but it does not follow the previous one.
    if (event.seq > expected) {
      const missing = anomaly.missing;
      if (missing?.foundAt !== undefined) {
        return make(
          'reordered',
          expected,
          n,
          `Events are out of order: event ${event.seq} is on line ${n}, before event ${missing.foundSeq} on line ${missing.foundAt}. Lines were swapped or moved.`,
        );
      }
      if (event.prevHash === anomaly.lastHash) {
        return make(
          'edited',
          expected,
          n,
          `Event on line ${n} follows event ${expected - 1} but carries seq ${event.seq}: its seq was changed and the event re-hashed.`,
        );
      }
      const gap = event.seq - 1 === expected ? `Event ${expected} is` : `Events ${expected} to ${event.seq - 1} are`;
      return make(
        'deleted',
        expected,
        n,
        `${gap} missing before line ${n}: ${event.seq - 1 === expected ? 'a line was' : 'lines were'} deleted.`,
      );
    }
    if (event.seq < expected) {
      if (event.hash === anomaly.lastHash) {
        return make('inserted', expected, n, `Line ${n} is a copy of event ${event.seq} on the line before it: a line was inserted.`);
      }
      if (event.seq === expected - 1 && event.prevHash === anomaly.beforeLastHash && expected > 1) {
        return {
          ok: false,
          problem: 'inserted',
          seq: expected - 1,
          lineNumber: n - 1,
          message: `Line ${n - 1} does not belong to the log: event ${event.seq} on line ${n} follows the event before it, so line ${n - 1} was inserted (with a seq and hash made to look genuine).`,
          count: Math.max(0, anomaly.lastCount - 1),
          headHash: anomaly.beforeLastHash,
        };
      }
      if (inserted)
        return make(
          'inserted',
          expected,
          n,
          `Line ${n} repeats seq ${event.seq} after event ${expected - 1}, and the chain continues past it: the line was inserted (a copy or an event from another log).`,
        );
      return make(
        'reordered',
        event.seq,
        n,
        `Event ${event.seq} on line ${n} comes after event ${expected - 1}: lines were moved or swapped.`,
      );
    }
    // Right seq, wrong predecessor.
    if (inserted)
      return make(
        'inserted',
        expected,
        n,
        `Line ${n} claims seq ${event.seq} but the chain continues past it from event ${expected - 1}: the line was inserted.`,
      );
    if (expected === 1) {
      return make(
        'invalid',
        1,
        n,
        `The first event does not start the chain (its prevHash is not the genesis value): the beginning of the log is missing or was replaced.`,
      );
    }
    return {
      ok: false,
      problem: 'edited',
      seq: expected - 1,
      lineNumber: n - 1,
      message: `Event ${expected - 1} on line ${n - 1} was changed and re-hashed: event ${expected} on line ${n} recorded a different hash for it.`,
      count: Math.max(0, anomaly.lastCount - 1),
      headHash: anomaly.beforeLastHash,
    };
  }

  finish(): VerifyResult {
    if (this.failure) return this.failure;
    if (this.anomaly) return (this.failure = this.classify(this.anomaly));
    const checkpoint = this.options.checkpoint;
    if (checkpoint && this.count < checkpoint.count) {
      return {
        ok: false,
        problem: 'truncated',
        seq: this.lastSeq + 1,
        lineNumber: this.lineNumber + 1,
        message: `The log ends at event ${this.lastSeq}, but the checkpoint${checkpoint.exportedAt ? ` exported at ${checkpoint.exportedAt}` : ''} recorded ${checkpoint.count} events: ${this.lastSeq + 1 === checkpoint.count ? `event ${checkpoint.count} was` : `events ${this.lastSeq + 1} to ${checkpoint.count} were`} removed from the end.`,
        count: this.count,
        headHash: this.lastHash,
      };
    }
    if (this.lastLineBytes) this.lastAt = parseAuditLine(DECODER.decode(this.lastLineBytes))?.at;
    const result: VerifyOk = { ok: true, count: this.count, headHash: this.lastHash };
    if (this.repoKey !== undefined) result.repoKey = this.repoKey;
    if (this.firstAt !== undefined) result.firstAt = this.firstAt;
    if (this.lastAt !== undefined) result.lastAt = this.lastAt;
    return result;
  }
}

/** Parses one stored line; undefined when it is not an intact audit event. */
export function parseAuditLine(raw: string): AuditEvent | undefined {
  const line = parseLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, 0);
  return line.event && line.selfHashOk ? line.event : undefined;
}
