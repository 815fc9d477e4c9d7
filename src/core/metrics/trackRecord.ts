/**
 * A task class's track record, for autonomy earned by evidence (docs/policy.md,
 * "Autonomy earned by evidence"): how each of its changes ended, folded from
 * the audit log one event at a time. Pure: the caller streams the log.
 */

import type { IntactVerdict } from './intact';

/** How one change ended, as far as the log says. */
export interface ChangeOutcome {
  taskClass: string;
  /** Merged, or closed without merging (discarded, rejected, its pull request closed). */
  ended: boolean;
  merged: boolean;
  /** Rolled back after the merge through the lanes (Roll Back, a revert action). */
  reverted: boolean;
  /** The merge commit and base branch the merged event recorded (logs written before they were: none). */
  mergeCommitSha?: string;
  baseRef?: string;
  /** What git says (src/infra/git/intactFacts.ts), when the repository could tell: reverted or rewritten count against. */
  git?: IntactVerdict;
  /** A decision blocked it for a path no agent may write, or for a secret-like value. */
  forbiddenPath: boolean;
  secretLike: boolean;
}

interface TrackEvent {
  action: string;
  changeId?: string;
  details: Record<string, unknown>;
}

const UNCLASSIFIED = 'unclassified';

/** Folds audit events into one outcome per change, in the order the changes were created. */
export class TrackRecordReducer {
  private readonly changes = new Map<string, ChangeOutcome>();

  add(event: TrackEvent): void {
    const id = event.changeId;
    if (!id) return;
    const details = event.details;
    if (event.action === 'change.create') {
      const taskClass = typeof details.taskClass === 'string' && details.taskClass ? details.taskClass : UNCLASSIFIED;
      this.changes.set(id, { taskClass, ended: false, merged: false, reverted: false, forbiddenPath: false, secretLike: false });
      return;
    }
    const outcome = this.changes.get(id);
    if (!outcome) return;
    switch (event.action) {
      case 'lane.transition':
        if (details.event === 'pullRequestMerged') outcome.merged = outcome.ended = true;
        else if (details.to === 'closed') outcome.ended = true;
        break;
      case 'pr.closed':
        outcome.ended = true;
        if (details.state === 'merged') {
          outcome.merged = true;
          if (typeof details.mergeCommitSha === 'string') outcome.mergeCommitSha = details.mergeCommitSha;
          if (typeof details.baseRef === 'string') outcome.baseRef = details.baseRef;
        }
        break;
      case 'change.discard':
        outcome.ended = true;
        break;
      case 'action.rollback':
        outcome.reverted = true;
        break;
      case 'policy.decision': {
        if (details.effect !== 'block' || !Array.isArray(details.rules)) break;
        for (const rule of details.rules as { rule?: unknown; effect?: unknown }[]) {
          if (rule?.effect !== 'block' || typeof rule.rule !== 'string') continue;
          if (rule.rule === 'stopConditions.forbiddenPath' || rule.rule.startsWith('pathRules')) outcome.forbiddenPath = true;
          if (rule.rule === 'stopConditions.secretLike') outcome.secretLike = true;
        }
        break;
      }
      default:
        break;
    }
  }

  /** Each class's ended changes, newest first, at most `limit` of each. */
  byClass(limit: number): Record<string, ChangeOutcome[]> {
    const out: Record<string, ChangeOutcome[]> = {};
    const all = [...this.changes.values()];
    for (let i = all.length - 1; i >= 0; i--) {
      const outcome = all[i]!;
      if (!outcome.ended) continue;
      const list = (out[outcome.taskClass] ??= []);
      if (list.length < limit) list.push({ ...outcome });
    }
    return out;
  }
}

export interface TrackRequirements {
  lastChanges: number;
  minChanges: number;
  mergedRate?: number | undefined;
  intactRate?: number | undefined;
  noIncidents?: readonly ('forbiddenPath' | 'secretLike')[] | undefined;
}

export interface TrackFigures {
  changes: number;
  merged: number;
  mergedRate?: number;
  intactRate?: number;
  forbiddenPath: number;
  secretLike: number;
  earned: boolean;
  /** The figures, in words, with what each needed: the decision record names them. */
  text: string;
}

/**
 * Not rolled back through the lanes, and not reverted or rewritten in git within the window (a change git cannot
 * measure yet, or whose window is still open with nothing against it, counts as intact so far).
 */
const isIntact = (change: ChangeOutcome): boolean => !change.reverted && change.git !== 'reverted' && change.git !== 'rewritten';

const percent = (share: number): string => `${Math.round(share * 1000) / 10}%`;

/** Whether a class's record (newest first) meets an autonomy rule's requirements, and the figures used. */
export function trackFigures(record: readonly ChangeOutcome[], requires: TrackRequirements): TrackFigures {
  const changes = record.slice(0, requires.lastChanges);
  const merged = changes.filter((change) => change.merged);
  const mergedRate = changes.length ? merged.length / changes.length : undefined;
  const intactRate = merged.length ? merged.filter((change) => isIntact(change)).length / merged.length : undefined;
  const forbiddenPath = changes.filter((change) => change.forbiddenPath).length;
  const secretLike = changes.filter((change) => change.secretLike).length;
  const parts: string[] = [];
  let earned = true;
  const check = (ok: boolean, words: string) => {
    if (!ok) earned = false;
    parts.push(`${words}${ok ? '' : ' ✗'}`);
  };
  check(changes.length >= requires.minChanges, `${changes.length} ended changes (need ${requires.minChanges})`);
  if (requires.mergedRate !== undefined)
    check(
      mergedRate !== undefined && mergedRate >= requires.mergedRate,
      `merged ${mergedRate === undefined ? 'n/a' : percent(mergedRate)} (need ${percent(requires.mergedRate)})`,
    );
  if (requires.intactRate !== undefined)
    check(
      intactRate !== undefined && intactRate >= requires.intactRate,
      `intact ${intactRate === undefined ? 'n/a' : percent(intactRate)} (need ${percent(requires.intactRate)})`,
    );
  for (const incident of requires.noIncidents ?? []) {
    const count = incident === 'forbiddenPath' ? forbiddenPath : secretLike;
    check(count === 0, `${count} ${incident} incident${count === 1 ? '' : 's'} (need none)`);
  }
  return {
    changes: changes.length,
    merged: merged.length,
    ...(mergedRate !== undefined ? { mergedRate } : {}),
    ...(intactRate !== undefined ? { intactRate } : {}),
    forbiddenPath,
    secretLike,
    earned,
    text: `last ${changes.length} of ${requires.lastChanges}: ${parts.join(', ')}`,
  };
}
