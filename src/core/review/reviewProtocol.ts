/**
 * The one protocol between the review webview and its host. Imported by both
 * sides (no 'vscode', no DOM), written with zod/mini so the webview bundle
 * stays small. Every message either side receives is parsed with these
 * schemas; anything that does not parse is logged and ignored.
 *
 * Webview → host: notifications (`ready`, `rendered`, `webviewError`) and
 * requests, each with an `id` the host answers with one `response`.
 * Host → webview: notifications (`model`, `notice`) and `response`s.
 * Every webview message names its change; the host ignores one that names
 * another change than its panel's.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

// zod/mini carries no messages by default; English ones make the log readable.
z.config(en());

export const MAX_PATHS_PER_REQUEST = 50;
export const MAX_COMMENT_LENGTH = 10_000;
const MAX_PATH_LENGTH = 4_096;

const ChangeIdSchema = z.string().check(z.regex(/^[0-9a-f]{8}$/));
const RequestIdSchema = z.number().check(z.int(), z.minimum(0), z.maximum(2 ** 31));
const PathSchema = z.string().check(z.minLength(1), z.maxLength(MAX_PATH_LENGTH));
const HashSchema = z.string().check(z.regex(/^[0-9a-f]{64}$/));
const CommentSchema = z.string().check(
  z.maxLength(MAX_COMMENT_LENGTH),
  z.refine((text) => text.trim().length > 0, 'a comment is required'),
);

// ---------------------------------------------------------------------------
// Webview → host

const ReadyMessageSchema = z.strictObject({ type: z.literal('ready'), changeId: ChangeIdSchema });
/** The webview has drawn the header, the evidence and the file list. */
const RenderedMessageSchema = z.strictObject({
  type: z.literal('rendered'),
  changeId: ChangeIdSchema,
  files: z.number().check(z.int(), z.minimum(0)),
  ms: z.number().check(z.minimum(0)),
});
/** An error the webview caught, so it reaches the log. */
const WebviewErrorMessageSchema = z.strictObject({
  type: z.literal('webviewError'),
  changeId: ChangeIdSchema,
  message: z.string().check(z.maxLength(5_000)),
});

const request = <T extends string, S extends z.core.$ZodLooseShape>(type: T, shape: S) =>
  z.strictObject({ type: z.literal(type), id: RequestIdSchema, changeId: ChangeIdSchema, ...shape });

const LoadFilesRequestSchema = request('loadFiles', {
  paths: z.array(PathSchema).check(z.minLength(1), z.maxLength(MAX_PATHS_PER_REQUEST)),
});
/** Approves what the reviewer was shown: the hashes of the diff and the evidence on screen. */
const ApproveRequestSchema = request('approve', { diffHash: HashSchema, evidenceHash: HashSchema });
const RequestChangesRequestSchema = request('requestChanges', { comment: CommentSchema });
/** The webview asks for a confirmation step before it sends this. */
const RejectRequestSchema = request('reject', {
  confirmed: z.literal(true),
  comment: z.optional(z.string().check(z.maxLength(MAX_COMMENT_LENGTH))),
});
const OpenFileDiffRequestSchema = request('openFileDiff', { path: PathSchema });
const OpenChangesRequestSchema = request('openChanges', {});
/** Opens the change's pull request in the browser: the host opens the URL on the change's record, never one from the webview. */
const OpenPullRequestRequestSchema = request('openPullRequest', {});
const RefreshRequestSchema = request('refresh', {});

const WebviewMessageSchema = z.discriminatedUnion('type', [
  ReadyMessageSchema,
  RenderedMessageSchema,
  WebviewErrorMessageSchema,
  LoadFilesRequestSchema,
  ApproveRequestSchema,
  RequestChangesRequestSchema,
  RejectRequestSchema,
  OpenFileDiffRequestSchema,
  OpenChangesRequestSchema,
  OpenPullRequestRequestSchema,
  RefreshRequestSchema,
]);
export type WebviewMessage = z.infer<typeof WebviewMessageSchema>;
export type WebviewRequest = Extract<WebviewMessage, { id: number }>;

// ---------------------------------------------------------------------------
// The review model the host sends

