import type { Change } from './change';

/** At most this many characters of a blocking reason in a row (the tooltip and Explain Decision have the rest). */
const REASON_CHARS = 48;

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text);

/**
 * The short state word a change's row leads with, so it survives a narrow
 * sidebar: what blocks it, whether its agent runs or failed
 * (Review's own verdict comes from the review: reviewGlance). Undefined when nothing needs saying.
 */
export function changeState(change: Pick<Change, 'lane' | 'agentRun' | 'lastDecision' | 'alerts'>): string | undefined {
  const run = change.agentRun?.state;
  if (run === 'running') return 'agent running';
  if (change.alerts?.length) return '⚠ checkout changed';
  if ((change.lane === 'draft' || change.lane === 'sandbox') && change.lastDecision?.effect === 'block') {
    const rule = change.lastDecision.matchedRules.find((matched) => matched.effect === 'block');
    return `blocked: ${cut(rule?.reason ?? change.lastDecision.explanation, REASON_CHARS)}`;
  }
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
