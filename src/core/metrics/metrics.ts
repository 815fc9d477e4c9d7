/**
 * Promotion as an operating metric: how changes move through the lanes,
 * computed from audit events one at a time. The reducer keeps one small
 * record per change (keyed by repository and change id), never the events,
 * so its memory grows with the number of changes, not with the log.
 */

/** The part of an audit event the metrics read. */
export interface MetricsEvent {
  action: string;
  at: string;
  actor: { type: string; id: string };
  changeId?: string;
  details: Record<string, unknown>;
  policy?: string;
}

export const STAGES = ['drafted', 'sandboxPassed', 'approved', 'prOpened', 'merged'] as const;
type Stage = (typeof STAGES)[number];
const LANE_NAMES = ['draft', 'sandbox', 'review', 'pullRequest'] as const;
type LaneName = (typeof LANE_NAMES)[number];
export const GROUP_BY = ['agent', 'repository', 'taskClass', 'period'] as const;
export type GroupBy = (typeof GROUP_BY)[number];
/** @internal Exported for its unit tests. */
export const UNCLASSIFIED = 'unclassified';

interface ChangeState {
  repository: string;
  agent: string;
  taskClass: string;
  /** YYYY-MM of the change's creation (or first event). */
  period: string;
  /** Index into STAGES of the furthest stage reached, -1 before change.create. */
  stage: number;
  /** Bit i: stage i was reached with no setback since the stage before it. */
  firstPass: number;
  setbacks: number;
  requestChanges: number;
  agentRuns: number;
  editsAfterApproval: number;
  lane: LaneName | 'closed' | undefined;
  laneSince: number;
  laneMs: [number, number, number, number];
  /** Files and changed lines of the last pull-request decision's facts, when recorded. */
  prFiles?: number;
  prLines?: number;
  /** "rule|effect|policy" → count, for this change's non-allow decisions. */
  reasons?: Map<string, number>;
}

interface StageFigure {
  stage: Stage;
  /** Changes that reached the stage. */
  count: number;
  /** count ÷ the previous stage's count (undefined for drafted or when the previous is 0). */
  conversion?: number;
  /** Of those that reached it, the share that did so with no setback since the previous stage. */
  firstPassRate?: number;
}

interface ReasonFigure {
  rule: string;
  effect: string;
  /** "id@version" of the policy level the rule came from. */
  policy: string;
  count: number;
  /** How many changes it hit. */
  changes: number;
}

export interface Summary {
  count: number;
  mean?: number;
  median?: number;
  p90?: number;
}

interface GroupMetrics {
  key: string;
  changes: number;
  funnel: StageFigure[];
  reasons: ReasonFigure[];
  rework: {
    requestedChangesRounds: number;
    changesWithRequestedChanges: number;
    agentReruns: number;
    editsAfterApproval: number;
  };
  /** Hours spent in each lane, over the stays that ended (a change still in a lane is not counted for that stay). */
  laneHours: Record<LaneName, Summary>;
  /** Changed lines (additions + deletions) and files per pull request, when the decision facts recorded them. */
  prLines: Summary;
  prFiles: Summary;
}

export interface MetricsReport {
  by: GroupBy;
  events: number;
  groups: GroupMetrics[];
}

const NO_AGENT = 'unknown';

/** Folds audit events into per-change records; `report()` groups them. */
export class MetricsReducer {
  private readonly changes = new Map<string, ChangeState>();
  private events = 0;

  /** How many changes are held (the reducer's memory is proportional to this). */
  get changeCount(): number {
    return this.changes.size;
  }