const LaneSchema = z.enum(['draft', 'sandbox', 'review', 'pullRequest', 'release', 'closed']);

/** A piece of evidence: there, or missing (and whether policy requires it). */
const field = <T extends z.core.SomeType>(value: T) =>
  z.discriminatedUnion('state', [
    z.object({ state: z.literal('present'), value }),
    z.object({ state: z.literal('missing'), required: z.boolean() }),
  ]);
export type EvidenceFieldView<T> = { state: 'present'; value: T } | { state: 'missing'; required: boolean };

const TaskViewSchema = z.object({
  id: z.string(),
  command: z.string(),
  required: z.boolean(),
  outcome: z.string(),
  exitCode: z.nullable(z.number()),
  durationMs: z.number(),
  counts: z.optional(z.object({ passed: z.number(), failed: z.number(), skipped: z.number(), format: z.string() })),
  networkMode: z.string(),
  isolation: z.string(),
  image: z.optional(z.string()),
  /** true: fails on the base commit (the test exercises the change); false: passes there too; null: not run. */
  failsOnBase: z.nullable(z.boolean()),
  message: z.optional(z.string()),
  logTruncated: z.boolean(),
});
export type TaskView = z.infer<typeof TaskViewSchema>;

const DecisionViewSchema = z.object({
  action: z.string(),
  effect: z.enum(['allow', 'requireApproval', 'block']),
  explanation: z.string(),
  at: z.string(),
  rules: z.array(z.object({ policy: z.string(), rule: z.string(), effect: z.string(), reason: z.optional(z.string()) })),
});
export type DecisionView = z.infer<typeof DecisionViewSchema>;

const FlagViewSchema = z.object({ kind: z.string(), label: z.string(), path: z.optional(z.string()), detail: z.string() });
export type FlagView = z.infer<typeof FlagViewSchema>;

const IsolationViewSchema = z.object({
  /**
   * verified: a boundary whose canary held; unverified: a boundary whose canary did not run or report;
   * unconfined: the host; none: an agent in VS Code's chat (no process of ours, so no boundary).
   */
  state: z.enum(['verified', 'unverified', 'unconfined', 'none']),
  /** One line: "isolation verified: process (bubblewrap 0.8.0) · network off". */
  summary: z.string(),
  backend: z.optional(z.string()),
  /** "bubblewrap 0.8.0", "podman 4.3.1". */
  sandbox: z.optional(z.string()),
  image: z.optional(z.string()),
  imageDigest: z.optional(z.string()),
  allow: z.array(z.string()),
  refused: z.array(z.object({ host: z.string(), port: z.number(), at: z.string() })),
  refusedTotal: z.number(),
  allowedTotal: z.number(),
  /** The limits the boundary held the agent to, in words ("2 CPUs", "10 min"). */
  limits: z.array(z.string()),
  notEnforced: z.array(z.string()),
  stoppedFor: z.optional(z.string()),
  probes: z.array(z.object({ name: z.string(), outcome: z.string(), detail: z.string() })),
  canaryMs: z.optional(z.number()),
});
export type IsolationView = z.infer<typeof IsolationViewSchema>;

