import type { Actor, Approval, Change } from '../../../core/change';
import { EXTENSION_ACTOR } from '../../../core/constants';
import type { DecisionRecord } from '../../../core/decision';
import { LaneError } from '../../../core/errors';
import { type Evidence, hashEvidence } from '../../../core/evidence';
import { approvalRefusal } from '../../../core/review/reviewModel';
import { UncommittedWorkError } from '../../git/worktrees';
import { listReviewDiff, resolveReviewHead, worktreeDiffHash } from '../../review/reviewDiff';
import { pathExists } from '../../storage/fileStore';
import type { DraftLane } from '../draft/draftLane';
import { type LaneContext, changeFacts, moveChange, trackFacts } from '../laneContext';

/** A refusal the reviewer reads: no stack, no "see the log". Nothing was changed. */
export class ReviewRefusal extends LaneError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('reviewRefused', message, options);
  }
}

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

/** The hashes of the diff and the evidence the reviewer was shown when approving. */
export interface ShownReview {
  shownDiffHash: string;
  shownEvidenceHash: string;
}

/** An approval that no longer holds, and why. */
export interface ApprovalInvalidation {
  change: Change;
  reason: string;
}

/** Stands in for the reviewer while asking "would this pass with an approval?". */
const PROSPECTIVE_APPROVER = 'the reviewer';

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';

type Approved = Change & { approval: Approval };

function holdsApproval(change: Change | undefined): change is Approved {
  return !!change && change.lane === 'review' && !!change.approval && !change.approval.invalidated;
}

/**
 * The Review lane of one repository: an approval is bound to the diff hash and
 * the evidence hash it was given for, and every rule about it lives here. The
 * editor shows the review and forwards the reviewer's actions.
 */
export class ReviewLane {
  constructor(
    private readonly ctx: LaneContext,
    private readonly draft: DraftLane,
  ) {}

  /**
   * The Review → Pull request gate, asked as if approved by a prospective
   * reviewer, so "ready" means only the approval is missing. Only reads:
   * writing the decision into the evidence would invalidate approvals.
   */
  async evaluateGate(change: Change, evidence: Evidence | undefined): Promise<GateVerdict> {
    const { policy } = this.ctx;
    const repository = { repoRoot: this.ctx.repoRoot, baseSha: change.baseSha };
    const facts = changeFacts(change, evidence, {
      ...(await trackFacts(this.ctx, change.baseSha)),
      approvals: [{ by: PROSPECTIVE_APPROVER, isAuthor: false }],
    });
    const decision = await policy.decide('gate.reviewToPullRequest', facts, repository);
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
  }

  /** Whether policy forbids the author of a change to approve it (the repository's level included when it can be read). */
  async forbidsSelfApproval(change: Change): Promise<boolean> {
    const { policy } = this.ctx;
    const effective = await policy.effectiveFor({ repoRoot: this.ctx.repoRoot, baseSha: change.baseSha });
    return (effective.ok ? effective.effective : policy.effective).policy.lanes.approvals.forbidSelfApproval;
  }

