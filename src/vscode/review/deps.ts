import type { Actor, Change } from '../../core/change';
import type { DecisionRecord } from '../../core/decision';
import type { Evidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import type { RepoContext, RepositoryRegistry } from '../repositories';

/** The Review → Pull request gate's answer for a change, as the review shows it. */
export interface GateVerdict {
  /** Nothing but the approval itself is missing: the change may be approved now. */
  ready: boolean;
  /** Why it is blocked, one line each, in words that say what to do. */
  reasons: string[];
  decisions: DecisionRecord[];
  /** The evidence fields policy requires (names from EVIDENCE_FIELDS). */
  requiredEvidence: string[];
  /** Which policy decided, e.g. "acme-org@3 + repository". */
  policyLabel: string;
}

/** The audit actions a review records (names from core/audit's AUDIT_ACTIONS). */
export type ReviewAuditAction = 'review.approve' | 'review.requestChanges' | 'review.reject' | 'approval.invalidated';

/**
 * What the review needs from the rest of the extension. The lead wires the
 * real policy, identity, lane moves and audit log; the review itself only
 * reads the store and evidence, and writes the approval and the comments.
 */
export interface ReviewDeps {
  logger: Logger;
  registry: RepositoryRegistry;
  /** Evaluates the gate as if approved: `ready` means only the approval is missing. Must not throw for a blocked gate. */
  evaluateGate(repo: RepoContext, change: Change, evidence: Evidence | undefined): Promise<GateVerdict>;
  forbidSelfApproval(repo: RepoContext): boolean;
  /** The canonical diff hash of the change's worktree as it is on disk now (see worktreeDiffHash). */
  currentDiffHash(repo: RepoContext, change: Change): Promise<string>;
  /** The reviewer: the GitHub account when signed in to VS Code, else git's user.email; undefined when neither is known. */
  whoAmI(repo: RepoContext): Promise<string | undefined>;
  /** Moves the change to Draft (lane event requestChanges). The review records the comment on the change afterwards. */
  requestChanges(repo: RepoContext, change: Change, comment: string, actor: Actor): Promise<void>;
  /** Closes the change as rejected and removes its worktree; its record stays. */
  reject(repo: RepoContext, change: Change, comment: string | undefined, actor: Actor): Promise<void>;
  audit(repo: RepoContext, action: ReviewAuditAction, changeId: string, details: Record<string, unknown>, actor: Actor): Promise<void>;
}
