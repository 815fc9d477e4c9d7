import type { DecisionRecord } from '../../core/decision';
import type { Logger } from '../../core/logger';
import { changeFacts } from '../../infra/lanes/laneContext';
import { UncommittedWorkError } from '../../infra/git/worktrees';
import type { RepositoryRegistry } from '../repositories';
import type { GateVerdict, ReviewDeps } from './';
import { ReviewRefusal } from './';
import { createDefaultReviewDeps } from './defaultDeps';

/** Stands in for the reviewer while asking "would this pass with an approval?". */
const PROSPECTIVE_APPROVER = 'the reviewer';

/**
 * The review's dependencies on the rest of the extension: the policy's
 * Review → Pull request gate, the lane service for rejects, and the audit log.
 */
export function createReviewDeps(logger: Logger, registry: RepositoryRegistry): ReviewDeps {
  const base = createDefaultReviewDeps(logger, registry);
  return {
    ...base,
    // Asked as if approved, so "ready" means only the approval is missing. Only
    // reads: writing the decision into the evidence would invalidate approvals.
    evaluateGate: async (repo, change, evidence): Promise<GateVerdict> => {
      const policy = repo.lanes.context.policy;
      const repository = { repoRoot: repo.root, baseSha: change.baseSha };
      const facts = changeFacts(change, evidence, { approvals: [{ by: PROSPECTIVE_APPROVER, isAuthor: false }] });
      const decision: DecisionRecord = await policy.decide('gate.reviewToPullRequest', facts, repository);
      const effective = await policy.effectiveFor(repository);
      const reasons =
        decision.effect === 'block'
          ? decision.matchedRules.filter((rule) => rule.effect === 'block').map((rule) => rule.reason ?? `${rule.rule} (${rule.policy})`)
          : [];
      if (decision.effect === 'block' && !reasons.length) reasons.push(decision.explanation);
      return {
        ready: decision.effect !== 'block',
        reasons,
        decisions: [decision],
        requiredEvidence: effective.ok ? effective.effective.policy.lanes.evidence.required : [],
        policyLabel: effective.ok ? effective.effective.policyRef : policy.state.kind === 'failClosed' ? 'policy unavailable' : 'policy',
      };
    },
    forbidSelfApproval: () => registry.policyService.effective.policy.lanes.approvals.forbidSelfApproval,
    requestChanges: async (repo, change, comment, actor) => {
      await base.requestChanges(repo, change, comment, actor);
      await repo.lanes.context.audit.append({
        actor,
        action: 'lane.transition',
        changeId: change.id,
        details: { event: 'requestChanges', from: 'review', to: 'draft', reason: comment },
      });
    },
    reject: async (repo, change, comment, actor) => {
      try {
        await repo.lanes.draft.discard(change.id, actor, { event: 'reject', ...(comment ? { comment } : {}) });
      } catch (error) {
        if (error instanceof UncommittedWorkError) throw new ReviewRefusal(`${error.message} Nothing was rejected.`);
        throw new ReviewRefusal((error as Error).message);
      }
    },
    audit: async (repo, action, changeId, details, actor) => {
      await repo.lanes.context.audit.append({ actor, action, changeId, details });
    },
  };
}
