import type { AgentReportParse } from '../../core/draft/agentEvidence';
import { type DiffAnalysis, type DiffAnalysisOptions, checkoutTouchedFlag, refusedPathFlags } from '../../core/draft/diffAnalysis';
import type { Flag } from '../../core/evidence';
import { readAgentReport } from './agentRunner';
import { type CheckoutSnapshot, type CheckoutVerdict, verifyCheckout } from './checkoutGuard';
import { analyzeChange } from '../git/gitDiff';
import { type GitIdentity, type LaneCommitResult, commitLaneWork } from '../git/laneCommit';

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
  const checkout = await verifyCheckout(options.checkoutBefore);
  const commit = await commitLaneWork({
    worktreePath: options.worktreePath,
    branch: options.branch,
    baseSha: options.baseSha,
    changeId: options.changeId,
    agentId: options.agentId,
    promptRef: options.promptRef,
    ...(options.subject !== undefined ? { subject: options.subject } : {}),
    ...(options.fallbackIdentity ? { fallbackIdentity: options.fallbackIdentity } : {}),
  });
  const analysis =
    commit.outcome === 'committed'
      ? await analyzeChange({
          ...options,
          repoRoot: options.repoRoot,
          baseSha: options.baseSha,
          headSha: commit.headSha,
          worktreePath: options.worktreePath,
        })
      : undefined;
  const agentReport = await readAgentReport(options.evidenceFile);
  const flags = [...(analysis?.flags ?? []), ...refusedPathFlags(commit.refusedPaths)];
  if (!checkout.untouched) flags.unshift(checkoutTouchedFlag(checkout.differences));
  return {
    checkout: { untouched: checkout.untouched, differences: checkout.differences },
    commit,
    ...(analysis ? { analysis } : {}),
    agentReport,
    flags,
  };
}
