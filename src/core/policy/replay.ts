import { hash as oneShotHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import type { AuditEvent } from '../audit/audit';
import { EFFECTS, type DecisionRecord, type Effect } from '../decision';
import { EVIDENCE_FIELDS, FILE_STATUSES, FLAG_KINDS, type RedactionSummary } from '../evidence';
import { escapeMarkdown, mdCell, mdCode } from '../markdown';
import { findSecrets, mergeSummaries, redactText, type SecretPattern } from '../redaction';
import { POLICY_ACTIONS, evaluate, type ChangeFacts, type PolicyAction } from './evaluate';
import type { EffectivePolicy } from './merge';

/**
 * Policy replay: what the decisions in an audit log would have been under a
 * candidate policy. A `policy.decision` event records the rules that matched
 * and the facts that were evaluated (inline when small, otherwise as a
 * content-addressed file `facts/<sha256>.json` beside the log, with its digest
 * in the event); replay evaluates those facts again, at the decision's time,
 * against the candidate and lists the decisions whose effect would change.
 * Pure: the caller streams the log and reads the facts files.
 */

/**
 * Facts whose canonical JSON is at most this long go in the event; larger ones in a file beside the log.
 * @internal Exported for its unit tests.
 */
export const INLINE_FACTS_MAX_BYTES = 8 * 1024;
/** The folder beside the audit log that holds facts too large for an event. */
export const FACTS_FOLDER = 'facts';

/** A matched rule as the audit event keeps it: which rule, its effect, and the policy ("id@version") it came from. */
export interface RecordedRule {
  rule: string;
  effect: Effect;
  policy: string;
}

export function recordedRules(decision: Pick<DecisionRecord, 'matchedRules'>): RecordedRule[] {
  return decision.matchedRules.map(({ rule, effect, policy }) => ({ rule, effect, policy }));
}

/**
 * Only what evaluation reads, so the record holds paths, counts and flags and
 * nothing else of the evidence (no task commands, no symlink targets).
 */
export function factsForRecord(facts: ChangeFacts): ChangeFacts {
  const optional = <K extends string, V>(key: K, value: V | undefined) =>
    (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
  return {
    ...optional('changeId', facts.changeId),
    ...optional('agentId', facts.agentId),
    ...optional(
      'files',
      facts.files?.map((file) => ({
        path: file.path,
        ...optional('oldPath', file.oldPath),
        ...optional('status', file.status),
        additions: file.additions,
        deletions: file.deletions,
        ...(file.binary ? { binary: true } : {}),
      })),
    ),
    ...optional(
      'flags',
      facts.flags?.map((flag) => ({ kind: flag.kind, ...optional('path', flag.path), ...optional('detail', flag.detail) })),
    ),
    ...optional(
      'tasks',
      facts.tasks?.map((task) => ({
        id: task.id,
        outcome: task.outcome,
        ...optional('required', task.required),
        ...optional('isolation', task.isolation),
        ...optional('networkMode', task.networkMode),
      })),
    ),
    ...optional('evidence', facts.evidence ? [...facts.evidence] : undefined),
    ...optional(
      'approvals',
      facts.approvals?.map((approval) => ({ by: approval.by, ...optional('isAuthor', approval.isAuthor) })),
    ),
    ...optional('baseBranch', facts.baseBranch),
    ...optional('author', facts.author),
    ...optional('isolation', facts.isolation),
    ...optional('pullRequestDraft', facts.pullRequestDraft),
    ...optional('caseInsensitivePaths', facts.caseInsensitivePaths),
    // Rollout modes: the chosen class, the task's words and the repository decide a change's classes and limit.
    ...optional('taskClass', facts.taskClass),
    ...optional('task', facts.task),
    ...optional('repository', facts.repository),
  };
}

/**
 * Redacts recorded facts as the audit log redacts event details (their keys
 * are fixed and none is a secret's name, so only the values are scanned). The
 * values are scanned in one pass, joined by newlines (20,000 paths take
 * milliseconds, one scan per value takes seconds); only values a match touches
 * are redacted one by one.
 */
export function redactFacts(facts: ChangeFacts, patterns: readonly SecretPattern[]): { facts: ChangeFacts; summary: RedactionSummary } {
  const values: string[] = [];
  const collect = (node: unknown): void => {
    if (typeof node === 'string') values.push(node);
    else if (Array.isArray(node)) for (const item of node) collect(item);
    else if (node && typeof node === 'object') for (const child of Object.values(node)) collect(child);
  };
  collect(facts);
  const starts: number[] = [];
  let offset = 0;
  for (const value of values) {
    starts.push(offset);
    offset += value.length + 1;
  }
  const matches = findSecrets(values.join('\n'), patterns);
  if (!matches.length) return { facts, summary: { total: 0, byKind: {} } };
  const touched = new Set<string>();
  for (const match of matches) {
    // The value the match starts in, and every value up to where it ends.
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (starts[middle]! <= match.index) low = middle;
      else high = middle - 1;
    }
    for (let index = low; index < starts.length && starts[index]! < match.index + match.length; index++) touched.add(values[index]!);
  }
  const replaced = new Map<string, ReturnType<typeof redactText>>();
  for (const value of touched) replaced.set(value, redactText(value, patterns));
  const summaries: RedactionSummary[] = [];
  const rewrite = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const redacted = replaced.get(node);
      if (!redacted?.summary.total) return node;
      summaries.push(redacted.summary);
      return redacted.text;
    }
    if (Array.isArray(node)) return node.map(rewrite);
    if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([key, child]) => [key, rewrite(child)]));
    return node;
  };
  return { facts: rewrite(facts) as ChangeFacts, summary: mergeSummaries(...summaries) };
}

