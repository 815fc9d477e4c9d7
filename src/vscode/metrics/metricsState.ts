import { INTACT_VERDICTS, type IntactVerdict } from '../../core/metrics/intact';
import type { ChangeSummary, GroupBy, MetricsFilter, MetricsReducer, MetricsReport } from '../../core/metrics/metrics';

/**
 * The metrics panel's state and the messages its page may send. The page is a less trusted surface (it shows names
 * an agent chose), so the host takes from it only what it offered: a grouping, filter values from the log's own
 * values, a figure key it drew, a change id it listed.
 */

/** The groupings the view offers (a view is one repository's log). */
export const VIEW_GROUPINGS: readonly GroupBy[] = ['taskClass', 'agent', 'period'];
/** Periods counted back from now, by days; a month (YYYY-MM) is the other kind of period. */
export const RECENT_PERIODS: Readonly<Record<string, number>> = { last7: 7, last30: 30, last90: 90 };
const DAY_MS = 86_400_000;

export const STAGE_WORDS: Record<string, string> = {
  drafted: 'Drafted',
  sandboxPassed: 'Sandbox passed',
  approved: 'Approved',
  prOpened: 'PR opened',
  merged: 'Merged',
};

/** What the panel shows: the grouping and the filters (each absent: all). */
export interface MetricsViewState {
  by: GroupBy;
  agent?: string;
  taskClass?: string;
  /** A RECENT_PERIODS key or a month, YYYY-MM. */
  period?: string;
}

/** The values a filter can take: those the log's changes have. */
export interface MetricsChoices {
  agents: string[];
  taskClasses: string[];
  months: string[];
}

export function choicesOf(reducer: MetricsReducer): MetricsChoices {
  return { agents: reducer.values('agent'), taskClasses: reducer.values('taskClass'), months: reducer.values('period') };
}

/** The reducer's filter for a state; recent periods count back from `now`. */
export function filterOf(state: MetricsViewState, now: number): MetricsFilter {
  const filter: MetricsFilter = {};
  if (state.agent !== undefined) filter.agent = state.agent;
  if (state.taskClass !== undefined) filter.taskClass = state.taskClass;
  const days = state.period === undefined ? undefined : RECENT_PERIODS[state.period];
  if (days !== undefined) filter.since = now - days * DAY_MS;
  else if (state.period !== undefined) filter.period = state.period;
  return filter;
}

/** The keys of the figures the page links (a group's index, what is counted). */
export const figureKeys = {
  changes: (group: number) => `${group}:changes`,
  stage: (group: number, stage: string) => `${group}:stage:${stage}`,
  firstPass: (group: number, stage: string) => `${group}:firstPass:${stage}`,
  reason: (group: number, index: number) => `${group}:reason:${index}`,
  rework: (group: number, which: 'requestedChanges' | 'agentReruns' | 'editsAfterApproval') => `${group}:rework:${which}`,
  intact: (group: number, verdict: IntactVerdict) => `${group}:intact:${verdict}`,
};

/** How a list names the merged changes of each intact verdict. */
export const INTACT_WORDS: Record<IntactVerdict, string> = {
  intact: 'Intact',
  reverted: 'Reverted',
  rewritten: 'Rewritten',
  pending: 'Pending',
  notMeasurable: 'Not measurable',
};

/** A figure the page links to the changes behind it. */
export interface LinkedFigure {
  /** What it counts, as the list's heading. */
  caption: string;
  ids: string[];
}