  /** One event of the log of `repository` (its repoKey, or another name for it). */
  add(repository: string, event: MetricsEvent): void {
    this.events++;
    const changeId = event.changeId;
    if (changeId === undefined) return;
    const key = `${repository}\u0000${changeId}`;
    let state = this.changes.get(key);
    const time = Date.parse(event.at);
    if (!state) {
      state = {
        repository,
        agent: NO_AGENT,
        taskClass: UNCLASSIFIED,
        period: event.at.slice(0, 7),
        stage: -1,
        firstPass: 0,
        setbacks: 0,
        requestChanges: 0,
        agentRuns: 0,
        editsAfterApproval: 0,
        lane: undefined,
        laneSince: time,
        laneMs: [0, 0, 0, 0],
      };
      this.changes.set(key, state);
    }
    const details = event.details;
    switch (event.action) {
      case 'change.create': {
        if (typeof details.agentId === 'string' && details.agentId) state.agent = details.agentId;
        if (typeof details.taskClass === 'string' && details.taskClass) state.taskClass = details.taskClass;
        state.period = event.at.slice(0, 7);
        state.lane = 'draft';
        state.laneSince = time;
        reach(state, 0);
        break;
      }
      case 'agent.start':
        state.agentRuns++;
        if (state.agent === NO_AGENT && typeof details.agentId === 'string' && details.agentId) state.agent = details.agentId;
        break;
      case 'lane.transition': {
        const to = details.to;
        if (state.lane && state.lane !== 'closed' && Number.isFinite(time) && Number.isFinite(state.laneSince)) {
          state.laneMs[LANE_NAMES.indexOf(state.lane)] += Math.max(0, time - state.laneSince);
        }
        state.lane = (LANE_NAMES as readonly unknown[]).includes(to) ? (to as LaneName) : to === 'closed' ? 'closed' : state.lane;
        state.laneSince = time;
        const how = details.event;
        if (how === 'sendBack' || how === 'requestChanges') state.setbacks++;
        if (details.from === 'sandbox' && to === 'review') reach(state, 1);
        if (how === 'pullRequestMerged') reach(state, 4);
        break;
      }
      case 'review.approve':
        reach(state, 2);
        break;
      case 'review.requestChanges':
        state.requestChanges++;
        state.setbacks++;
        break;
      case 'review.reject':
        state.setbacks++;
        break;
      case 'approval.invalidated':
        state.editsAfterApproval++;
        state.setbacks++;
        break;
      case 'push':
      case 'pr.create':
        if (details.outcome === 'failed') state.setbacks++;
        else if (event.action === 'pr.create') reach(state, 3);
        break;
      case 'pr.closed':
        if (details.state === 'merged') reach(state, 4);
        break;
      case 'policy.decision':
        this.decision(state, details, event.policy);
        break;
      default:
        break;
    }
  }

  private decision(state: ChangeState, details: Record<string, unknown>, policy: string | undefined): void {
    const effect = typeof details.effect === 'string' ? details.effect : 'unknown';
    const action = details.action;
    const summary = details.factsSummary as { files?: unknown; changedLines?: unknown } | undefined;
    if (
      (action === 'createPullRequest' || action === 'gate.reviewToPullRequest') &&
      (!details.facts || typeof details.facts !== 'object') &&
      typeof summary?.files === 'number' &&
      typeof summary.changedLines === 'number'
    ) {
      // Facts too large for the event are in a file beside the log; the event keeps their summary.
      state.prFiles = summary.files;
      state.prLines = summary.changedLines;
    } else if (
      (action === 'createPullRequest' || action === 'gate.reviewToPullRequest') &&
      details.facts &&
      typeof details.facts === 'object'
    ) {
      const files = (details.facts as { files?: unknown }).files;
      if (Array.isArray(files)) {
        let lines = 0;
        for (const file of files as { additions?: unknown; deletions?: unknown }[]) {
          lines += (typeof file?.additions === 'number' ? file.additions : 0) + (typeof file?.deletions === 'number' ? file.deletions : 0);
        }
        state.prFiles = files.length;
        state.prLines = lines;
      }
    }
    if (effect === 'allow') return;
    // Decisions on an agent's own calls are not gates of the change.
    if (action !== 'agentCall') state.setbacks++;
    const rules = Array.isArray(details.rules) ? (details.rules as { rule?: unknown; effect?: unknown; policy?: unknown }[]) : [];
    const reasons = (state.reasons ??= new Map());
    const seen = new Set<string>();
    const note = (rule: string, ruleEffect: string, ref: string) => {
      const key = `${rule}|${ruleEffect}|${ref}`;
      if (seen.has(key)) return;
      seen.add(key);
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    };
    for (const rule of rules) {
      if (typeof rule?.rule !== 'string') continue;
      note(
        rule.rule,
        typeof rule.effect === 'string' ? rule.effect : effect,
        typeof rule.policy === 'string' ? rule.policy : (policy ?? '?'),
      );
    }
    if (!seen.size) note('(not recorded)', effect, policy ?? '?');
  }

