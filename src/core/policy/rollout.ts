import { GlobIndex } from './globs';
import type { EffectivePolicy, PolicyOrigin } from './merge';
import type { ResolvedPolicy } from './schema';
import { trackFigures, type ChangeOutcome } from '../metrics/trackRecord';

/**
 * How far a kind of work may go (docs/policy.md, "Rollout modes"), from the
 * least to the most: each mode allows what the ones before it allow.
 */
export const ROLLOUT_MODES = [
  /** The agent drafts; the change stays in Draft (read it, discard it). */
  'analysisOnly',
  /** Tasks run and the patch is reviewed, but nothing is approved. */
  'dryRunPatch',
  /** Approved, the change stays on its local lane branch: nothing is pushed. */
  'localBranch',
  /** Pushed, as a draft pull request only. */
  'draftPullRequest',
  /** A pull request ready for review (policy's other rules still apply). */
  'supervisedPullRequest',
  /** After merge, the production actions of the Release lane. */
  'actions',
] as const;
type RolloutMode = (typeof ROLLOUT_MODES)[number];

/** The class of a change that no class of the policy describes. */
export const UNCLASSIFIED = 'unclassified';

/** What each mode stops, in words a person reads in the refusal. */
const STOPS_AT: Record<RolloutMode, string> = {
  analysisOnly: 'the change stays in Draft (analysis only)',
  dryRunPatch: 'the patch can be tested and read in review, but not approved (dry-run patch)',
  localBranch: 'an approved change stays on its local branch; nothing is pushed (local branch only)',
  draftPullRequest: 'pull requests are drafts only',
  supervisedPullRequest: 'production actions are not allowed (supervised pull requests)',
  actions: '',
};

/** The least mode a step needs. */
export type RolloutStep = 'toSandbox' | 'approve' | 'publish' | 'readyPullRequest' | 'productionAction';
const NEEDS: Record<RolloutStep, RolloutMode> = {
  toSandbox: 'dryRunPatch',
  approve: 'localBranch',
  publish: 'draftPullRequest',
  readyPullRequest: 'supervisedPullRequest',
  productionAction: 'actions',
};

const rank = (mode: RolloutMode): number => ROLLOUT_MODES.indexOf(mode);

export interface ClassifyInput {
  /** The class the person chose at New Draft, if any. */
  chosen?: string;
  /** The task text the person wrote. */
  task?: string;
  /** The changed paths, once the agent has run. */
  paths?: readonly string[];
  caseInsensitivePaths?: boolean;
}

/**
 * The task classes of a change. A class with `paths` applies only when every
 * changed path is among them (so a code change is never "docs" because the
 * task says so); before the paths are known it applies on its task words or
 * when chosen, and is checked again at every gate. A class is assigned when it
 * is chosen, when a word of its `taskText` is in the task, or when it has
 * `paths` and every changed path matches them. More classes only tighten: the strictest mode of
 * all of them applies.
 */
export function classifyChange(policy: ResolvedPolicy, input: ClassifyInput): string[] {
  const task = (input.task ?? '').toLowerCase();
  const paths = input.paths;
  const classes: string[] = [];
  for (const taskClass of policy.taskClasses) {
    const words = taskClass.taskText ?? [];
    const byWords = words.some((word) => containsWord(task, word.toLowerCase()));
    const chosen = input.chosen === taskClass.id;
    const globs = taskClass.paths ?? [];
    const pathsHold = globs.length && paths ? pathsWithin(globs, paths, input.caseInsensitivePaths ?? false) : undefined;
    if (pathsHold === false) continue;
    if (chosen || byWords || pathsHold === true) classes.push(taskClass.id);
  }
  return classes.length ? classes : [UNCLASSIFIED];
}

function containsWord(text: string, word: string): boolean {
  if (!word) return false;
  let from = 0;
  for (;;) {
    const at = text.indexOf(word, from);
    if (at < 0) return false;
    const before = at === 0 ? '' : text[at - 1]!;
    const after = text[at + word.length] ?? '';
    if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) return true;
    from = at + 1;
  }
}

function pathsWithin(globs: readonly string[], paths: readonly string[], caseInsensitive: boolean): boolean {
  if (!paths.length) return false;
  const index = new GlobIndex<true>({ caseInsensitive });
  for (const glob of globs) index.add(glob, true);
  return paths.every((path) => index.match(path).length > 0);
}