const EvidenceViewSchema = z.object({
  state: z.enum(['ok', 'missing', 'invalid']),
  /** Why the evidence is missing or invalid, and what to do. */
  message: z.optional(z.string()),
  hash: z.nullable(HashSchema),
  fields: z.object({
    summary: field(z.string()),
    filesTouched: field(
      z.object({
        files: z.number(),
        additions: z.number(),
        deletions: z.number(),
        diffHash: z.string(),
        /** Whether the evidence describes the diff on screen; null when there is no diff to compare. */
        matchesReviewedDiff: z.nullable(z.boolean()),
      }),
    ),
    tests: field(z.array(TaskViewSchema)),
    failsWithoutChange: field(
      z.object({
        failOnBase: z.number(),
        passOnBase: z.number(),
        notRun: z.number(),
        /** The commit the change's test files ran against, and those files. */
        baseSha: z.optional(z.string()),
        testFiles: z.array(z.string()),
        removedTestFiles: z.array(z.string()),
        /** Per test file, where the runner named files: fails on the base (good) or passes there too. */
        files: z.array(z.object({ task: z.string(), path: z.string(), failsOnBase: z.boolean() })),
      }),
    ),
    claims: field(
      z.object({
        /** From the CLI's transcript: the model, tokens, tools called and the commands it says it ran. */
        model: z.optional(z.string()),
        usage: z.optional(z.object({ inputTokens: z.number(), outputTokens: z.number() })),
        toolCalls: z.array(z.object({ name: z.string(), count: z.number() })),
        commands: z.array(z.object({ command: z.string(), exitCode: z.nullable(z.number()) })),
        /** Each claim about the tests with the sandbox's word on it. */
        checks: z.array(
          z.object({
            source: z.enum(['finalMessage', 'summary', 'command']),
            text: z.string(),
            proof: z.enum(['backed', 'contradicted', 'unchecked']),
            tasks: z.array(z.string()),
          }),
        ),
      }),
    ),
    assumptions: field(z.array(z.string())),
    confidenceLimits: field(z.array(z.string())),
    prompt: field(z.object({ ref: z.string(), redacted: z.string(), redactions: z.number() })),
    agent: field(z.object({ id: z.string(), version: z.optional(z.string()) })),
    isolation: field(IsolationViewSchema),
    baseAndHead: field(z.object({ baseRef: z.string(), baseSha: z.string(), headSha: z.optional(z.string()) })),
    flags: field(z.array(FlagViewSchema)),
    policyDecisions: field(z.array(DecisionViewSchema)),
  }),
});
export type EvidenceView = z.infer<typeof EvidenceViewSchema>;
export type EvidenceSectionKey = keyof EvidenceView['fields'];

/** The evidence sections, in the fixed order the reviewer reads them. */
export const EVIDENCE_SECTION_ORDER = [
  'summary',
  'isolation',
  'filesTouched',
  'tests',
  'claims',
  'failsWithoutChange',
  'assumptions',
  'confidenceLimits',
  'prompt',
  'agent',
  'baseAndHead',
  'flags',
  'policyDecisions',
] as const satisfies readonly EvidenceSectionKey[];

export const EVIDENCE_SECTION_TITLES: Readonly<Record<EvidenceSectionKey, string>> = {
  summary: 'Summary',
  filesTouched: 'Files touched',
  tests: 'Tests and tasks',
  claims: "The agent's claims",
  failsWithoutChange: 'Fails without the change',
  assumptions: 'Assumptions',
  confidenceLimits: 'Confidence limits',
  prompt: 'Prompt',
  agent: 'Agent',
  isolation: 'Isolation',
  baseAndHead: 'Base and head',
  flags: 'Flags',
  policyDecisions: 'Policy decisions',
};

/** How a file of the diff is shown: text diffs are loaded on demand, the others never rendered. */
const FILE_DISPLAYS = ['text', 'binary', 'tooLarge', 'submodule'] as const;

const FileEntrySchema = z.object({
  path: z.string(),
  oldPath: z.optional(z.string()),
  status: z.enum(['added', 'modified', 'deleted', 'renamed', 'copied', 'typeChanged', 'unmerged', 'unknown']),
  /** null for a binary file. */
  additions: z.nullable(z.number()),
  deletions: z.nullable(z.number()),
  display: z.enum(FILE_DISPLAYS),
  /** Why a file is not rendered (size, binary, submodule), or a symlink's target. */
  note: z.optional(z.string()),
});
export type FileEntry = z.infer<typeof FileEntrySchema>;

const DiffViewSchema = z.discriminatedUnion('state', [
  z.object({
    state: z.literal('ok'),
    hash: HashSchema,
    baseSha: z.string(),
    headSha: z.string(),
    totals: z.object({ files: z.number(), additions: z.number(), deletions: z.number() }),
    files: z.array(FileEntrySchema),
  }),
  z.object({ state: z.literal('error'), message: z.string() }),
]);
export type DiffView = z.infer<typeof DiffViewSchema>;

const ActionStateSchema = z.object({ enabled: z.boolean(), reason: z.optional(z.string()) });

