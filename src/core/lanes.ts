import { type Actor, type Change, type ChangeStatus, type ClosedReason, LANE_LABELS } from './change';

/** Everything that can happen to a change's lane. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const LANE_EVENTS = [
  'promote',
  'sendBack',
  'requestChanges',
  'reject',
  'discard',
  'pullRequestMerged',
  'pullRequestClosed',
  'enterRelease',
  'closeRelease',
] as const;
export type LaneEvent = (typeof LANE_EVENTS)[number];

export type TransitionResult = { ok: true; change: Change } | { ok: false; reason: string };

interface Rule {
  to: ChangeStatus;
  closedReason?: ClosedReason;
  /** Returns a refusal when the change does not meet the lane's own invariant. */
  guard?: (change: Change) => string | undefined;
}

const draftIsReady = (change: Change): string | undefined => {
  if (change.agentRun?.state === 'running')
    return 'its agent is still running; wait for it to finish or stop it ("Agent Lanes: Stop Agent").';
  if (!change.headSha || change.headSha === change.baseSha) return 'its draft has no changes yet; run an agent on it first.';
  return undefined;
};

const sandboxPassed = (change: Change): string | undefined => {
  const sandbox = change.sandbox;
  if (!sandbox || sandbox.verdict === 'running')
    return 'its sandbox tasks have not finished; run them with "Agent Lanes: Run Sandbox Tasks".';
  if (sandbox.verdict !== 'passed') {
    const tasks = sandbox.failedTasks.length ? ` (${sandbox.failedTasks.join(', ')})` : '';
    return `its required sandbox tasks did not pass${tasks}; fix the draft or send it back to Draft.`;
  }
  if (sandbox.headSha && change.headSha && sandbox.headSha !== change.headSha)
    return 'the draft changed after its sandbox run; run the sandbox tasks again.';
  return undefined;
};

const approvalHolds = (change: Change): string | undefined => {
  if (!change.approval) return 'it has not been approved; open its review and approve it first.';
  if (change.approval.invalidated) return `its approval no longer holds (${change.approval.invalidated.reason}); review it again.`;
  return undefined;
};

const agentNotRunning = (change: Change): string | undefined =>
  change.agentRun?.state === 'running' ? 'its agent is still running; stop it first ("Agent Lanes: Stop Agent").' : undefined;

const releaseSettled = (change: Change): string | undefined =>
  change.release?.runs.some((run) => run.state === 'requested' || run.state === 'running')
    ? 'a production action is still running; wait for it to finish.'
    : undefined;

/** The legal transitions: lane → event → rule. Anything absent is refused. */
const TRANSITIONS: Partial<Record<ChangeStatus, Partial<Record<LaneEvent, Rule>>>> = {
  draft: {
    promote: { to: 'sandbox', guard: draftIsReady },
    discard: { to: 'closed', closedReason: 'discarded', guard: agentNotRunning },
  },
  sandbox: {
    promote: { to: 'review', guard: sandboxPassed },
    sendBack: { to: 'draft' },
    discard: { to: 'closed', closedReason: 'discarded' },
  },
  review: {
    promote: { to: 'pullRequest', guard: approvalHolds },
    requestChanges: { to: 'draft' },
    reject: { to: 'closed', closedReason: 'rejected' },
    discard: { to: 'closed', closedReason: 'discarded' },
  },
  pullRequest: {
    pullRequestMerged: { to: 'closed', closedReason: 'merged' },
    // Merged where policy lists production actions: the change stays for them (docs/actions.md).
    enterRelease: { to: 'release' },
    pullRequestClosed: { to: 'closed', closedReason: 'pullRequestClosed' },
  },
  release: {
    closeRelease: { to: 'closed', closedReason: 'merged', guard: releaseSettled },
  },
};

function laneName(status: ChangeStatus): string {
  return status === 'closed' ? 'closed' : LANE_LABELS[status];
}

