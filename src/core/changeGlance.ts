import type { Change } from './change';
import type { ReviewGlance } from './review/reviewModel';

/** At most this many characters of a blocking reason in a row (the tooltip and Explain Decision have the rest). */
const REASON_CHARS = 48;

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text);

/**
 * The short state word a change's row leads with, so it survives a narrow
 * sidebar: what blocks it, whether its agent runs or failed
 * (Review's own verdict comes from the review: reviewGlance). Undefined when nothing needs saying.
 */
export function changeState(change: Pick<Change, 'lane' | 'agentRun' | 'lastDecision' | 'alerts' | 'release'>): string | undefined {
  if (change.lane === 'release' && change.release?.needsRollback) return '⚠ needs rollback';
  const run = change.agentRun?.state;
  if (run === 'running') return 'agent running';
  if (change.alerts?.length) return '⚠ checkout changed';
  const blocked = blockingReason(change);
  if (blocked !== undefined) return `blocked: ${cut(blocked, REASON_CHARS)}`;
  if (run === 'noChanges') return 'no changes';
  if (run && ['failed', 'timedOut', 'cancelled', 'refused', 'interrupted'].includes(run))
    return `agent ${run === 'timedOut' ? 'timed out' : run}`;
  return undefined;
}

/** A row's description: the state first, then the lane's glance (a verdict, a pull request), the agent and the age. */
export function changeDescription(parts: {
  state?: string | undefined;
  glance?: string | undefined;
  agentId: string;
  age: string;
}): string {
  return [parts.state, parts.glance, parts.agentId, parts.age].filter(Boolean).join(' · ');
}

/** What blocked a change in Draft or Sandbox: the blocking rule's reason, else the decision's explanation. */
function blockingReason(change: Pick<Change, 'lane' | 'lastDecision'>): string | undefined {
  if ((change.lane !== 'draft' && change.lane !== 'sandbox') || change.lastDecision?.effect !== 'block') return undefined;
  const rule = change.lastDecision.matchedRules.find((matched) => matched.effect === 'block');
  return rule?.reason ?? change.lastDecision.explanation;
}

export interface ChangeWhy {
  /** blocked: a policy decision; failed: the sandbox run; review: the Review gate's verdict. */
  kind: 'blocked' | 'failed' | 'review';
  text: string;
}

/**
 * Why a change cannot move on, in full (its row cuts the reason; this is the row under it): the rule that blocked
 * it, the sandbox run that failed, or in Review the gate's verdict. Undefined when nothing holds it.
 */
export function changeWhy(
  change: Pick<Change, 'lane' | 'lastDecision' | 'sandbox'>,
  context: { sandboxVerdict?: string | undefined; reviewGlance?: ReviewGlance | undefined } = {},
): ChangeWhy | undefined {
  const blocked = blockingReason(change);
  if (blocked !== undefined) return { kind: 'blocked', text: `Blocked: ${blocked}` };
  if (change.lane === 'sandbox' && (change.sandbox?.verdict === 'failed' || change.sandbox?.verdict === 'error'))
    return { kind: 'failed', text: change.sandbox.message ?? context.sandboxVerdict ?? 'The sandbox run failed' };
  if (change.lane === 'review' && context.reviewGlance?.state === 'blocked')
    return { kind: 'review', text: `Blocked: ${context.reviewGlance.reason ?? context.reviewGlance.text}` };
  return undefined;
}

/** A change in Release at a glance: the newest run of each action ("deploy-staging succeeded · deploy-production running"). */
export function releaseGlance(change: Pick<Change, 'release'>): string | undefined {
  const runs = change.release?.runs ?? [];
  if (!runs.length) return change.release ? `merged ${change.release.mergedSha.slice(0, 7)} · no action yet` : undefined;
  const newest = new Map<string, string>();
  for (const run of runs) newest.set(run.actionId, run.state);
  const revert = change.release?.revert ? ` · reverting in ${change.release.revert.changeId}` : '';
  return [...newest].map(([id, state]) => `${id} ${state === 'timedOut' ? 'timed out' : state}`).join(' · ') + revert;
}
