/**
 * The intact rate: of the merged changes, the share that stood for N days after
 * the merge, neither reverted nor mostly rewritten. Pure: the git facts are
 * gathered elsewhere (src/infra/git/intactFacts.ts); this decides from them.
 */

export const DEFAULT_INTACT_DAYS = 30;
/**
 * A change is rewritten when fewer than this share of the lines it added are still its own (by blame) at the end of
 * the window. Half: fixing or reshaping a few lines after a merge is ordinary follow-up work, while losing most of
 * what a change added means it did not stand.
 */
const REWRITTEN_BELOW = 0.5;
export const DAY_MS = 86_400_000;

/**
 * intact: stood through the window. reverted / rewritten: within the window. pending: intact so far, the window is
 * still open (not in the rate yet). notMeasurable: the log or the repository cannot say (no merge commit recorded, the
 * commit is not in the repository).
 */
export const INTACT_VERDICTS = ['intact', 'reverted', 'rewritten', 'pending', 'notMeasurable'] as const;
export type IntactVerdict = (typeof INTACT_VERDICTS)[number];

/** What git says about one merge commit. */
export interface IntactGitFacts {
  /** The merge commit's committer time (ms): the window starts here. */
  mergedAt: number;
  /** Committer times (ms) of the commits on the base branch that revert it (any time; the window is applied here). */
  revertTimes: number[];
  /** Lines the merge added to the base branch (first parent → merge commit). */
  addedLines: number;
  /** Of those, how many blame still attributes to the change's commits at the last base commit within the window. */
  survivingLines: number;
  /** The history read reaches past the end of the window (otherwise what was read is provisional). */
  windowClosed: boolean;
  /** Only some files were blamed (a large change); the others were counted at the measured share. */
  capped?: boolean;
}

export type IntactGitAnswer = { ok: true; facts: IntactGitFacts } | { ok: false; reason: string };

export interface IntactDecision {
  verdict: IntactVerdict;
  /** Why, in words (for not measurable: what is missing and what to do). */
  reason: string;
}

/** Decides one merged change from its git facts; `answer` undefined when the log recorded no merge commit. */
export function intactVerdict(answer: IntactGitAnswer | undefined, days: number): IntactDecision {
  if (!answer)
    return {
      verdict: 'notMeasurable',
      reason: 'the log does not record the merge commit (written before Agent Lanes recorded it)',
    };
  if (!answer.ok) return { verdict: 'notMeasurable', reason: answer.reason };
  const facts = answer.facts;
  const end = facts.mergedAt + days * DAY_MS;
  const revert = facts.revertTimes.filter((time) => time >= facts.mergedAt && time <= end).sort((a, b) => a - b)[0];
  if (revert !== undefined)
    return { verdict: 'reverted', reason: `reverted ${round((revert - facts.mergedAt) / DAY_MS)} days after the merge` };
  const share = facts.addedLines > 0 ? facts.survivingLines / facts.addedLines : 1;
  if (share < REWRITTEN_BELOW)
    return {
      verdict: 'rewritten',
      reason: `${facts.addedLines - facts.survivingLines} of its ${facts.addedLines} added lines replaced within ${days} days`,
    };
  if (!facts.windowClosed) return { verdict: 'pending', reason: `fewer than ${days} days of history after the merge` };
  return { verdict: 'intact', reason: `${facts.survivingLines} of ${facts.addedLines} added lines still its own after ${days} days` };
}

/** A group's intact figures. */
export interface IntactFigure {
  /** Merged changes in the group. */
  merged: number;
  /** Decided: intact + reverted + rewritten. */
  measured: number;
  intact: number;
  reverted: number;
  rewritten: number;
  /** Intact so far, window still open: not in the rate. */
  pending: number;
  notMeasurable: number;
  /** intact ÷ measured; undefined when nothing is measured. */
  rate?: number;
  /** The changes behind each verdict (a reducer that keeps change ids). */
  changeIds?: Record<IntactVerdict, string[]>;
}

export function intactFigure(verdicts: Iterable<IntactVerdict>): IntactFigure {
  const figure: IntactFigure = { merged: 0, measured: 0, intact: 0, reverted: 0, rewritten: 0, pending: 0, notMeasurable: 0 };
  for (const verdict of verdicts) {
    figure.merged++;
    figure[verdict]++;
  }
  figure.measured = figure.intact + figure.reverted + figure.rewritten;
  if (figure.measured) figure.rate = round(figure.intact / figure.measured);
  return figure;
}

/** A revert commit's message names the commits it reverts ("This reverts commit <sha>."): the shas, lower case. */
export function revertedShas(message: string): string[] {
  const shas: string[] = [];
  for (const match of message.matchAll(/This reverts commit ([0-9a-fA-F]{7,64})/g)) shas.push(match[1]!.toLowerCase());
  return shas;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