export interface RolloutLimit {
  mode: RolloutMode;
  /** `rollout[2]`: the entry that set the limit. */
  rule: string;
  level: PolicyOrigin;
  /** What the entry applies to, in words: `task class "docs"`, `acme/app`, `every change`. */
  scope: string;
  /** An autonomy rule: whether the class earned its mode, and the figures used. */
  autonomy?: { earned: boolean; figures: string };
}

/**
 * The mode a change may reach: at each policy level the first entry that
 * matches (repository and class) decides for that level and class, and the
 * strictest of all levels and classes wins. No entry: no limit from rollout.
 */
export function rolloutLimit(
  effective: Pick<EffectivePolicy, 'policy' | 'origins'>,
  subject: { classes: readonly string[]; repository?: string },
): RolloutLimit | undefined {
  const entries = effective.policy.rollout;
  const byLevel = new Map<PolicyOrigin, number[]>();
  entries.forEach((_, index) => {
    const level = effective.origins[`rollout[${index}]`] ?? 'default';
    byLevel.set(level, [...(byLevel.get(level) ?? []), index]);
  });
  let strictest: RolloutLimit | undefined;
  for (const [level, indexes] of byLevel) {
    for (const taskClass of subject.classes) {
      const index = indexes.find((i) => {
        const entry = entries[i]!;
        if (entry.repositories && !(subject.repository && entry.repositories.includes(subject.repository))) return false;
        return !entry.taskClasses || entry.taskClasses.includes(taskClass);
      });
      if (index === undefined) continue;
      const entry = entries[index]!;
      if (!strictest || rank(entry.mode) < rank(strictest.mode))
        strictest = {
          mode: entry.mode,
          rule: `rollout[${index}]`,
          level,
          scope: entry.taskClasses ? `task class "${taskClass}"` : entry.repositories ? subject.repository! : 'every change',
        };
    }
  }
  return strictest;
}

/** Why the limit stops a step, or undefined when the mode allows it. */
export function rolloutRefusal(limit: RolloutLimit | undefined, step: RolloutStep): string | undefined {
  if (!limit || rank(limit.mode) >= rank(NEEDS[step])) return undefined;
  const why = limit.autonomy ? ` until its record earns more (${limit.autonomy.figures})` : '';
  return `rollout mode ${limit.mode} for ${limit.scope}${why}: ${STOPS_AT[limit.mode]}`;
}

/**
 * The mode each autonomy rule gives the change's classes: its `mode` when the class's record (its last ended
 * changes, newest first) meets `requires`, else `otherwise`. The strictest of them; undefined without rules.
 */
export function autonomyLimit(
  effective: Pick<EffectivePolicy, 'policy' | 'origins'>,
  subject: { classes: readonly string[]; repository?: string; track?: Readonly<Record<string, readonly ChangeOutcome[]>> },
): RolloutLimit | undefined {
  let strictest: RolloutLimit | undefined;
  effective.policy.autonomy.forEach((entry, index) => {
    if (entry.repositories && !(subject.repository && entry.repositories.includes(subject.repository))) return;
    for (const taskClass of subject.classes) {
      if (!entry.taskClasses.includes(taskClass)) continue;
      const figures = trackFigures(subject.track?.[taskClass] ?? [], entry.requires);
      const mode = figures.earned ? entry.mode : entry.otherwise;
      if (!strictest || rank(mode) < rank(strictest.mode))
        strictest = {
          mode,
          rule: `autonomy[${index}]`,
          level: effective.origins[`autonomy[${index}]`] ?? 'default',
          scope: `task class "${taskClass}"`,
          autonomy: { earned: figures.earned, figures: figures.text },
        };
    }
  });
  return strictest;
}

/** The stricter of two limits (the first when they are equal). */
export function stricterLimit(a: RolloutLimit | undefined, b: RolloutLimit | undefined): RolloutLimit | undefined {
  if (!a || !b) return a ?? b;
  return rank(b.mode) < rank(a.mode) ? b : a;
}

/** The longest record any autonomy rule reads (how much of each class's record the gate needs). */
export function autonomyRecordLength(policy: ResolvedPolicy): number {
  return policy.autonomy.reduce((max, entry) => Math.max(max, entry.requires.lastChanges), 0);
}