  report(by: GroupBy): MetricsReport {
    const groups = new Map<string, ChangeState[]>();
    for (const state of this.changes.values()) {
      const key =
        by === 'agent' ? state.agent : by === 'repository' ? state.repository : by === 'taskClass' ? state.taskClass : state.period;
      let list = groups.get(key);
      if (!list) groups.set(key, (list = []));
      list.push(state);
    }
    const out: GroupMetrics[] = [];
    for (const [key, states] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out.push(groupMetrics(key, states));
    return { by, events: this.events, groups: out };
  }
}

function reach(state: ChangeState, stage: number): void {
  if (stage <= state.stage) return;
  // Skipped stages (a log that starts mid-way) count as reached, not as first pass.
  if (stage === state.stage + 1 && state.setbacks === 0) state.firstPass |= 1 << stage;
  state.stage = stage;
  state.setbacks = 0;
}

function groupMetrics(key: string, states: ChangeState[]): GroupMetrics {
  const funnel: StageFigure[] = [];
  let previous = 0;
  STAGES.forEach((stage, index) => {
    let count = 0;
    let first = 0;
    for (const state of states) {
      if (state.stage < index) continue;
      count++;
      if (state.firstPass & (1 << index)) first++;
    }
    const figure: StageFigure = { stage, count };
    if (index > 0 && previous > 0) figure.conversion = round(count / previous);
    if (count > 0) figure.firstPassRate = round(first / count);
    funnel.push(figure);
    previous = count;
  });
  const reasonCounts = new Map<string, { count: number; changes: number }>();
  let rounds = 0;
  let withRounds = 0;
  let reruns = 0;
  let edits = 0;
  const lanes: number[][] = [[], [], [], []];
  const prLines: number[] = [];
  const prFiles: number[] = [];
  for (const state of states) {
    for (const [reason, count] of state.reasons ?? []) {
      const entry = reasonCounts.get(reason) ?? { count: 0, changes: 0 };
      entry.count += count;
      entry.changes++;
      reasonCounts.set(reason, entry);
    }
    rounds += state.requestChanges;
    if (state.requestChanges) withRounds++;
    reruns += Math.max(0, state.agentRuns - 1);
    edits += state.editsAfterApproval;
    state.laneMs.forEach((ms, lane) => {
      const left = state.lane !== LANE_NAMES[lane];
      if (ms > 0 || (left && state.stage >= 0 && laneVisited(state, lane))) lanes[lane]!.push(ms / 3_600_000);
    });
    if (state.prLines !== undefined) prLines.push(state.prLines);
    if (state.prFiles !== undefined) prFiles.push(state.prFiles);
  }
  const reasons: ReasonFigure[] = [...reasonCounts]
    .map(([reason, { count, changes }]) => {
      const [rule, effect, policy] = reason.split('|') as [string, string, string];
      return { rule, effect, policy, count, changes };
    })
    .sort((a, b) => b.count - a.count || (a.rule < b.rule ? -1 : 1));
  return {
    key,
    changes: states.filter((state) => state.stage >= 0).length,
    funnel,
    reasons,
    rework: { requestedChangesRounds: rounds, changesWithRequestedChanges: withRounds, agentReruns: reruns, editsAfterApproval: edits },
    laneHours: {
      draft: summarize(lanes[0]!),
      sandbox: summarize(lanes[1]!),
      review: summarize(lanes[2]!),
      pullRequest: summarize(lanes[3]!),
    },
    prLines: summarize(prLines),
    prFiles: summarize(prFiles),
  };
}

/** A lane counts as visited when the change got past it (its time may round to 0). */
function laneVisited(state: ChangeState, lane: number): boolean {
  return lane === 0
    ? state.lane !== 'draft'
    : lane === 1
      ? state.stage >= 1
      : lane === 2
        ? state.stage >= 3
        : state.lane === 'closed' && state.stage >= 3;
}

function summarize(values: number[]): Summary {
  if (!values.length) return { count: 0 };
  values.sort((a, b) => a - b);
  const sum = values.reduce((a, b) => a + b, 0);
  const at = (p: number) => values[Math.min(values.length - 1, Math.floor(p * values.length))]!;
  return { count: values.length, mean: round(sum / values.length), median: round(at(0.5)), p90: round(at(0.9)) };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