/** Small figures about the facts that stay in the event even when the facts are in a file (metrics reads them). */
export interface FactsSummary {
  files: number;
  changedLines: number;
  flags: number;
  tasks: number;
}

function summarizeFacts(facts: ChangeFacts): FactsSummary {
  let changedLines = 0;
  for (const file of facts.files ?? []) changedLines += file.additions + file.deletions;
  return { files: facts.files?.length ?? 0, changedLines, flags: facts.flags?.length ?? 0, tasks: facts.tasks?.length ?? 0 };
}

/** The canonical (RFC 8785) JSON of recorded facts and its SHA-256: the name of its file and the digest in the event. */
function canonicalFacts(facts: ChangeFacts): { text: string; sha256: string } {
  const text = canonicalize(facts);
  if (text === undefined) throw new Error('policy facts: not JSON data.');
  return { text, sha256: oneShotHash('sha256', text, 'hex') };
}

/** How the details of a decision event carry its facts: inline when small, otherwise by digest. */
export function factsDetails(facts: ChangeFacts): {
  details: { facts?: ChangeFacts; factsSha256: string; factsSummary: FactsSummary };
  /** Set when the facts go in FACTS_FOLDER/<sha256>.json, to be written before the event. */
  file?: { name: string; text: string };
} {
  const { text, sha256 } = canonicalFacts(facts);
  const summary = summarizeFacts(facts);
  if (Buffer.byteLength(text) <= INLINE_FACTS_MAX_BYTES) return { details: { facts, factsSha256: sha256, factsSummary: summary } };
  return { details: { factsSha256: sha256, factsSummary: summary }, file: { name: `${sha256}.json`, text } };
}

