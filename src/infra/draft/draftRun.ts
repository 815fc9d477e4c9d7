import type { AgentReportParse } from '../../core/draft/agentEvidence';
import { type DiffAnalysis, type DiffAnalysisOptions, checkoutTouchedFlag, refusedPathFlags } from '../../core/draft/diffAnalysis';
import type { Flag } from '../../core/evidence';
import { outsideSparseFlags } from '../../core/draft/sparsePaths';
import { readAgentReport } from './agentRunner';
import { type CheckoutSnapshot, type CheckoutVerdict, verifyCheckout } from './checkoutGuard';
import { analyzeChange } from '../git/gitDiff';
import { type CommitLaneWorkOptions, type GitIdentity, type LaneCommitResult, commitLaneWork, squashLaneCommits } from '../git/laneCommit';

export interface FinishDraftRunOptions extends DiffAnalysisOptions {
  repoRoot: string;
  changeId: string;
  branch: string;
  worktreePath: string;
  baseSha: string;
  agentId: string;
  promptRef: string;
  /** The LANES_EVIDENCE_FILE the agent was given. */
  evidenceFile: string;
  /** snapshotCheckout(repoRoot), taken before the agent started. */
  checkoutBefore: CheckoutSnapshot;
  /** Commit subject (redacted by the caller). */
  subject?: string;
  fallbackIdentity?: GitIdentity;
  /** Policy lanes.pullRequests.secretInHistory: squash makes the lane's commits one when only the history holds a secret. Default block. */
  secretInHistory?: 'block' | 'squash';
}

export interface FinishedDraftRun {
  /** Compared first, before any git call of ours. */
  checkout: CheckoutVerdict;
  commit: LaneCommitResult;
  /** Absent when the lane has no changes. */
  analysis?: DiffAnalysis;
  agentReport: AgentReportParse;
  /** The analysis flags, plus gitPath for paths git refused and checkoutTouched when the checkout changed. */
  flags: Flag[];
}

/**
 * What follows every agent run, whatever its outcome (a failed or stopped agent's
 * partial work is committed too, so nothing is lost): verify the user's checkout,
 * commit the worktree on the lane branch, analyse base..head, read the agent's report.
 */
export async function finishDraftRun(options: FinishDraftRunOptions): Promise<FinishedDraftRun> {
  // The user's checkout is compared while the lane commits and analyses: the lane writes only its own branch
  // (refs/heads/lanes/…, which the guard leaves out) and objects, and no automatic gc runs (commitLaneWork).
  const checking = verifyCheckout(options.checkoutBefore);
  checking.catch(() => undefined);
  let commit = await commitLaneWork({
    worktreePath: options.worktreePath,
    branch: options.branch,
    baseSha: options.baseSha,
    changeId: options.changeId,
    agentId: options.agentId,
    promptRef: options.promptRef,
    ...(options.subject !== undefined ? { subject: options.subject } : {}),
    ...(options.fallbackIdentity ? { fallbackIdentity: options.fallbackIdentity } : {}),
  });
  const analysed = await analyzeLaneCommit(commit, options, options);
  const { analysis } = analysed;
  commit = analysed.commit;
  const [checkout, agentReport] = await Promise.all([checking, readAgentReport(options.evidenceFile)]);
  const flags = [
    ...(analysis?.flags ?? []),
    ...refusedPathFlags(commit.refusedPaths),
    ...outsideSparseFlags(analysis?.files ?? [], commit.sparsePaths ?? []),
  ];
  if (!checkout.untouched) flags.unshift(checkoutTouchedFlag(checkout.differences));
  return {
    checkout: { untouched: checkout.untouched, differences: checkout.differences },
    commit,
    ...(analysis ? { analysis } : {}),
    agentReport,
    flags,
  };
}

/**
 * Analyses base..head of a committed lane. When a token only the history still
 * holds (secretInHistory) and policy says squash, the lane's commits become one
 * commit of head's tree on the base first; the tree is the same, so the diff's
 * analysis stands and only the history flags go.
 */
export async function analyzeLaneCommit(
  commit: LaneCommitResult,
  lane: Pick<
    CommitLaneWorkOptions,
    'worktreePath' | 'branch' | 'baseSha' | 'changeId' | 'agentId' | 'promptRef' | 'subject' | 'fallbackIdentity'
  > & {
    repoRoot: string;
  },
  options: DiffAnalysisOptions & { secretInHistory?: 'block' | 'squash' | undefined },
): Promise<{ commit: LaneCommitResult; analysis?: DiffAnalysis }> {
  if (commit.outcome !== 'committed') return { commit };
  const { secretInHistory, ...analysisOptions } = options;
  const analysis = await analyzeChange({
    ...analysisOptions,
    repoRoot: lane.repoRoot,
    baseSha: lane.baseSha,
    headSha: commit.headSha,
    worktreePath: lane.worktreePath,
  });
  if (secretInHistory !== 'squash' || !analysis.flags.some((flag) => flag.kind === 'secretInHistory')) return { commit, analysis };
  const squashed = await squashLaneCommits({ ...lane, headSha: commit.headSha });
  return {
    commit: { ...commit, headSha: squashed.headSha, squashed: { commits: squashed.commits, previousHeadSha: commit.headSha } },
    analysis: { ...analysis, flags: analysis.flags.filter((flag) => flag.kind !== 'secretInHistory') },
  };
}
