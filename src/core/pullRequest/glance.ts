import type { Change } from '../change';

const CHECK_WORDS: Record<NonNullable<Change['pullRequest']>['checks'], string> = {
  none: 'no checks yet',
  pending: 'checks pending',
  passing: 'checks passing',
  failing: 'checks failing',
};

/** What the Lanes view shows of a change's pull request: `#12 · draft · checks passing`. */
export function pullRequestGlance(change: Pick<Change, 'pullRequest'>): string | undefined {
  const pr = change.pullRequest;
  if (!pr) return undefined;
  return `#${pr.number} · ${pr.state} · ${CHECK_WORDS[pr.checks]}`;
}

/** An approval that still holds: the change may become a pull request. */
export function hasValidApproval(change: Pick<Change, 'approval'>): boolean {
  return !!change.approval && !change.approval.invalidated;
}