const Text = z.string();
const RecordedFactsSchema = z.strictObject({
  changeId: Text.optional(),
  agentId: Text.optional(),
  files: z
    .array(
      z.strictObject({
        path: Text,
        oldPath: Text.optional(),
        status: z.enum(FILE_STATUSES).optional(),
        additions: z.number().int().nonnegative(),
        deletions: z.number().int().nonnegative(),
        binary: z.boolean().optional(),
      }),
    )
    .optional(),
  flags: z.array(z.strictObject({ kind: z.enum(FLAG_KINDS), path: Text.optional(), detail: Text.optional() })).optional(),
  tasks: z
    .array(
      z.strictObject({
        id: Text,
        outcome: z.enum(['passed', 'failed', 'timedOut', 'cancelled', 'error', 'skipped']),
        required: z.boolean().optional(),
        isolation: z.enum(['container', 'process']).optional(),
        networkMode: Text.optional(),
      }),
    )
    .optional(),
  evidence: z.array(z.enum(EVIDENCE_FIELDS)).optional(),
  approvals: z.array(z.strictObject({ by: Text, isAuthor: z.boolean().optional() })).optional(),
  baseBranch: Text.optional(),
  author: Text.optional(),
  isolation: z.enum(['container', 'process']).optional(),
  pullRequestDraft: z.boolean().optional(),
  caseInsensitivePaths: z.boolean().optional(),
});

/** A `policy.decision` event, read for replay. */
export interface RecordedDecision {
  source: string;
  seq: number;
  at: string;
  changeId?: string;
  subject: string;
  action: string;
  effect: Effect;
  rules: RecordedRule[];
  /** Where its facts are, or why it cannot be replayed. */
  facts: { kind: 'inline'; value: unknown; sha256?: string } | { kind: 'file'; sha256: string } | { kind: 'none'; reason: string };
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The facts file a decision event refers to (`<sha256>.json` in FACTS_FOLDER),
 * when its facts are not inline: what an export or a proof bundle must carry
 * beside the events for the decision to stay replayable.
 */
export function factsFileOf(event: Pick<AuditEvent, 'action' | 'details'>): string | undefined {
  if (event.action !== 'policy.decision' || event.details.facts !== undefined) return undefined;
  const sha256 = event.details.factsSha256;
  return typeof sha256 === 'string' && HEX64.test(sha256) ? `${sha256}.json` : undefined;
}

/** Reads a verified audit event as a recorded decision; undefined for other events. */
export function readDecision(event: AuditEvent, source: string): RecordedDecision | undefined {
  if (event.action !== 'policy.decision') return undefined;
  const details = event.details;
  const effect = EFFECTS.find((known) => known === details.effect);
  const action = typeof details.action === 'string' ? details.action : '(unknown)';
  const rules = Array.isArray(details.rules)
    ? (details.rules as unknown[]).flatMap((rule) => {
        const r = rule as Partial<RecordedRule> | null;
        return r && typeof r.rule === 'string'
          ? [
              {
                rule: r.rule,
                effect: EFFECTS.find((e) => e === r.effect) ?? 'block',
                policy: typeof r.policy === 'string' ? r.policy : '?',
              },
            ]
          : [];
      })
    : [];
  const base = {
    source,
    seq: event.seq,
    at: event.at,
    ...(event.changeId ? { changeId: event.changeId } : {}),
    subject: typeof details.subject === 'string' ? details.subject : (event.changeId ?? ''),
    action,
    effect: effect ?? 'block',
    rules,
  };
  const sha256 = typeof details.factsSha256 === 'string' && HEX64.test(details.factsSha256) ? details.factsSha256 : undefined;
  let facts: RecordedDecision['facts'];
  if (!effect) facts = { kind: 'none', reason: 'the recorded effect is not allow, requireApproval or block' };
  else if (!(POLICY_ACTIONS as readonly string[]).includes(action))
    facts = { kind: 'none', reason: `"${action}" is not decided by policy rules` };
  else if (details.facts !== undefined) facts = { kind: 'inline', value: details.facts, ...(sha256 ? { sha256 } : {}) };
  else if (sha256) facts = { kind: 'file', sha256 };
  else
    facts = {
      kind: 'none',
      reason: 'no facts recorded (written before decisions recorded their facts, or refused before policy was asked)',
    };
  return { ...base, facts };
}

/** Facts from a facts file's text: its SHA-256 must be the digest the event recorded (the event is in the hash chain, the file is not). */
export function factsFromFile(text: string | undefined, sha256: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  const where = `${FACTS_FOLDER}/<factsSha256>.json beside the log`;
  if (text === undefined) return { ok: false, reason: `its facts file (${where}) is missing` };
  if (oneShotHash('sha256', text, 'hex') !== sha256)
    return { ok: false, reason: `its facts file (${where}) does not match the digest the event recorded: it was changed` };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reason: `its facts file (${where}) is not JSON` };
  }
}