const CLOSED_WORDS: Record<ClosedReason, string> = {
  discarded: 'discarded',
  rejected: 'rejected',
  merged: 'merged',
  pullRequestClosed: 'closed with its pull request',
};

/** Why an event is not legal in a lane at all, in words a person can act on. */
function illegalReason(change: Change, event: LaneEvent): string {
  const lane = change.lane;
  const where = `Change ${change.id} is in ${laneName(lane)}`;
  if (lane === 'closed') {
    const why = change.closedReason ? CLOSED_WORDS[change.closedReason] : 'closed';
    return `Change ${change.id} is ${why}; a closed change cannot move. Its record and audit stay; start a new draft instead.`;
  }
  switch (event) {
    case 'promote':
      return lane === 'release'
        ? `${where}, the last lane: run its production actions, or close it.`
        : `${where}; it leaves it when its pull request is merged or closed.`;
    case 'sendBack':
      return lane === 'draft' ? `${where} already.` : `${where}; to send it back to Draft, request changes in its review.`;
    case 'requestChanges':
      return `${where}; changes can be requested only while it is in Review.`;
    case 'reject':
      return lane === 'pullRequest'
        ? `${where}; close its pull request instead.`
        : `${where}; only a change in Review can be rejected. Discard it instead.`;
    case 'discard':
      return lane === 'release'
        ? `${where}: it was merged. Close it when its production actions are done.`
        : `${where} and has a pull request; close the pull request, which ends the change.`;
    case 'pullRequestMerged':
    case 'pullRequestClosed':
    case 'enterRelease':
      return lane === 'release' ? `${where} already.` : `${where} and has no pull request yet.`;
    case 'closeRelease':
      return `${where}; only a change in Release can be closed this way.`;
  }
}

/** The lane an event would move a change to, or undefined when illegal. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function targetOf(lane: ChangeStatus, event: LaneEvent): ChangeStatus | undefined {
  return TRANSITIONS[lane]?.[event]?.to;
}

/**
 * Applies an event. Pure: returns the moved copy, or a refusal that says why
 * and what to do. Policy gates are asked separately, before this.
 */
export function transition(change: Change, event: LaneEvent, actor: Actor, options: { at?: Date; reason?: string } = {}): TransitionResult {
  const rule = TRANSITIONS[change.lane]?.[event];
  if (!rule) return { ok: false, reason: illegalReason(change, event) };
  const refusal = rule.guard?.(change);
  if (refusal) return { ok: false, reason: `Change ${change.id} cannot ${describeEvent(event, change.lane)}: ${refusal}` };
  const at = (options.at ?? new Date()).toISOString();
  const moved: Change = {
    ...change,
    lane: rule.to,
    updatedAt: at,
    history: [
      ...change.history,
      { at, event, from: change.lane, to: rule.to, actor, ...(options.reason ? { reason: options.reason } : {}) },
    ],
  };
  if (rule.closedReason) moved.closedReason = rule.closedReason;
  // Leaving Review for Draft drops the approval and the sandbox verdict: both
  // were given for a diff that is about to change.
  if (rule.to === 'draft') {
    delete moved.approval;
    delete moved.sandbox;
  }
  return { ok: true, change: moved };
}

function describeEvent(event: LaneEvent, lane: ChangeStatus): string {
  switch (event) {
    case 'promote': {
      const to = targetOf(lane, 'promote');
      return to ? `move to ${laneName(to)}` : 'move on';
    }
    case 'sendBack':
      return 'go back to Draft';
    case 'requestChanges':
      return 'go back to Draft with requested changes';
    case 'reject':
      return 'be rejected';
    case 'discard':
      return 'be discarded';
    case 'pullRequestMerged':
      return 'close as merged';
    case 'pullRequestClosed':
      return 'close with its pull request';
    case 'enterRelease':
      return 'enter Release';
    case 'closeRelease':
      return 'close';
  }
}
