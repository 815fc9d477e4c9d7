import type { Flag, FlagKind } from '../evidence';

/** Labels and title of a lane's pull request: pure, so the editor and the CLI agree. */

export type RiskLevel = 'low' | 'medium' | 'high';
const RISK_LEVELS: readonly RiskLevel[] = ['low', 'medium', 'high'];

/**
 * What each flag says about risk. high: the change reaches outside its own
 * code (sandbox, policy, agent instructions, git internals, the user's
 * checkout) or may carry a secret; medium: it needs a closer look (new
 * dependency, sensitive path, unusual scope, tests that do not exercise it,
 * large or binary files). A Record over every FlagKind, so a new flag kind
 * does not compile until it has a level.
 */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const FLAG_RISK: Readonly<Record<FlagKind, RiskLevel>> = Object.freeze({
  secretLike: 'high',
  secretInHistory: 'high',
  symlinkEscape: 'high',
  pathTraversal: 'high',
  gitPath: 'high',
  gitlink: 'high',
  sandboxConfigEdited: 'high',
  policyFileEdited: 'high',
  agentInstructionsEdited: 'high',
  executesLater: 'high',
  checkoutTouched: 'high',
  unconfined: 'high',
  newDependency: 'medium',
  sensitivePath: 'medium',
  unusualScope: 'medium',
  testsDoNotExercise: 'medium',
  unbackedClaim: 'medium',
  oversizedFile: 'medium',
  binaryFile: 'medium',
});

/** The highest level among the flags; low when there are none. */
export function riskLevel(flags: readonly Pick<Flag, 'kind'>[]): RiskLevel {
  let level = 0;
  for (const flag of flags) level = Math.max(level, RISK_LEVELS.indexOf(FLAG_RISK[flag.kind] ?? 'high'));
  return RISK_LEVELS[level] ?? 'high';
}

const AGENT_GENERATED_LABEL = 'agent-generated';
const PULL_REQUEST_LANE_LABEL = 'lane:pull-request';

function riskLabel(level: RiskLevel): string {
  return `risk:${level}`;
}

/** agent-generated, lane:pull-request, risk:LEVEL, then any extra labels from policy (deduplicated). */
export function pullRequestLabels(flags: readonly Pick<Flag, 'kind'>[], extra: readonly string[] = []): string[] {
  return [
    ...new Set([
      AGENT_GENERATED_LABEL,
      PULL_REQUEST_LANE_LABEL,
      riskLabel(riskLevel(flags)),
      ...extra.map((label) => label.trim()).filter(Boolean),
    ]),
  ];
}

/** GitHub refuses longer titles. */
const MAX_TITLE_LENGTH = 256;

/** The change's title with the policy's prefix (e.g. "[agent]"), on one line, within GitHub's limit. */
export function pullRequestTitle(title: string, prefix = ''): string {
  const oneLine = title.replace(/\s+/g, ' ').trim() || 'Agent change';
  const cleanPrefix = prefix.replace(/\s+/g, ' ').trim();
  const full = cleanPrefix && !oneLine.startsWith(cleanPrefix) ? `${cleanPrefix} ${oneLine}` : oneLine;
  return full.length <= MAX_TITLE_LENGTH ? full : `${full.slice(0, MAX_TITLE_LENGTH - 1).trimEnd()}…`;
}
