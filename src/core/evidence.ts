import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { IsolationEvidenceSchema } from './draft/agentIsolation';
import { AgentTranscriptSchema } from './draft/agentTranscript';
import { DecisionRecordSchema } from './decision';

export const FILE_STATUSES = ['added', 'modified', 'deleted', 'renamed', 'copied', 'typeChanged'] as const;

const FileChangeSchema = z.object({
  path: z.string(),
  oldPath: z.string().optional(),
  status: z.enum(FILE_STATUSES),
  additions: z.number().int().nonnegative(),
  deletions: z.number().int().nonnegative(),
  binary: z.boolean(),
  /** Present when the new side is a symbolic link. */
  symlink: z.object({ target: z.string(), escapesWorktree: z.boolean() }).optional(),
  mode: z.object({ old: z.string().optional(), new: z.string().optional() }).optional(),
  gitlink: z.boolean().optional(),
  sizeBytes: z.number().int().nonnegative().optional(),
});
export type FileChange = z.infer<typeof FileChangeSchema>;

export const FLAG_KINDS = [
  'newDependency',
  'sensitivePath',
  'symlinkEscape',
  'gitPath',
  'pathTraversal',
  'gitlink',
  'oversizedFile',
  'binaryFile',
  'secretLike',
  'secretInHistory',
  'unusualScope',
  'sandboxConfigEdited',
  'policyFileEdited',
  'agentInstructionsEdited',
  'executesLater',
  'checkoutTouched',
  'testsDoNotExercise',
  'unbackedClaim',
  'unconfined',
] as const;
export type FlagKind = (typeof FLAG_KINDS)[number];

const FlagSchema = z.object({
  kind: z.enum(FLAG_KINDS),
  path: z.string().optional(),
  detail: z.string(),
});
export type Flag = z.infer<typeof FlagSchema>;

const RedactionSummarySchema = z.object({
  total: z.number().int().nonnegative(),
  byKind: z.record(z.string(), z.number().int().nonnegative()),
});
export type RedactionSummary = z.infer<typeof RedactionSummarySchema>;

const TestCountsSchema = z.object({
  passed: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  skipped: z.number().int().nonnegative(),
  /** Which summary format was recognised: mocha, node, jest, vitest, pytest, go. */
  format: z.string(),
});
export type TestCounts = z.infer<typeof TestCountsSchema>;

const TaskEvidenceSchema = z.object({
  id: z.string(),
  command: z.string(),
  required: z.boolean(),
  /** container (dev container) or process (bubblewrap, lesser isolation). */
  isolation: z.enum(['container', 'process']),
  image: z.string().optional(),
  imageId: z.string().optional(),
  networkMode: z.string(),
  outcome: z.enum(['passed', 'failed', 'timedOut', 'cancelled', 'error', 'skipped']),
  exitCode: z.number().int().nullable(),
  durationMs: z.number().nonnegative(),
  counts: TestCountsSchema.optional(),
  /** Where the redacted log is stored (outside every worktree). */
  logFile: z.string().optional(),
  logDigest: z.string(),
  logTruncated: z.boolean().default(false),
  redaction: RedactionSummarySchema,
  /** On the base commit: true = fails there (good), false = passes there too, null = not run. */
  failsOnBase: z.boolean().nullable().default(null),
  /** On the base commit, per test file of the change, where the runner's output names files. */
  baseFiles: z.array(z.object({ path: z.string(), failsOnBase: z.boolean() })).optional(),
  startedAt: z.string(),
  /** Why the task timed out, was cancelled or could not run, in words for the user. */
  message: z.string().optional(),
});
export type TaskEvidence = z.infer<typeof TaskEvidenceSchema>;

const PreparationEvidenceSchema = z.object({
  commands: z.array(z.string()),
  networkMode: z.string(),
  /** What policy let the preparation reach: none, the named registries, or open. */
  reachable: z.array(z.string()),
  outcome: z.enum(['passed', 'failed', 'timedOut', 'skipped']),
  durationMs: z.number().nonnegative(),
  logDigest: z.string().optional(),
  /** Where the redacted preparation log is stored (outside every worktree). */
  logFile: z.string().optional(),
  /** Why the preparation failed or timed out. */
  message: z.string().optional(),
  /** What the sandbox ignored, replaced, or let policy widen in the configuration. */
  notes: z.array(z.string()).optional(),
});
export type PreparationEvidence = z.infer<typeof PreparationEvidenceSchema>;

/** What an agent reports about its own work, through LANES_EVIDENCE_FILE. */
export const AgentReportSchema = z.strictObject({
  summary: z.string().max(20_000).optional(),
  assumptions: z.array(z.string().max(5_000)).max(200).optional(),
  confidenceLimits: z.array(z.string().max(5_000)).max(200).optional(),
  agentVersion: z.string().max(200).optional(),
});
export type AgentReport = z.infer<typeof AgentReportSchema>;

/** The evidence fields a policy can require. */
export const EVIDENCE_FIELDS = [
  'filesTouched',
  'tests',
  'failsWithoutChange',
  'assumptions',
  'confidenceLimits',
  'summary',
  'prompt',
  'agent',
  'baseAndHead',
  'flags',
  'policyDecisions',
] as const;
export type EvidenceField = (typeof EVIDENCE_FIELDS)[number];

const BaseRunEvidenceSchema = z.object({
  /** The commit whose files the change's tests ran against. */
  baseSha: z.string(),
  /** The change's test files put over the base commit (added or edited by the change). */
  testFiles: z.array(z.string()),
  /** Test files the change deletes or renames away, removed from the base for the run. */
  removedTestFiles: z.array(z.string()).default([]),
});
export type BaseRunEvidence = z.infer<typeof BaseRunEvidenceSchema>;

export const EvidenceSchema = z.object({
  schemaVersion: z.literal(1),
  changeId: z.string(),
  agent: z.object({ id: z.string(), version: z.string().optional() }),
  prompt: z.object({ ref: z.string(), redacted: z.string(), redaction: RedactionSummarySchema.optional() }),
  base: z.object({ ref: z.string(), sha: z.string() }),
  headSha: z.string().optional(),
  diff: z
    .object({
      hash: z.string(),
      files: z.array(FileChangeSchema),
      totals: z.object({ files: z.number(), additions: z.number(), deletions: z.number() }),
    })
    .optional(),
  flags: z.array(FlagSchema).default([]),
  agentReport: AgentReportSchema.optional(),
  /** Why the agent's report is missing or was refused. */
  agentReportError: z.string().optional(),
  preparation: PreparationEvidenceSchema.optional(),
  tasks: z.array(TaskEvidenceSchema).default([]),
  /** The "fails without the change" run: the change's test files, on the base commit's other files. */
  baseRun: BaseRunEvidenceSchema.optional(),
  decisions: z.array(DecisionRecordSchema).default([]),
  checkout: z.object({ untouched: z.boolean(), detail: z.string().optional() }).optional(),
  /** The boundary the CLI agent ran in (absent for an agent in VS Code's chat). */
  isolation: IsolationEvidenceSchema.optional(),
  /** What a real agent CLI says it did (its machine-readable output): claims, shown next to the sandbox's proof. */
  transcript: AgentTranscriptSchema.optional(),
});
export type Evidence = z.infer<typeof EvidenceSchema>;

/** SHA-256 over the RFC 8785 canonical form: what an approval is bound to. */
export function hashEvidence(evidence: Evidence): string {
  return createHash('sha256')
    .update(canonicalize(evidence) ?? '')
    .digest('hex');
}