  /**
   * Approves exactly what the reviewer was shown, after checking it all again
   * on disk: the reviewed commits, the worktree, the evidence, who approves,
   * and the gate. `reviewer` is undefined when who it is could not be found out.
   */
  async approve(changeId: string, shown: ShownReview, reviewer: Actor | undefined): Promise<Approval> {
    const { ctx } = this;
    const change = ctx.store.get(changeId);
    if (!change) throw new ReviewRefusal(`Change ${changeId} no longer exists.`);
    const read = await ctx.evidence.read(changeId);
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    const evidenceHash = evidence ? hashEvidence(evidence) : undefined;
    let listing: { hash: string } | { error: string };
    try {
      listing = await listReviewDiff(ctx.repoRoot, change.baseSha, await resolveReviewHead(ctx.repoRoot, change));
    } catch (error) {
      listing = { error: firstLine(error) };
    }
    const reviewedDiffHash = 'hash' in listing ? listing.hash : undefined;
    if (reviewedDiffHash && evidenceHash && (reviewedDiffHash !== shown.shownDiffHash || evidenceHash !== shown.shownEvidenceHash)) {
      throw new ReviewRefusal(
        'The change or its evidence changed while you were reviewing it. The review now shows the new state: look again, then approve.',
      );
    }
    const worktreeExists = await pathExists(change.worktreePath);
    let currentDiffHash: string | undefined;
    if (worktreeExists && reviewedDiffHash) {
      try {
        currentDiffHash = await worktreeDiffHash(change.worktreePath, change.baseSha);
      } catch (error) {
        throw new ReviewRefusal(`The worktree could not be compared with the review (${firstLine(error)}), so nothing was approved.`, {
          cause: error,
        });
      }
    }
    const gate = await this.evaluateGate(change, evidence);
    const refusal = approvalRefusal({
      change,
      gate,
      evidence: { state: read.kind, ...(read.kind === 'invalid' ? { message: read.message } : {}) },
      diff: 'hash' in listing ? { state: 'ok' } : { state: 'error', message: listing.error },
      approver: reviewer?.id,
      forbidSelfApproval: await this.forbidsSelfApproval(change),
      worktreeExists,
      ...(reviewedDiffHash ? { reviewedDiffHash } : {}),
      ...(evidence?.diff ? { evidenceDiffHash: evidence.diff.hash } : {}),
      ...(currentDiffHash !== undefined ? { worktreeDiffHash: currentDiffHash } : {}),
    });
    if (refusal || !reviewedDiffHash || !evidenceHash || !reviewer)
      throw new ReviewRefusal(refusal ?? 'The change cannot be approved now.');

    const approval: Approval = { by: reviewer.id, at: new Date().toISOString(), diffHash: reviewedDiffHash, evidenceHash };
    await ctx.store.update(changeId, (current) => {
      if (current.lane !== 'review')
        throw new ReviewRefusal(`Change ${changeId} left Review while it was being approved; nothing was approved.`);
      if (current.approval && !current.approval.invalidated)
        throw new ReviewRefusal(`Change ${changeId} was approved by ${current.approval.by} meanwhile.`);
      current.approval = approval;
      return current;
    });
    try {
      await ctx.audit.append({
        actor: reviewer,
        action: 'review.approve',
        changeId,
        details: { diffHash: approval.diffHash, evidenceHash: approval.evidenceHash, policy: gate.policyLabel },
      });
    } catch (error) {
      // An approval the audit trail does not show is not an approval.
      ctx.logger.error(`Could not record the approval of change ${changeId} in the audit log; withdrawing it`, error);
      await ctx.store.update(changeId, (current) => {
        if (current.approval?.at === approval.at) delete current.approval;
        return current;
      });
      throw new ReviewRefusal(
        `The approval could not be recorded in the audit log (${firstLine(error)}), so it was withdrawn. Try again; see "Agent Lanes: Show Log".`,
        { cause: error },
      );
    }
    ctx.logger.info(`Change ${changeId} approved by ${approval.by} for diff ${approval.diffHash} and evidence ${approval.evidenceHash}`);
    return approval;
  }

  /** Sends the change back to Draft with the reviewer's comment, which the agent is given on its next run. */
  async requestChanges(changeId: string, comment: string, actor: Actor): Promise<Change> {
    const { ctx } = this;
    this.requireInReview(changeId, 'changes can be requested only in Review');
    const text = comment.trim();
    // The comment is written with the move: a crash between two writes would lose it, and a reader would see the
    // change in Draft without the comment the agent is to be given.
    const moved = await moveChange(ctx, changeId, 'requestChanges', actor, {
      reason: text,
      alsoSet: (change) => ({
        ...change,
        requestedChanges: [...(change.requestedChanges ?? []), { at: new Date().toISOString(), by: actor.id, comment: text }],
      }),
    });
    if (!moved.ok) throw new ReviewRefusal(moved.reason);
    const updated = moved.change;
    await ctx.audit
      .append({ actor, action: 'review.requestChanges', changeId, details: { comment: text } })
      .catch((error: unknown) => ctx.logger.error(`Could not record the requested changes of ${changeId} in the audit log`, error));
    return updated;
  }