/** Where in the page an item of the header points: a file of the diff, or an element of the evidence. */
const PageTargetSchema = z.discriminatedUnion('tab', [
  z.object({ tab: z.literal('files'), file: z.optional(z.number()) }),
  z.object({ tab: z.literal('evidence'), id: z.string() }),
]);
export type PageTarget = z.infer<typeof PageTargetSchema>;

/**
 * One thing the reviewer must see before anything else: what blocks the
 * change, what needs a person's approval (or got it), a flag, a warning.
 */
const AttentionItemSchema = z.object({
  /**
   * block: stops the change; approval: needs a reviewer's approval; approved: an approval covers it;
   * flag: a flag no rule stops; warning: a problem with what is shown (worktree gone, evidence for another diff).
   */
  kind: z.enum(['block', 'approval', 'approved', 'flag', 'warning']),
  /** What it is about, in policy's words ("a new dependency: package.json"); the kind is said beside it. */
  text: z.string(),
  /** What it is about, when a flag or a file says more: "New dependency package.json: adds left-pad@1.3.0". */
  detail: z.optional(z.string()),
  /** The rule and the policy it came from: "stopConditions.newDependency (acme@3)". */
  rule: z.optional(z.string()),
  /** The step the rule was decided for, when not the Review → Pull request gate: "Draft → Sandbox". */
  step: z.optional(z.string()),
  target: z.optional(PageTargetSchema),
  /** The words of the link to the target: "Flags", "src/auth/session.js". */
  targetLabel: z.optional(z.string()),
});
export type AttentionItem = z.infer<typeof AttentionItemSchema>;

const VERDICT_STATES = ['blocked', 'cannotApprove', 'needsApproval', 'approved', 'invalidated', 'readOnly'] as const;
export type VerdictState = (typeof VERDICT_STATES)[number];

/** The change's pull request, from the change's record (the Pull request lane keeps it up to date). */
const PullRequestViewSchema = z.object({
  number: z.number(),
  url: z.string(),
  repository: z.string(),
  state: z.enum(['open', 'draft', 'merged', 'closed']),
  checks: z.enum(['none', 'pending', 'passing', 'failing']),
  /** "checks passing", "no checks yet". */
  checksText: z.string(),
  updatedAt: z.string(),
});
export type PullRequestView = z.infer<typeof PullRequestViewSchema>;

const ReviewModelSchema = z.object({
  changeId: ChangeIdSchema,
  repoName: z.string(),
  title: z.string(),
  task: z.string(),
  agentId: z.string(),
  lane: LaneSchema,
  closedReason: z.optional(z.string()),
  branch: z.string(),
  createdBy: z.optional(z.string()),
  createdAt: z.string(),
  policyLabel: z.string(),
  /**
   * The verdict, said once: its state and headline, and every item that blocks
   * or needs a person, each with its reason, rule and place in the page. `ready`
   * and `reasons` are the Review → Pull request gate's answer; `decisions`, that
   * gate's decision now (shown only in Review).
   */
  verdict: z.object({
    state: z.enum(VERDICT_STATES),
    headline: z.string(),
    detail: z.optional(z.string()),
    items: z.array(AttentionItemSchema),
    ready: z.boolean(),
    reasons: z.array(z.string()),
    decisions: z.array(DecisionViewSchema),
  }),
  /** Why the review is read-only (the change is not in Review); the actions are not shown then. */
  readOnly: z.optional(z.string()),
  /**
   * The first model, sent before git has listed the reviewed commits: the file list comes from the
   * diff analysis stored at draft finish and the evidence is not hashed yet, so nothing can be
   * approved; the full model follows.
   */
  provisional: z.optional(z.literal(true)),
  pullRequest: z.optional(PullRequestViewSchema),
  approval: z.optional(
    z.object({
      by: z.string(),
      at: z.string(),
      diffHash: z.string(),
      evidenceHash: z.string(),
      invalidated: z.optional(z.object({ at: z.string(), reason: z.string() })),
    }),
  ),
  actions: z.object({ approve: ActionStateSchema, requestChanges: ActionStateSchema, reject: ActionStateSchema }),
  /** Problems the reviewer must know: a vanished worktree, unreadable evidence, uncommitted work. */
  warnings: z.array(z.string()),
  requestedChanges: z.array(z.object({ at: z.string(), by: z.string(), comment: z.string() })),
  evidence: EvidenceViewSchema,
  diff: DiffViewSchema,
});
export type ReviewModel = z.infer<typeof ReviewModelSchema>;

