/**
 * One verdict from a pull request's commit statuses (the older Status API)
 * and check runs (the Checks API, used by GitHub Actions), which GitHub
 * reports separately.
 */

export interface CommitStatusInput {
  context: string;
  /** error | failure | pending | success */
  state: string;
  targetUrl?: string | undefined;
}

export interface CheckRunInput {
  name: string;
  /** queued | in_progress | completed | waiting | requested | pending */
  status: string;
  /** success | failure | neutral | cancelled | skipped | timed_out | action_required | stale | null */
  conclusion: string | null;
  url?: string | undefined;
}

/** none: nothing has reported on the head commit (yet). */
type CheckState = 'none' | 'pending' | 'passing' | 'failing';
type CheckItemState = Exclude<CheckState, 'none'>;

interface CheckItem {
  name: string;
  source: 'status' | 'checkRun';
  state: CheckItemState;
  /** The raw state or conclusion, e.g. "timed_out". */
  detail: string;
  url?: string;
}

export interface CheckSummary {
  state: CheckState;
  total: number;
  passing: number;
  pending: number;
  failing: number;
  items: CheckItem[];
  /** "2 passing, 1 pending"; "no checks reported". */
  description: string;
  /** Changes whenever any item's state changes; for "did anything change" between polls. */
  fingerprint: string;
}

const PASSING_CONCLUSIONS = new Set(['success', 'neutral', 'skipped']);

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function statusItemState(state: string): CheckItemState {
  if (state === 'success') return 'passing';
  if (state === 'pending') return 'pending';
  // error, failure, and anything GitHub may add later: never read an unknown state as green.
  return 'failing';
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function checkRunItemState(status: string, conclusion: string | null): CheckItemState {
  if (status !== 'completed') return 'pending';
  return conclusion !== null && PASSING_CONCLUSIONS.has(conclusion) ? 'passing' : 'failing';
}

export function summariseChecks(statuses: readonly CommitStatusInput[], checkRuns: readonly CheckRunInput[]): CheckSummary {
  const items: CheckItem[] = [
    ...statuses.map((status): CheckItem => ({
      name: status.context,
      source: 'status',
      state: statusItemState(status.state),
      detail: status.state,
      ...(status.targetUrl === undefined ? {} : { url: status.targetUrl }),
    })),
    ...checkRuns.map((run): CheckItem => ({
      name: run.name,
      source: 'checkRun',
      state: checkRunItemState(run.status, run.conclusion),
      detail: run.status === 'completed' ? (run.conclusion ?? 'completed') : run.status,
      ...(run.url === undefined ? {} : { url: run.url }),
    })),
  ].sort((a, b) => a.name.localeCompare(b.name) || a.source.localeCompare(b.source));
  const count = (state: CheckItemState) => items.filter((item) => item.state === state).length;
  const passing = count('passing');
  const pending = count('pending');
  const failing = count('failing');
  const state: CheckState = items.length === 0 ? 'none' : failing > 0 ? 'failing' : pending > 0 ? 'pending' : 'passing';
  const parts = [failing && `${failing} failing`, pending && `${pending} pending`, passing && `${passing} passing`].filter(Boolean);
  return {
    state,
    total: items.length,
    passing,
    pending,
    failing,
    items,
    description: parts.length ? parts.join(', ') : 'no checks reported',
    fingerprint: items.map((item) => `${item.source}:${item.name}=${item.detail}`).join('|'),
  };
}