  /** Closes the change as rejected and removes its worktree; its branch, record and audit stay. */
  async reject(changeId: string, comment: string | undefined, actor: Actor): Promise<Change> {
    const { ctx } = this;
    this.requireInReview(changeId, 'only a change in Review can be rejected');
    const text = comment?.trim() || undefined;
    let rejected: Change;
    try {
      rejected = await this.draft.discard(changeId, actor, { event: 'reject', ...(text ? { comment: text } : {}) });
    } catch (error) {
      if (error instanceof UncommittedWorkError) throw new ReviewRefusal(`${error.message} Nothing was rejected.`, { cause: error });
      throw new ReviewRefusal(firstLine(error), { cause: error });
    }
    await ctx.audit
      .append({ actor, action: 'review.reject', changeId, details: text ? { comment: text } : {} })
      .catch((error: unknown) => ctx.logger.error(`Could not record the rejection of ${changeId} in the audit log`, error));
    return rejected;
  }

  /**
   * Checks a change's approval against its worktree and evidence now, and
   * invalidates it (audited) when either no longer matches. Returns the
   * invalidation this check made; undefined when the approval holds or there
   * is none to check.
   */
  async checkApproval(changeId: string, trigger = 'check'): Promise<ApprovalInvalidation | undefined> {
    const { ctx } = this;
    const change = ctx.store.get(changeId);
    if (!holdsApproval(change)) return undefined;
    const { approval } = change;
    let reason: string | undefined;
    let currentDiffHash: string | undefined;
    if (!(await pathExists(change.worktreePath))) {
      reason = `the worktree ${change.worktreePath} was removed`;
    } else {
      try {
        currentDiffHash = await worktreeDiffHash(change.worktreePath, change.baseSha);
        if (currentDiffHash !== approval.diffHash) reason = 'the worktree changed after the approval';
      } catch (error) {
        // Fail closed: what cannot be checked is not approved. It may have gone while git looked at it.
        reason = (await pathExists(change.worktreePath))
          ? `the worktree could not be checked (${firstLine(error)})`
          : `the worktree ${change.worktreePath} was removed`;
      }
    }
    if (!reason) {
      const read = await ctx.evidence.read(changeId);
      if (read.kind === 'missing') reason = 'the evidence was removed';
      else if (read.kind === 'invalid') reason = 'the evidence file no longer passes validation';
      else if (hashEvidence(read.evidence) !== approval.evidenceHash) reason = 'the evidence changed after the approval';
    }
    if (!reason) {
      ctx.logger.debug(`The approval of change ${changeId} still holds (${trigger}).`);
      return undefined;
    }
    return this.invalidate(change, reason, { trigger, ...(currentDiffHash ? { currentDiffHash } : {}) });
  }

  private async invalidate(change: Approved, reason: string, details: Record<string, unknown>): Promise<ApprovalInvalidation | undefined> {
    const { ctx } = this;
    const { approval } = change;
    const at = new Date().toISOString();
    let changed = false;
    const updated = await ctx.store.update(change.id, (current) => {
      // Only the approval that was checked; a newer one is checked on its own.
      if (current.approval && current.approval.at === approval.at && !current.approval.invalidated) {
        current.approval = { ...current.approval, invalidated: { at, reason } };
        changed = true;
      }
      return current;
    });
    if (!changed) return undefined;
    ctx.logger.warn(`The approval of change ${change.id} by ${approval.by} no longer holds: ${reason}.`);
    await ctx.audit
      .append({
        actor: EXTENSION_ACTOR,
        action: 'approval.invalidated',
        changeId: change.id,
        details: {
          reason,
          approvedBy: approval.by,
          approvedAt: approval.at,
          diffHash: approval.diffHash,
          evidenceHash: approval.evidenceHash,
          ...details,
        },
      })
      .catch((error: unknown) =>
        ctx.logger.error(`Could not record the invalidated approval of change ${change.id} in the audit log`, error),
      );
    return { change: updated, reason };
  }

  private requireInReview(changeId: string, only: string): void {
    const change = this.ctx.store.get(changeId);
    if (!change) throw new ReviewRefusal(`Change ${changeId} no longer exists.`);
    if (change.lane !== 'review') throw new ReviewRefusal(`Change ${changeId} is not in Review (it is ${change.lane}); ${only}.`);
  }
}