/** One decision whose effect would change under the candidate. */
export interface ReplayFlip {
  source: string;
  seq: number;
  at: string;
  changeId?: string;
  subject: string;
  action: string;
  from: Effect;
  to: Effect;
  /** stricter: the candidate would stop what was let through (or ask approval for it); looser: the reverse. */
  direction: 'stricter' | 'looser';
  /** The rules recorded at the time, and the rules that match under the candidate. */
  recordedRules: RecordedRule[];
  candidateRules: RecordedRule[];
  /** The candidate's one-line explanation. */
  explanation: string;
}

export interface ReplayReport {
  candidate: { policyRef: string; policyHash: string };
  /** policy.decision events read (verified). */
  decisions: number;
  replayed: number;
  unchanged: number;
  flips: ReplayFlip[];
  notReplayable: number;
  /** Why decisions could not be replayed, with how many each. */
  notReplayableReasons: { reason: string; count: number }[];
  warnings: string[];
}

/**
 * Accumulates replayed decisions. Feed each recorded decision with its facts
 * (`add`), or without when they cannot be had (`skip`); then `report()`.
 */
export class PolicyReplay {
  private decisions = 0;
  private replayed = 0;
  private unchanged = 0;
  private readonly flips: ReplayFlip[] = [];
  private readonly skipped = new Map<string, number>();
  private readonly warnings: string[] = [];
  private readonly sources: string[] = [];

  constructor(private readonly candidate: EffectivePolicy) {}

  /** Replays one decision with facts read from its event or file. */
  add(decision: RecordedDecision, facts: unknown): ReplayFlip | undefined {
    this.count(decision);
    const parsed = RecordedFactsSchema.safeParse(facts);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.skipFor(`its recorded facts are not facts policy reads (${issue?.path.join('.') || 'facts'}: ${issue?.message ?? 'invalid'})`);
      return undefined;
    }
    const now = new Date(decision.at);
    const result = evaluate(this.candidate, parsed.data as ChangeFacts, decision.action as PolicyAction, now);
    this.replayed++;
    if (result.effect === decision.effect) {
      this.unchanged++;
      return undefined;
    }
    const flip: ReplayFlip = {
      source: decision.source,
      seq: decision.seq,
      at: decision.at,
      ...(decision.changeId ? { changeId: decision.changeId } : {}),
      subject: decision.subject,
      action: decision.action,
      from: decision.effect,
      to: result.effect,
      direction: EFFECTS.indexOf(result.effect) > EFFECTS.indexOf(decision.effect) ? 'stricter' : 'looser',
      recordedRules: decision.rules,
      candidateRules: recordedRules(result),
      explanation: result.explanation,
    };
    this.flips.push(flip);
    return flip;
  }

  /** Counts a decision that cannot be replayed, and why. */
  skip(decision: RecordedDecision, reason: string): void {
    this.count(decision);
    this.skipFor(reason);
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  report(): ReplayReport {
    const order = (source: string) => this.sources.indexOf(source);
    const flips = [...this.flips].sort((a, b) => order(a.source) - order(b.source) || a.seq - b.seq);
    const notReplayableReasons = [...this.skipped].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count);
    return {
      candidate: { policyRef: this.candidate.policyRef, policyHash: this.candidate.policyHash },
      decisions: this.decisions,
      replayed: this.replayed,
      unchanged: this.unchanged,
      flips,
      notReplayable: notReplayableReasons.reduce((sum, entry) => sum + entry.count, 0),
      notReplayableReasons,
      warnings: [...this.warnings],
    };
  }

  private count(decision: RecordedDecision): void {
    this.decisions++;
    if (!this.sources.includes(decision.source)) this.sources.push(decision.source);
  }

  private skipFor(reason: string): void {
    this.skipped.set(reason, (this.skipped.get(reason) ?? 0) + 1);
  }
}

