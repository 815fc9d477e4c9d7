import type { Actor, Change } from '../../core/change';
import type { ChangeStore } from '../../core/changeStore';
import type { DecisionRecord } from '../../core/decision';
import type { Evidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { EXTENSION_ACTOR } from '../../core/constants';
import type { LaneEvent, TransitionResult } from '../../core/lanes';
import { type ChangeFacts, type PolicyAction, factsFromEvidence, readsTrackRecord } from '../../core/policy/evaluate';
import { FACTS_FOLDER, factsDetails, factsForRecord, recordedRules, redactFacts } from '../../core/policy/replay';
import type { AuditLog } from '../audit/log';
import type { EvidenceStore } from '../storage/evidenceStore';
import { PolicyDeniedError, type PolicyService } from '../policy/policyService';
import type { RepoStorage } from '../storage/repoStorage';
import { autonomyRecordLength } from '../../core/policy/rollout';
import { TrackRecordReader } from '../audit/trackRecord';
import type { ResolvedPolicy } from '../../core/policy/schema';
import type { ChangeOutcome } from '../../core/metrics/trackRecord';
import { DEFAULT_INTACT_DAYS, intactVerdict } from '../../core/metrics/intact';
import { IntactFacts } from '../git/intactFacts';
import { join } from 'node:path';

/**
 * Everything a lane service needs for one repository. The lane services
 * compose core logic and infra adapters; the editor layer only asks them.
 */
export interface LaneContext {
  readonly repoRoot: string;
  readonly storage: RepoStorage;
  readonly store: ChangeStore;
  readonly evidence: EvidenceStore;
  readonly audit: AuditLog;
  readonly policy: PolicyService;
  readonly logger: Logger;
}

const trackReaders = new WeakMap<LaneContext, TrackRecordReader>();
const intactFacts = new WeakMap<LaneContext, IntactFacts>();

/**
 * The facts autonomy rules read: each task class's record from this repository's audit log. Empty when the policy
 * has no autonomy rules (nothing is read then).
 */
export async function trackFacts(ctx: LaneContext, baseSha?: string): Promise<Pick<ChangeFacts, 'track'>> {
  // The repository's own policy (at the change's base) may add autonomy rules of its own.
  const effective = baseSha ? await ctx.policy.effectiveFor({ repoRoot: ctx.repoRoot, baseSha }) : undefined;
  const policy = effective?.ok ? effective.effective.policy : ctx.policy.effective.policy;
  const length = autonomyRecordLength(policy);
  if (!length) return {};
  let reader = trackReaders.get(ctx);
  if (!reader) trackReaders.set(ctx, (reader = new TrackRecordReader(ctx.storage.auditFile)));
  await ctx.audit.flush();
  const track = await reader.read(length);
  if (asksIntactRate(policy)) await addGitVerdicts(ctx, track);
  return { track };
}

const asksIntactRate = (policy: ResolvedPolicy): boolean => policy.autonomy.some((entry) => entry.requires.intactRate !== undefined);

/** The repository's git reader of merged changes' fate (30 days), shared by the autonomy gate and the metrics view. */
export function intactFactsOf(ctx: LaneContext): IntactFacts {
  let facts = intactFacts.get(ctx);
  if (!facts)
    intactFacts.set(
      ctx,
      (facts = new IntactFacts(ctx.repoRoot, { days: DEFAULT_INTACT_DAYS, cacheFile: join(ctx.storage.root, 'intact-cache.json') })),
    );
  return facts;
}

/**
 * Marks each merged change with what git says of it (reverted or rewritten within 30 days, outside the lanes too).
 * Decided answers are cached in the lanes' storage (out of every agent's reach), so a gate reads git only for
 * changes merged in the last 30 days, and only again when the base branch moved. A git failure leaves the record as
 * the log says (lane rollbacks only), logged.
 */
async function addGitVerdicts(ctx: LaneContext, track: Record<string, ChangeOutcome[]>): Promise<void> {
  const merged = Object.values(track)
    .flat()
    .filter((change) => change.merged && change.mergeCommitSha);
  if (!merged.length) return;
  const facts = intactFactsOf(ctx);
  try {
    const answers = await facts.answers(
      merged.map((change) => ({ mergeCommitSha: change.mergeCommitSha!, ...(change.baseRef ? { baseRef: change.baseRef } : {}) })),
    );
    for (const change of merged) change.git = intactVerdict(answers.get(change.mergeCommitSha!.toLowerCase()), DEFAULT_INTACT_DAYS).verdict;
  } catch (error) {
    ctx.logger.warn(
      `Autonomy: git could not tell which merged changes were reverted or rewritten (${(error as Error).message}); lane rollbacks only.`,
    );
  }
}

/**
 * Asks policy, records the decision (audit, evidence, the change's last
 * decision) and throws PolicyDeniedError when the effect is block.
 */
export async function decide(
  ctx: LaneContext,
  action: PolicyAction,
  facts: ChangeFacts,
  change?: Change,
  actor: Actor = EXTENSION_ACTOR,
  /**
   * evidence: false keeps the decision out of the evidence record (audit and
   * the change's last decision only): an approved change's evidence is bound
   * by its hash, so the Pull request lane must not rewrite it. record: false
   * keeps it in the audit log only (an agent's calls on its lane channel are
   * not the change's gates).
   */
  options: { evidence?: boolean; record?: boolean } = {},
): Promise<DecisionRecord> {
  const repository = change ? { repoRoot: ctx.repoRoot, baseSha: change.baseSha } : undefined;
  const evaluated = await ctx.policy.withPathCase(
    { ...facts, ...(change ? { changeId: change.id, agentId: change.agentId } : {}) },
    repository,
  );
  // The class records autonomy rules read are facts of the moment, not of the change: not recorded for replay.
  // The track record (the audit log, and git when a rule asks for the intact rate) is read only where it can matter.
  const track = readsTrackRecord(action) ? await trackFacts(ctx, change?.baseSha) : {};
  const decision = await ctx.policy.decide(action, { ...track, ...evaluated }, repository);
  await ctx.audit.append({
    actor,
    action: 'policy.decision',
    ...(change ? { changeId: change.id } : {}),
    decisionId: decision.decisionId,
    policy: auditPolicyRef(decision, ctx),
    details: {
      action,
      effect: decision.effect,
      subject: decision.subject,
      explanation: decision.explanation,
      rules: recordedRules(decision),
      ...(await recordFacts(ctx, evaluated)),
    },
  });
  if (change && options.record !== false) {
    await recordDecision(ctx, change.id, decision, options);
  }
  if (decision.effect === 'block') throw new PolicyDeniedError(decision);
  return decision;
}

/**
 * The facts a decision evaluated, for `agent-lanes policy replay`: only what
 * evaluation reads, redacted like the event, inline when small, otherwise in
 * facts/<sha256>.json beside the audit log (written first) with the digest and
 * a summary in the event. A facts file that cannot be written leaves the
 * decision without facts (not replayable), logged, rather than failing it.
 */
async function recordFacts(ctx: LaneContext, facts: ChangeFacts): Promise<Record<string, unknown>> {
  try {
    const redacted = redactFacts(factsForRecord(facts), ctx.audit.secretPatternsNow);
    const { details, file } = factsDetails(redacted.facts);
    if (file) await ctx.audit.writeBeside(FACTS_FOLDER, file.name, file.text);
    return { ...details, ...(redacted.summary.total ? { factsRedactions: redacted.summary } : {}) };
  } catch (error) {
    ctx.logger.error('Recording the facts of a policy decision (the decision is audited without them)', error);
    return { factsNotRecorded: (error as Error).message };
  }
}

/** The event's `policy`: always "id@version" (another value fails the event schema, and readers drop the event). */
function auditPolicyRef(decision: DecisionRecord, ctx: LaneContext): string {
  const ref = decision.matchedRules[0]?.policy;
  return ref && /^.+@.+$/.test(ref) ? ref : ctx.policy.effective.policyRef;
}

/** Keeps the decision with the change (tooltip, review) and in its evidence. */
async function recordDecision(
  ctx: LaneContext,
  changeId: string,
  decision: DecisionRecord,
  options: { evidence?: boolean } = {},
): Promise<void> {
  await ctx.store.update(changeId, (change) => ({ ...change, lastDecision: decision }));
  if (options.evidence === false) return;
  const current = await ctx.evidence.read(changeId);
  if (current.kind === 'ok') {
    const decisions = [...current.evidence.decisions.filter((d) => d.action !== decision.action), decision];
    await ctx.evidence.write({ ...current.evidence, decisions });
  }
}

/** The policy facts of a change: its evidence plus what only the record knows. */
export function changeFacts(change: Change, evidence: Evidence | undefined, extras: Partial<ChangeFacts> = {}): ChangeFacts {
  const fromRecord: Partial<ChangeFacts> = {
    changeId: change.id,
    agentId: change.agentId,
    task: change.task,
    ...(change.taskClass ? { taskClass: change.taskClass } : {}),
    ...(change.createdBy ? { author: change.createdBy } : {}),
    ...(change.approval && !change.approval.invalidated
      ? { approvals: [{ by: change.approval.by, isAuthor: change.approval.by === change.createdBy }] }
      : {}),
    ...extras,
  };
  return evidence ? factsFromEvidence(evidence, fromRecord) : fromRecord;
}

/**
 * Moves a change through the lane state machine and audits the move: the one
 * way a lane service changes a change's lane. A refusal changes nothing and is
 * not audited; the caller decides what a refusal means.
 */
export async function moveChange(
  ctx: LaneContext,
  changeId: string,
  event: LaneEvent,
  actor: Actor,
  options: { reason?: string; details?: Record<string, unknown>; alsoSet?: (moved: Change) => Change } = {},
): Promise<TransitionResult> {
  const before = ctx.store.get(changeId);
  const moved = await ctx.store.transition(changeId, event, actor, options.reason, options.alsoSet);
  if (!moved.ok) return moved;
  await ctx.audit.append({
    actor,
    action: 'lane.transition',
    changeId,
    details: {
      event,
      from: before?.lane,
      to: moved.change.lane,
      ...(options.reason === undefined ? {} : { reason: options.reason }),
      ...options.details,
    },
  });
  return moved;
}
