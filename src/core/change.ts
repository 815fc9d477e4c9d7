import { z } from 'zod';
import { DecisionRecordSchema } from './decision';
import { BoundaryHandleSchema } from './draft/agentIsolation';

/** The lanes, in promotion order. Release holds merged changes whose repository and branch policy lists actions for. */
export const LANES = ['draft', 'sandbox', 'review', 'pullRequest', 'release'] as const;
export type Lane = (typeof LANES)[number];

export const LANE_LABELS: Record<Lane, string> = {
  draft: 'Draft',
  sandbox: 'Sandbox',
  review: 'Review',
  pullRequest: 'Pull request',
  release: 'Release',
};

/** Where a change stands: one of the lanes, or closed for good. */
export type ChangeStatus = Lane | 'closed';

const CLOSED_REASONS = ['discarded', 'rejected', 'merged', 'pullRequestClosed'] as const;
export type ClosedReason = (typeof CLOSED_REASONS)[number];

export const ActorSchema = z.object({
  type: z.enum(['user', 'agent', 'extension']),
  id: z.string(),
});
export type Actor = z.infer<typeof ActorSchema>;

const TransitionRecordSchema = z.object({
  at: z.string(),
  event: z.string(),
  from: z.enum([...LANES, 'closed']),
  to: z.enum([...LANES, 'closed']),
  actor: ActorSchema,
  reason: z.string().optional(),
});

const AgentRunSchema = z.object({
  /** interrupted: the editor stopped while the agent ran; refused: its boundary could not be opened or verified. */
  state: z.enum(['running', 'succeeded', 'failed', 'timedOut', 'cancelled', 'noChanges', 'refused', 'interrupted']),
  /** Where the running agent can be found again after a crash (its process group or container). */
  boundary: BoundaryHandleSchema.optional(),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  exitCode: z.number().optional(),
  message: z.string().optional(),
});

const SandboxSummarySchema = z.object({
  verdict: z.enum(['passed', 'failed', 'running', 'error']),
  at: z.string(),
  headSha: z.string().optional(),
  failedTasks: z.array(z.string()).default([]),
  message: z.string().optional(),
});
export type SandboxSummary = z.infer<typeof SandboxSummarySchema>;

const ApprovalSchema = z.object({
  by: z.string(),
  at: z.string(),
  diffHash: z.string(),
  evidenceHash: z.string(),
  invalidated: z.object({ at: z.string(), reason: z.string() }).optional(),
});
export type Approval = z.infer<typeof ApprovalSchema>;

const RequestedChangesSchema = z.object({ at: z.string(), by: z.string(), comment: z.string() });

/**
 * One unit of agent work. Loose on purpose: a record written by a newer
 * version keeps the fields this version does not know.
 */
/** A change's id: 8 hex characters. It names the change's folder, so nothing else may. */
export const CHANGE_ID_PATTERN = /^[0-9a-f]{8}$/;

const ChangeSchema = z.looseObject({
  id: z.string().regex(CHANGE_ID_PATTERN, 'an 8-character hex id'),
  title: z.string(),
  task: z.string(),
  agentId: z.string(),
  /** Who started the change (GitHub login or git user.email); self-approval is judged against it. */
  createdBy: z.string().optional(),
  /** The task class the person chose at New Draft (policy may add others: docs/policy.md, "Task classes"). */
  taskClass: z.string().optional(),
  baseRef: z.string(),
  baseSha: z.string(),
  branch: z.string(),
  worktreePath: z.string(),
  headSha: z.string().optional(),
  lane: z.enum([...LANES, 'closed']),
  closedReason: z.enum(CLOSED_REASONS).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  agentRun: AgentRunSchema.optional(),
  sandbox: SandboxSummarySchema.optional(),
  approval: ApprovalSchema.optional(),
  /** Reviewers' "request changes" comments, oldest first; the agent is given them on its next run. */
  requestedChanges: z.array(RequestedChangesSchema).optional(),
  /** The latest policy decision about this change (its tooltip and review show it). */
  lastDecision: DecisionRecordSchema.optional(),
  /** The lane's pull request, as last seen on GitHub (the Pull request lane keeps it up to date). */
  pullRequest: z
    .looseObject({
      number: z.number().int().positive(),
      url: z.string(),
      /** owner/repo */
      repository: z.string(),
      draft: z.boolean(),
      state: z.enum(['open', 'draft', 'merged', 'closed']),
      checks: z.enum(['none', 'pending', 'passing', 'failing']),
      updatedAt: z.string(),
      /** The commit that was pushed: the local branch is deleted on close only while it is still there. */
      headSha: z.string().optional(),
    })
    .optional(),
  /** A merged change in the Release lane: where it was merged, and each production action run for it (docs/actions.md). */
  release: z
    .looseObject({
      /** owner/repo */
      repository: z.string(),
      branch: z.string(),
      mergedSha: z.string(),
      runs: z.array(
        z.looseObject({
          key: z.string(),
          actionId: z.string(),
          sha: z.string(),
          inputs: z.record(z.string(), z.string()),
          authorizedBy: z.string(),
          authorizedAt: z.string(),
          policyHash: z.string(),
          state: z.enum(['requested', 'running', 'succeeded', 'failed', 'timedOut']),
          startedAt: z.string().optional(),
          endedAt: z.string().optional(),
          runId: z.number().optional(),
          deploymentId: z.number().optional(),
          url: z.string().optional(),
          conclusion: z.string().optional(),
          message: z.string().optional(),
        }),
      ),
      /** Set when a run failed or ran past its limit: a person must roll back or accept it. */
      needsRollback: z.object({ reason: z.string(), at: z.string(), rollback: z.string().optional() }).optional(),
      /** The revert draft opened for this change (Roll Back, or a `revert` action): a change of its own, through the lanes. */
      revert: z.object({ changeId: z.string(), at: z.string() }).optional(),
    })
    .optional(),
  /** Problems a person must see at once, e.g. the user's checkout changed while the agent ran. */
  alerts: z.array(z.string()).optional(),
  history: z.array(TransitionRecordSchema).default([]),
});
export type Change = z.infer<typeof ChangeSchema>;

/** The one-file store of earlier versions (`changes.json`), read only to migrate it to one record per change. */
export const ChangeFileSchema = z.object({
  version: z.literal(1),
  changes: z.array(ChangeSchema),
});

/** The first line of a task, shortened, as a change's title. */
export function titleFromTask(task: string, max = 72): string {
  const firstLine = task.trim().split(/\r?\n/, 1)[0]?.trim() ?? '';
  if (firstLine.length <= max) return firstLine || 'Untitled change';
  return `${firstLine.slice(0, max - 1).trimEnd()}…`;
}

/** A short, human age such as "just now", "5 min", "3 h", "2 d". */
export function formatAge(fromIso: string, now: Date = new Date()): string {
  const ms = now.getTime() - new Date(fromIso).getTime();
  if (!Number.isFinite(ms) || ms < 60_000) return 'just now';
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}