const rulesText = (rules: readonly RecordedRule[]): string =>
  rules.length ? rules.map((rule) => `${rule.rule} (${rule.effect}, ${rule.policy})`).join('; ') : '(none)';

/** The report as a plain-text table, one line per flip, for a terminal or an output channel. */
export function formatReplayTable(report: ReplayReport): string[] {
  const lines = [
    `Replaying ${report.decisions} decision${report.decisions === 1 ? '' : 's'} against ${report.candidate.policyRef} (sha256 ${report.candidate.policyHash.slice(0, 12)})`,
  ];
  if (report.flips.length) {
    const header = ['change', 'seq', 'action', 'effect', 'direction'];
    const rows = report.flips.map((flip) => [
      flip.changeId ?? flip.subject,
      String(flip.seq),
      flip.action,
      `${flip.from} → ${flip.to}`,
      flip.direction,
    ]);
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    const line = (cells: string[]) =>
      cells
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd();
    lines.push('', line(header));
    report.flips.forEach((flip, index) => {
      lines.push(line(rows[index]!));
      lines.push(`    recorded rules:  ${rulesText(flip.recordedRules)}`);
      lines.push(`    candidate rules: ${rulesText(flip.candidateRules)}`);
      lines.push(`    ${flip.explanation}`);
    });
  } else {
    lines.push('', 'No decision would change.');
  }
  lines.push(
    '',
    `${report.flips.length} would flip (${report.flips.filter((f) => f.direction === 'stricter').length} stricter, ${report.flips.filter((f) => f.direction === 'looser').length} looser), ${report.unchanged} unchanged, ${report.notReplayable} not replayable`,
  );
  for (const { reason, count } of report.notReplayableReasons) lines.push(`  not replayable: ${count} × ${reason}`);
  return lines;
}

/** The report as a Markdown document (the editor's "Replay Policy…" command). */
export function formatReplayMarkdown(report: ReplayReport, logName: string): string {
  const out = [
    `# Policy replay: ${escapeMarkdown(report.candidate.policyRef)}`,
    '',
    `The ${report.decisions} policy decision${report.decisions === 1 ? '' : 's'} recorded in ${escapeMarkdown(logName)}, evaluated again against the candidate ${mdCode(report.candidate.policyRef)} (sha256 ${mdCode(report.candidate.policyHash.slice(0, 12))}) with the facts recorded at the time.`,
    '',
    `**${report.flips.length} would flip** (${report.flips.filter((f) => f.direction === 'stricter').length} stricter, ${report.flips.filter((f) => f.direction === 'looser').length} looser), ${report.unchanged} unchanged, ${report.notReplayable} not replayable.`,
    '',
  ];
  for (const warning of report.warnings) out.push(`> ${escapeMarkdown(warning)}`, '');
  if (report.flips.length) {
    out.push('| Change | Seq | Action | Recorded → candidate | Rules recorded | Rules under the candidate |', '|---|---|---|---|---|---|');
    for (const flip of report.flips) {
      out.push(
        `| ${mdCell(flip.changeId ?? flip.subject)} | ${flip.seq} | ${mdCell(flip.action)} | ${flip.from} → **${flip.to}** | ${mdCell(rulesText(flip.recordedRules))} | ${mdCell(rulesText(flip.candidateRules))} |`,
      );
    }
    out.push('', '## Why', '');
    for (const flip of report.flips) out.push(`- ${mdCell(flip.changeId ?? flip.subject)} (seq ${flip.seq}): ${mdCell(flip.explanation)}`);
    out.push('');
  } else {
    out.push('No decision would change.', '');
  }
  if (report.notReplayableReasons.length) {
    out.push('## Not replayable', '');
    for (const { reason, count } of report.notReplayableReasons) out.push(`- ${count} × ${mdCell(reason)}`);
    out.push('');
  }
  return out.join('\n');
}