/** Every linked figure of a report made with `keepChanges`, by key (none without it). */
export function linkedFigures(report: MetricsReport): Map<string, LinkedFigure> {
  const figures = new Map<string, LinkedFigure>();
  report.groups.forEach((group, g) => {
    const add = (key: string, caption: string, ids: string[] | undefined) => {
      if (ids?.length) figures.set(key, { caption: `${group.key} · ${caption}`, ids });
    };
    add(figureKeys.changes(g), 'all changes', group.changeIds);
    for (const stage of group.funnel) {
      const words = STAGE_WORDS[stage.stage] ?? stage.stage;
      add(figureKeys.stage(g, stage.stage), words, stage.changeIds);
      add(figureKeys.firstPass(g, stage.stage), `${words} on first pass`, stage.firstPassIds);
    }
    group.reasons.forEach((reason, index) =>
      add(figureKeys.reason(g, index), `stopped by ${reason.rule} (${reason.effect})`, reason.changeIds),
    );
    const rework = group.rework.changeIds;
    add(figureKeys.rework(g, 'requestedChanges'), 'sent back by a review', rework?.requestedChanges);
    add(figureKeys.rework(g, 'agentReruns'), 'agent re-run', rework?.agentReruns);
    add(figureKeys.rework(g, 'editsAfterApproval'), 'edited after approval', rework?.editsAfterApproval);
    for (const verdict of INTACT_VERDICTS)
      add(figureKeys.intact(g, verdict), `merged, ${INTACT_WORDS[verdict].toLowerCase()} (git)`, group.intact?.changeIds?.[verdict]);
  });
  return figures;
}

/** One change of a list as the page shows it. */
export interface ListedChange extends ChangeSummary {
  /** From the change store; empty when the store no longer has the change. */
  title: string;
}

/** What the page sent, once checked. */
export type MetricsMessage =
  | { type: 'refresh' }
  | { type: 'filter'; state: MetricsViewState }
  | { type: 'figure'; key: string }
  | { type: 'open'; changeId: string; how: 'open' | 'history' };

/** What the page was offered: the figures it drew, the values of its filters, the ids of the changes it listed. */
export interface MetricsOffer {
  choices: MetricsChoices;
  figures: Map<string, LinkedFigure>;
  listed: ReadonlySet<string>;
}

/** Checks a message from the page against what it was offered: the message, or why it was refused. */
export function readMessage(raw: unknown, offer: MetricsOffer): MetricsMessage | { refused: string } {
  if (!raw || typeof raw !== 'object') return { refused: 'not an object' };
  const message = raw as Record<string, unknown>;
  switch (message.type) {
    case 'refresh':
      return { type: 'refresh' };
    case 'filter': {
      if (!VIEW_GROUPINGS.includes(message.by as GroupBy)) return { refused: `no grouping ${String(message.by)}` };
      const state: MetricsViewState = { by: message.by as GroupBy };
      const pick = (name: string, allowed: readonly string[]): string | undefined | false => {
        const value = message[name];
        if (value === undefined || value === '') return undefined;
        return typeof value === 'string' && allowed.includes(value) ? value : false;
      };
      const agent = pick('agent', offer.choices.agents);
      const taskClass = pick('taskClass', offer.choices.taskClasses);
      const period = pick('period', [...Object.keys(RECENT_PERIODS), ...offer.choices.months]);
      if (agent === false) return { refused: 'an agent the log does not have' };
      if (taskClass === false) return { refused: 'a task class the log does not have' };
      if (period === false) return { refused: 'a period the view does not offer' };
      if (agent !== undefined) state.agent = agent;
      if (taskClass !== undefined) state.taskClass = taskClass;
      if (period !== undefined) state.period = period;
      return { type: 'filter', state };
    }
    case 'figure':
      return typeof message.key === 'string' && offer.figures.has(message.key)
        ? { type: 'figure', key: message.key }
        : { refused: 'a figure the page was not given' };
    case 'open':
      if (typeof message.changeId !== 'string' || !offer.listed.has(message.changeId)) return { refused: 'a change the page did not list' };
      if (message.how !== 'open' && message.how !== 'history') return { refused: `no way to open ${String(message.how)}` };
      return { type: 'open', changeId: message.changeId, how: message.how };
    default:
      return { refused: `no message ${String(message.type)}` };
  }
}