/**
 * Whether the model shows that the approval the reviewer just gave (the
 * hashes they approved) no longer holds: it is invalidated, or another
 * approval took its place. The "Approved by …" line under the buttons is
 * taken away then, so the panel never shows an approval and its
 * invalidation at once. A model without an approval yet (the answer came
 * before the update) withdraws nothing.
 */
export function approvalWithdrawn(model: Pick<ReviewModel, 'approval'>, approved: { diffHash: string; evidenceHash: string }): boolean {
  const approval = model.approval;
  if (!approval) return false;
  return !!approval.invalidated || approval.diffHash !== approved.diffHash || approval.evidenceHash !== approved.evidenceHash;
}

// ---------------------------------------------------------------------------
// File diffs, loaded on demand

const HunkSchema = z.object({
  header: z.string(),
  oldStart: z.number(),
  newStart: z.number(),
  /** Lines with their unified-diff prefix: ' ', '+', '-' or '\\'. */
  lines: z.array(z.string()),
});

const FileDiffSchema = z.discriminatedUnion('kind', [
  z.object({ path: z.string(), kind: z.literal('text'), hunks: z.array(HunkSchema), truncatedLines: z.number() }),
  z.object({ path: z.string(), kind: z.enum(['binary', 'tooLarge', 'submodule', 'empty', 'error']), message: z.string() }),
]);
export type FileDiff = z.infer<typeof FileDiffSchema>;

// ---------------------------------------------------------------------------
// Host → webview

const ModelMessageSchema = z.object({ type: z.literal('model'), model: ReviewModelSchema });
const NoticeMessageSchema = z.object({
  type: z.literal('notice'),
  level: z.enum(['info', 'warning', 'error']),
  message: z.string(),
});
const ResponseMessageSchema = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal('response'),
    id: RequestIdSchema,
    ok: z.literal(true),
    message: z.optional(z.string()),
    files: z.optional(z.array(FileDiffSchema)),
  }),
  z.object({ type: z.literal('response'), id: RequestIdSchema, ok: z.literal(false), error: z.string() }),
]);
export type ResponseMessage = z.infer<typeof ResponseMessageSchema>;

const HostMessageSchema = z.union([ModelMessageSchema, NoticeMessageSchema, ResponseMessageSchema]);
export type HostMessage = z.infer<typeof HostMessageSchema>;

// ---------------------------------------------------------------------------
// What the webview keeps across reloads (getState/setState) and the panel serializer reads

export const ReviewPanelStateSchema = z.object({
  repoRoot: z.string().check(z.minLength(1), z.maxLength(MAX_PATH_LENGTH)),
  changeId: ChangeIdSchema,
  /** Files whose diff the reviewer folded or unfolded, against the default. */
  toggledFiles: z._default(z.array(PathSchema).check(z.maxLength(10_000)), []),
  openSections: z._default(z.array(z.string().check(z.maxLength(64))).check(z.maxLength(32)), []),
  /** The tab on show: the diff ("files") or the evidence. */
  tab: z._default(z.enum(['files', 'evidence']), 'files'),
  scrollY: z._default(z.number().check(z.minimum(0)), 0),
  commentDraft: z._default(z.string().check(z.maxLength(MAX_COMMENT_LENGTH)), ''),
});
export type ReviewPanelState = z.infer<typeof ReviewPanelStateSchema>;

/** One readable line for the log: where the message failed to parse and why. */
function describeParseError(error: z.core.$ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(message)'}: ${issue.message}`)
    .join('; ');
}

/** Parses a message from the webview; never throws. */
export function parseWebviewMessage(raw: unknown): { ok: true; message: WebviewMessage } | { ok: false; error: string } {
  const parsed = WebviewMessageSchema.safeParse(raw);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, error: describeParseError(parsed.error) };
}

/** Parses a message from the host; never throws. */
export function parseHostMessage(raw: unknown): { ok: true; message: HostMessage } | { ok: false; error: string } {
  const parsed = HostMessageSchema.safeParse(raw);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, error: describeParseError(parsed.error) };
}
