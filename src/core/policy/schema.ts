import { AGENT_ISOLATION_BACKENDS, type AgentIsolationBackend } from '../draft/agentIsolation';
import { allowEntryProblem } from '../draft/egressAllowlist';
import YAML, { LineCounter, isNode, isScalar } from 'yaml';
import { z } from 'zod';
import { EFFECTS, type Effect } from '../decision';
import { EVIDENCE_FIELDS, type EvidenceField, type FlagKind } from '../evidence';
import { compileSecretPatterns } from '../redaction';
import { globProblem } from './globs';
import { ROLLOUT_MODES, UNCLASSIFIED } from './rollout';

/** The one document version this build reads. A v2 would come with a new parser, not a reinterpretation. */
export const POLICY_API_VERSION = 'agentlanes.dev/v1';

/**
 * Conditions that stop a change. Every evidence flag kind maps to one of them
 * (FLAG_CONDITION); `forbiddenPath` groups the paths no agent may ever write
 * (`..`, files under `.git`, symlinks that leave the worktree).
 */
export const STOP_CONDITIONS = [
  'failedRequiredTask',
  'missingEvidence',
  'blastRadius',
  'forbiddenPath',
  'secretLike',
  'sensitivePath',
  'newDependency',
  'gitlink',
  'oversizedFile',
  'binaryFile',
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
export type StopCondition = (typeof STOP_CONDITIONS)[number];

export const FLAG_CONDITION: Readonly<Record<FlagKind, StopCondition>> = Object.freeze({
  newDependency: 'newDependency',
  sensitivePath: 'sensitivePath',
  symlinkEscape: 'forbiddenPath',
  gitPath: 'forbiddenPath',
  pathTraversal: 'forbiddenPath',
  gitlink: 'gitlink',
  oversizedFile: 'oversizedFile',
  binaryFile: 'binaryFile',
  secretLike: 'secretLike',
  secretInHistory: 'secretLike',
  unusualScope: 'unusualScope',
  sandboxConfigEdited: 'sandboxConfigEdited',
  policyFileEdited: 'policyFileEdited',
  agentInstructionsEdited: 'agentInstructionsEdited',
  executesLater: 'executesLater',
  checkoutTouched: 'checkoutTouched',
  testsDoNotExercise: 'testsDoNotExercise',
  unbackedClaim: 'unbackedClaim',
  unconfined: 'unconfined',
});

/** What a stop condition does when a policy does not say. */
export const DEFAULT_STOP_CONDITIONS: Readonly<Record<StopCondition, Effect>> = Object.freeze({
  failedRequiredTask: 'block',
  missingEvidence: 'block',
  blastRadius: 'block',
  forbiddenPath: 'block',
  secretLike: 'block',
  checkoutTouched: 'block',
  sensitivePath: 'requireApproval',
  newDependency: 'requireApproval',
  gitlink: 'requireApproval',
  oversizedFile: 'requireApproval',
  sandboxConfigEdited: 'requireApproval',
  policyFileEdited: 'requireApproval',
  agentInstructionsEdited: 'requireApproval',
  unconfined: 'requireApproval',
  executesLater: 'requireApproval',
  unbackedClaim: 'requireApproval',
  binaryFile: 'allow',
  unusualScope: 'allow',
  testsDoNotExercise: 'allow',
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const nameString = (what: string) =>
  z
    .string()
    .max(100)
    .regex(NAME, { error: `expected ${what}: letters, digits, ".", "_" or "-", starting with a letter or digit` });

const GlobSchema = z.string().superRefine((glob, ctx) => {
  const problem = globProblem(glob);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, input: glob });
});

const EffectSchema = z.enum(EFFECTS);
const positiveInt = z.number().int().positive();
const nonEmpty = z.string().trim().min(1);

const MetadataSchema = z.strictObject({
  id: nameString('a policy id such as "acme-org"'),
  version: z
    .union([z.string().trim().min(1).max(64), z.number()], { error: 'expected a version such as "2026.11.1" or 3' })
    .transform(String),
  expiresAt: z.iso
    .datetime({ offset: true, error: 'expected an ISO 8601 date-time with a time zone, such as "2026-12-31T00:00:00Z"' })
    .optional(),
  description: z.string().max(2000).optional(),
});

const KillSwitchSchema = z.strictObject({
  disableDrafts: z.boolean().optional(),
  disableSandbox: z.boolean().optional(),
  disablePullRequests: z.boolean().optional(),
  disableActions: z.boolean().optional(),
  cancelRunning: z.boolean().optional(),
  message: z.string().max(1000).optional(),
});

const HOST = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:\d{1,5})?$/;
const PreparationNetworkSchema = z.union(
  [
    z.enum(['none', 'open']),
    z.strictObject({ registries: z.array(z.string().regex(HOST, { error: 'expected a host name such as registry.npmjs.org' })).min(1) }),
  ],
  { error: 'expected "none", "open" or { registries: [host, ...] }' },
);
export type PreparationNetwork = z.output<typeof PreparationNetworkSchema>;

const RequiredTaskSchema = z.strictObject({
  id: nameString('a task id such as "unit-tests"'),
  command: nonEmpty.max(4000),
  timeoutSeconds: positiveInt.optional(),
});
type RequiredTask = z.output<typeof RequiredTaskSchema>;

/** Resource limits, shared by the sandbox's tasks and the agents. */
const resourceLimits = {
  cpus: z.number().positive().max(1024).optional(),
  memoryMb: positiveInt.optional(),
  pids: positiveInt.optional(),
  timeoutSeconds: positiveInt.optional(),
};

const SandboxSchema = z.strictObject({
  network: z
    .strictObject({
      tasks: z.enum(['none', 'open']).optional(),
      preparation: PreparationNetworkSchema.optional(),
    })
    .optional(),
  limits: z.strictObject(resourceLimits).optional(),
  requiredTasks: z
    .array(RequiredTaskSchema)
    .superRefine((tasks, ctx) => {
      const seen = new Set<string>();
      tasks.forEach((task, index) => {
        if (seen.has(task.id))
          ctx.addIssue({
            code: 'custom',
            path: [index, 'id'],
            message: `task id "${task.id}" appears twice; give each required task its own id`,
            input: task.id,
          });
        seen.add(task.id);
      });
    })
    .optional(),
  /** Whether a process sandbox (bubblewrap; weaker than a container) may run the tasks. */
  processSandbox: z.enum(['allowed', 'forbidden']).optional(),
  /** Exact exceptions to the dev container checks; everything not listed here is refused. */
  devcontainer: z
    .strictObject({
      allowPrivileged: z.boolean().optional(),
      allowHostNetwork: z.boolean().optional(),
      allowedMounts: z.array(nonEmpty).optional(),
      allowedCapabilities: z.array(nonEmpty).optional(),
      /** Registry features (ids or globs) a devcontainer.json may use although their metadata cannot be read offline. */
      allowedFeatures: z.array(nonEmpty).optional(),
    })
    .optional(),
});

const AgentSchema = z.strictObject({
  /** The backends an agent may run in, in order of preference; a lower level can only take some away. */
  isolation: z.array(z.enum(AGENT_ISOLATION_BACKENDS)).min(1).optional(),
  /** The container backend's image (an agent image the org names). */
  image: nonEmpty.max(500).optional(),
  network: z
    .strictObject({
      allow: z
        .array(
          z.string().superRefine((entry, ctx) => {
            const problem = allowEntryProblem(entry);
            if (problem) ctx.addIssue({ code: 'custom', message: problem, input: entry });
          }),
        )
        .optional(),
    })
    .optional(),
  limits: z.strictObject({ ...resourceLimits, diskMb: positiveInt.optional() }).optional(),
});

const ApprovalsSchema = z.strictObject({
  minApprovals: z.number().int().min(0).max(20).optional(),
  forbidSelfApproval: z.boolean().optional(),
  sensitivePathReviewers: z.array(z.strictObject({ glob: GlobSchema, reviewers: z.array(nonEmpty).min(1) })).optional(),
});

const PullRequestsSchema = z.strictObject({
  draftOnly: z.boolean().optional(),
  labels: z.array(nonEmpty.max(50)).optional(),
  allowedBaseBranches: z.array(nonEmpty).optional(),
  titlePrefix: z.string().max(100).optional(),
  reviewers: z.array(nonEmpty).optional(),
  /** A token that only the change's history still holds (secretInHistory): stop at the gates (block), or squash the lane's commits into one on the base. */
  secretInHistory: z.enum(['block', 'squash']).optional(),
});

const LanesSchema = z.strictObject({
  allowedAgents: z.array(nonEmpty).optional(),
  sandbox: SandboxSchema.optional(),
  agent: AgentSchema.optional(),
  evidence: z.strictObject({ required: z.array(z.enum(EVIDENCE_FIELDS)).optional() }).optional(),
  approvals: ApprovalsSchema.optional(),
  pullRequests: PullRequestsSchema.optional(),
});

const PathRuleSchema = z.strictObject({
  glob: GlobSchema,
  effect: EffectSchema,
  reason: nonEmpty.max(500),
});
export type PathRule = z.output<typeof PathRuleSchema>;

const SecretPatternSchema = z
  .strictObject({ name: nameString('a pattern name such as "acme-token"'), pattern: z.string() })
  .superRefine((entry, ctx) => {
    const { errors } = compileSecretPatterns([entry]);
    if (errors.length) ctx.addIssue({ code: 'custom', path: ['pattern'], message: errors[0]!, input: entry.pattern });
  });
type SecretPatternRule = z.output<typeof SecretPatternSchema>;

/** The kinds of production action (docs/actions.md): a workflow run, a deployment, or a revert pull request. */
const ACTION_KINDS = ['workflowDispatch', 'deployment', 'revert'] as const;
const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const HOURS = /^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/;

/** An input the action passes: one fixed value, or one of a list the person picks from. */
const ActionInputSchema = z.union(
  [z.strictObject({ fixed: z.string().max(1000) }), z.strictObject({ oneOf: z.array(z.string().max(1000)).min(1).max(50) })],
  {
    error: 'expected { fixed: "value" } or { oneOf: ["a", "b"] }',
  },
);

const ProductionActionSchema = z
  .strictObject({
    id: nameString('an action id such as "deploy-staging"'),
    kind: z.enum(ACTION_KINDS),
    /** workflowDispatch: the workflow's file name (deploy.yml) or id. */
    workflow: nonEmpty.max(200).optional(),
    /** deployment (and optionally workflowDispatch): the GitHub environment. */
    environment: nonEmpty.max(255).optional(),
    inputs: z.record(nameString('an input name'), ActionInputSchema).optional(),
    /** owner/repo, exactly. */
    repositories: z.array(nonEmpty.regex(/^[^/\s]+\/[^/\s]+$/, { error: 'expected owner/repo' })).min(1),
    branches: z.array(nonEmpty).min(1),
    /** GitHub logins, or teams as "@org/team". Never the change's author or its agent. */
    authorizers: z.array(nonEmpty).min(1),
    requires: z
      .strictObject({
        /** The merged commit's checks must all have passed (default true). */
        checksGreen: z.boolean().optional(),
        /** Actions that must have succeeded first for the same commit (staging before production). */
        after: z.array(nameString('an action id')).optional(),
        /** When the action may run (UTC): days and hours such as "09:00-17:00". */
        window: z
          .strictObject({
            days: z.array(z.enum(WEEKDAYS)).min(1).optional(),
            hours: z.string().regex(HOURS, { error: 'expected hours such as "09:00-17:00" (UTC)' }).optional(),
          })
          .optional(),
      })
      .optional(),
    escalation: z
      .strictObject({
        /** A run still going after this long needs a person: the change shows "needs rollback". */
        timeLimitMinutes: positiveInt.max(24 * 60).optional(),
        notify: z.array(nonEmpty).optional(),
        /** The action that rolls this one back (else a revert pull request through the lanes). */
        rollback: nameString('an action id').optional(),
      })
      .optional(),
  })
  .superRefine((action, ctx) => {
    if (action.kind === 'workflowDispatch' && !action.workflow)
      ctx.addIssue({
        code: 'custom',
        path: ['workflow'],
        message: 'a workflowDispatch action names its workflow (such as "deploy.yml")',
        input: action,
      });
    if (action.kind === 'deployment' && !action.environment)
      ctx.addIssue({
        code: 'custom',
        path: ['environment'],
        message: 'a deployment action names its environment (such as "production")',
        input: action,
      });
    if (action.kind !== 'workflowDispatch' && action.inputs)
      ctx.addIssue({ code: 'custom', path: ['inputs'], message: 'only a workflowDispatch action has inputs', input: action.inputs });
  });
export type ProductionAction = z.output<typeof ProductionActionSchema>;

const ActionsSchema = z.array(ProductionActionSchema).superRefine((actions, ctx) => {
  const ids = new Set(actions.map((action) => action.id));
  actions.forEach((action, index) => {
    if (actions.findIndex((other) => other.id === action.id) !== index)
      ctx.addIssue({
        code: 'custom',
        path: [index, 'id'],
        message: `action id "${action.id}" appears twice; give each action its own id`,
        input: action.id,
      });
    for (const [field, named] of [
      ['requires', action.requires?.after ?? []],
      ['escalation', action.escalation?.rollback ? [action.escalation.rollback] : []],
    ] as const)
      for (const id of named)
        if (!ids.has(id) || id === action.id)
          ctx.addIssue({
            code: 'custom',
            path: [index, field],
            message: `names action "${id}", which is not another action of this policy`,
            input: id,
          });
  });
});

/** A kind of work (docs/policy.md, "Task classes"): chosen at New Draft, or assigned by the task's words and the changed paths. */
const TaskClassSchema = z
  .strictObject({
    id: nameString('a task class id such as "docs" or "dependency_patch"'),
    description: z.string().max(500).optional(),
    /** Words of the task that assign the class (case-insensitive, whole words). */
    taskText: z.array(nonEmpty.max(100)).max(100).optional(),
    /** The class applies only when every changed path matches one of these. */
    paths: z.array(GlobSchema).max(200).optional(),
  })
  .superRefine((taskClass, ctx) => {
    if (taskClass.id === UNCLASSIFIED)
      ctx.addIssue({
        code: 'custom',
        path: ['id'],
        message: `"${UNCLASSIFIED}" is the name of no class; choose another id`,
        input: taskClass.id,
      });
  });
type TaskClass = z.output<typeof TaskClassSchema>;

/** How far changes may go, per repository and task class (docs/policy.md, "Rollout modes"). */
const RolloutEntrySchema = z.strictObject({
  mode: z.enum(ROLLOUT_MODES),
  repositories: z
    .array(nonEmpty.regex(/^[^/\s]+\/[^/\s]+$/, { error: 'expected owner/repo' }))
    .min(1)
    .optional(),
  /** Task class ids (or "unclassified"); none: every class. */
  taskClasses: z.array(nameString('a task class id')).min(1).optional(),
});
type RolloutEntry = z.output<typeof RolloutEntrySchema>;

/** Incidents an autonomy rule can require none of, over its changes (docs/policy.md, "Autonomy earned by evidence"). */
const INCIDENTS = ['forbiddenPath', 'secretLike'] as const;
const rate = z.number().min(0).max(1, { error: 'expected a share between 0 and 1, such as 0.7' });

/** A mode a task class earns with its record; until then, `otherwise`. */
const AutonomyEntrySchema = z
  .strictObject({
    taskClasses: z.array(nameString('a task class id')).min(1),
    repositories: z
      .array(nonEmpty.regex(/^[^/\s]+\/[^/\s]+$/, { error: 'expected owner/repo' }))
      .min(1)
      .optional(),
    mode: z.enum(ROLLOUT_MODES),
    otherwise: z.enum(ROLLOUT_MODES),
    requires: z.strictObject({
      /** The record is the class's last this many changes that ended (merged, or closed without merging). */
      lastChanges: positiveInt.max(10_000).default(300),
      /** Fewer ended changes than this: not earned yet. */
      minChanges: positiveInt.max(10_000).default(20),
      mergedRate: rate.optional(),
      intactRate: rate.optional(),
      noIncidents: z.array(z.enum(INCIDENTS)).optional(),
    }),
  })
  .superRefine((entry, ctx) => {
    if (ROLLOUT_MODES.indexOf(entry.otherwise) > ROLLOUT_MODES.indexOf(entry.mode))
      ctx.addIssue({
        code: 'custom',
        path: ['otherwise'],
        message: `"otherwise" (${entry.otherwise}) goes further than the earned mode (${entry.mode}); it is the mode before the record is earned`,
        input: entry.otherwise,
      });
  });
type AutonomyEntry = z.output<typeof AutonomyEntrySchema>;

const stopConditionShape = Object.fromEntries(STOP_CONDITIONS.map((key) => [key, EffectSchema.optional()])) as {
  [K in StopCondition]: z.ZodOptional<typeof EffectSchema>;
};

const documentShape = {
  apiVersion: z.literal(POLICY_API_VERSION, {
    error: (issue) =>
      issue.input === undefined
        ? `is required: start the document with "apiVersion: ${POLICY_API_VERSION}"`
        : `expected "${POLICY_API_VERSION}", got ${describeValue(issue.input)}; this version of Agent Lanes reads ${POLICY_API_VERSION} policies`,
  }),
  metadata: MetadataSchema,
  killSwitch: KillSwitchSchema.optional(),
  lanes: LanesSchema.optional(),
  pathRules: z.array(PathRuleSchema).optional(),
  blastRadius: z.strictObject({ maxFiles: positiveInt.optional(), maxChangedLines: positiveInt.optional() }).optional(),
  stopConditions: z.strictObject(stopConditionShape).optional(),
  sensitivePaths: z.array(GlobSchema).optional(),
  secretPatterns: z.array(SecretPatternSchema).optional(),
  /** The only production actions there are (docs/actions.md); none by default. */
  actions: ActionsSchema.optional(),
  /** Kinds of work; defined by the base (org) level only. */
  taskClasses: z
    .array(TaskClassSchema)
    .superRefine((classes, ctx) =>
      classes.forEach((taskClass, index) => {
        if (classes.findIndex((other) => other.id === taskClass.id) !== index)
          ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `task class "${taskClass.id}" appears twice`, input: taskClass.id });
      }),
    )
    .optional(),
  /** At each level the first matching entry decides; the strictest level wins. */
  rollout: z.array(RolloutEntrySchema).optional(),
  /** Modes a task class earns with its record; every level's entries apply, the strictest wins. */
  autonomy: z.array(AutonomyEntrySchema).optional(),
};

/**
 * One policy document as written: every section optional, because an omitted
 * field means "no opinion" (a lower level that omits a field leaves the
 * higher level's value alone). Defaults are filled in only for the base level.
 */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const PolicyDocumentSchema = z.strictObject(documentShape);
export type PolicyDocument = z.output<typeof PolicyDocumentSchema>;
type PolicyMetadata = PolicyDocument['metadata'];

/** The same document where metadata may be left out (a repository or user overlay). */
const OverlayDocumentSchema = z.strictObject({ ...documentShape, metadata: MetadataSchema.optional() });

/** A policy with every field decided: the shape evaluation and the sandbox read. */
export interface ResolvedPolicy {
  apiVersion: typeof POLICY_API_VERSION;
  metadata: PolicyMetadata;
  killSwitch: {
    disableDrafts: boolean;
    disableSandbox: boolean;
    disablePullRequests: boolean;
    disableActions: boolean;
    cancelRunning: boolean;
    message?: string;
  };
  lanes: {
    /** Undefined: any agent. */
    allowedAgents?: string[];
    sandbox: {
      network: { tasks: 'none' | 'open'; preparation: PreparationNetwork };
      /** Undefined limits are not limited by policy (the sandbox's own defaults apply). */
      limits: { cpus?: number; memoryMb?: number; pids?: number; timeoutSeconds?: number };
      requiredTasks: RequiredTask[];
      processSandbox: 'allowed' | 'forbidden';
      devcontainer: {
        allowPrivileged: boolean;
        allowHostNetwork: boolean;
        allowedMounts: string[];
        allowedCapabilities: string[];
        allowedFeatures: string[];
      };
    };
    agent: {
      isolation: AgentIsolationBackend[];
      image?: string;
      network: { allow: string[] };
      limits: { cpus?: number; memoryMb?: number; pids?: number; timeoutSeconds?: number; diskMb?: number };
    };
    evidence: { required: EvidenceField[] };
    approvals: { minApprovals: number; forbidSelfApproval: boolean; sensitivePathReviewers: { glob: string; reviewers: string[] }[] };
    pullRequests: {
      draftOnly: boolean;
      labels: string[];
      allowedBaseBranches?: string[];
      titlePrefix?: string;
      reviewers: string[];
      secretInHistory: 'block' | 'squash';
    };
  };
  pathRules: PathRule[];
  blastRadius: { maxFiles?: number; maxChangedLines?: number };
  stopConditions: Record<StopCondition, Effect>;
  sensitivePaths: string[];
  secretPatterns: SecretPatternRule[];
  actions: ProductionAction[];
  taskClasses: TaskClass[];
  rollout: RolloutEntry[];
  autonomy: AutonomyEntry[];
}

export type ParseResult = { ok: true; policy: PolicyDocument } | { ok: false; errors: string[] };

export interface ParseOptions {
  /**
   * For overlays (the repository's `.lanes/policy.yaml`, user settings):
   * metadata may be left out and these values stand in for it.
   */
  defaultMetadata?: { id: string; version: string };
  /** Refuse larger documents before parsing them. Default 1 MiB. */
  maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 1024 * 1024;

export type Locate = (path: PropertyKey[]) => { line: number; col: number } | undefined;

/**
 * Reads YAML (or JSON, which is YAML) into a value, with a way to find the
 * line and column of a field for later messages. Syntax errors are listed
 * with their position; nothing throws.
 */
export function readYaml(text: string, sourceName: string): { ok: true; value: unknown; locate: Locate } | { ok: false; errors: string[] } {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      ok: false,
      errors: doc.errors.map((error) => {
        const at = error.linePos?.[0];
        const message = error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').trim();
        return `${sourceName}${at ? `:${at.line}:${at.col}` : ''}: YAML syntax error: ${message}`;
      }),
    };
  }
  // `version: 2026.10` is the number 2026.1 to YAML: the version the policy names would not be the one written.
  const version = doc.getIn(['metadata', 'version'], true);
  if (isScalar(version) && typeof version.value === 'number' && version.range) {
    const written = text.slice(version.range[0], version.range[1]).trim();
    if (written !== String(version.value)) {
      const at = lineCounter.linePos(version.range[0]);
      return {
        ok: false,
        errors: [
          `${sourceName}:${at.line}:${at.col}: metadata.version: ${written} is read by YAML as the number ${String(version.value)}; quote it (version: "${written}") so the version stays as written.`,
        ],
      };
    }
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return { ok: false, errors: [`${sourceName}: ${(error as Error).message}`] };
  }
  const locate: Locate = (path) => {
    const node = doc.getIn(path, true);
    if (!isNode(node) || !node.range) return undefined;
    return lineCounter.linePos(node.range[0]);
  };
  return { ok: true, value, locate };
}

/** Messages for a failed zod parse: "source:line:col: field.path: what was expected", top to bottom. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, sourceName: string, locate?: Locate): string[] {
  const located = issues
    .flatMap((issue) => formatIssue(issue, schema))
    .map((problem) => {
      const at = locate?.(problem.path) ?? (problem.path.length ? locate?.(problem.path.slice(0, -1)) : undefined);
      return { at, text: `${sourceName}${at ? `:${at.line}:${at.col}` : ''}: ${formatPath(problem.path)}: ${problem.message}` };
    });
  // Top to bottom, as a person reads the file.
  located.sort((a, b) => (a.at?.line ?? 0) - (b.at?.line ?? 0) || (a.at?.col ?? 0) - (b.at?.col ?? 0));
  return located.map((entry) => entry.text);
}

/**
 * Parses a policy document, YAML or JSON (JSON is YAML). Every problem is
 * reported, each naming where it is and what was expected; nothing throws.
 */
export function parsePolicy(text: string, sourceName: string, options: ParseOptions = {}): ParseResult {
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  if (text.length > maxLength)
    return {
      ok: false,
      errors: [`${sourceName}: the document is ${text.length} characters long; a policy may have at most ${maxLength}.`],
    };
  const read = readYaml(text, sourceName);
  if (!read.ok) return read;
  if (read.value === null || read.value === undefined) {
    return {
      ok: false,
      errors: [
        `${sourceName}: the document is empty; a policy starts with "apiVersion: ${POLICY_API_VERSION}" and "metadata: { id, version }".`,
      ],
    };
  }
  return parsePolicyObject(read.value, sourceName, options, read.locate);
}

/**
 * Validates a policy that is already a value (from settings, or parsed JSON).
 * `locate` maps a field path to a line and column for the messages.
 */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function parsePolicyObject(value: unknown, sourceName: string, options: ParseOptions = {}, locate?: Locate): ParseResult {
  const schema = options.defaultMetadata ? OverlayDocumentSchema : PolicyDocumentSchema;
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) return { ok: false, errors: describeIssues(parsed.error.issues, schema, sourceName, locate) };
  const policy = { ...parsed.data, metadata: parsed.data.metadata ?? { ...options.defaultMetadata! } } as PolicyDocument;
  return { ok: true, policy };
}

/**
 * An overlay given as a value rather than a file (the user's
 * `agentLanes.policy.user` setting, a test file's `repository:`): the same
 * fields as a policy document, with apiVersion and metadata optional.
 */
export function parseOverlayObject(value: unknown, sourceName: string, metadata: { id: string; version: string }): ParseResult {
  const document =
    value !== null && typeof value === 'object' && !Array.isArray(value) ? { apiVersion: POLICY_API_VERSION, ...value } : value;
  return parsePolicyObject(document, sourceName, { defaultMetadata: metadata });
}

/** `lanes.sandbox.requiredTasks[0].id`; the root is "(document)". */
function formatPath(path: readonly PropertyKey[]): string {
  if (!path.length) return '(document)';
  let text = '';
  for (const key of path) text += typeof key === 'number' ? `[${key}]` : `${text ? '.' : ''}${String(key)}`;
  return text;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `a list`;
  return 'a mapping';
}

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  int: 'a whole number',
};

interface Problem {
  path: PropertyKey[];
  message: string;
}

function formatIssue(issue: z.core.$ZodIssue, root: z.ZodType): Problem[] {
  const path = [...issue.path];
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'invalid_type': {
      const expected = TYPE_WORDS[issue.expected] ?? issue.expected;
      // A schema's own message (an `error` option) says more than the type name.
      if (!issue.message.startsWith('Invalid input')) return [{ path, message: `${issue.message}, got ${describeValue(input)}` }];
      if (input === undefined) return [{ path, message: `is required (expected ${expected})` }];
      return [{ path, message: `expected ${expected}, got ${describeValue(input)}` }];
    }
    case 'invalid_value': {
      if (issue.message && !issue.message.startsWith('Invalid')) return [{ path, message: issue.message }];
      const options = issue.values.map((v) => JSON.stringify(v)).join(', ');
      const words = issue.values.filter((v): v is string => typeof v === 'string');
      // A typo of one of them ("gate.draftToSandox") is named first, before the whole list.
      const near = typeof input === 'string' && words.length > 1 ? closest(input, words) : undefined;
      if (near) return [{ path, message: `got ${describeValue(input)}; did you mean "${near}"? (one of ${options})` }];
      return [{ path, message: `expected ${issue.values.length > 1 ? `one of ${options}` : options}, got ${describeValue(input)}` }];
    }
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const allowed = allowedKeysAt(root, path);
        const suggestion = allowed ? closest(key, allowed) : undefined;
        const hint = suggestion ? ` (did you mean "${suggestion}"?)` : allowed ? ` (allowed here: ${allowed.join(', ')})` : '';
        return { path: [...path, key], message: `unknown field${hint}` };
      });
    case 'too_small': {
      const origin = (issue as { origin?: string }).origin;
      if (origin === 'array')
        return [{ path, message: `expected at least ${String(issue.minimum)} item${Number(issue.minimum) === 1 ? '' : 's'}` }];
      if (origin === 'string') return [{ path, message: 'expected a non-empty string' }];
      return [{ path, message: `expected a number ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}, got ${describeValue(input)}` }];
    }
    case 'too_big': {
      const origin = (issue as { origin?: string }).origin;
      if (origin === 'array') return [{ path, message: `expected at most ${String(issue.maximum)} items` }];
      if (origin === 'string') return [{ path, message: `expected at most ${String(issue.maximum)} characters` }];
      return [{ path, message: `expected a number ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}, got ${describeValue(input)}` }];
    }
    case 'invalid_union':
      return [
        {
          path,
          message: `${issue.message.startsWith('Invalid') ? 'expected one of the documented forms' : issue.message}, got ${describeValue(input)}`,
        },
      ];
    case 'invalid_format':
    case 'custom':
    default: {
      const message = issue.message;
      const alreadyShowsInput = typeof input === 'string' && message.includes(input);
      return [
        {
          path,
          message:
            issue.code === 'custom' || alreadyShowsInput || input === undefined ? message : `${message}, got ${describeValue(input)}`,
        },
      ];
    }
  }
}

/** The field names a strict object at `path` accepts, for "did you mean" hints. */
function allowedKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let current: z.ZodType | undefined = schema;
  const unwrap = (s: z.ZodType): z.ZodType => {
    let inner = s;
    for (;;) {
      if (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault) inner = inner.unwrap() as z.ZodType;
      else if (inner instanceof z.ZodPipe) inner = inner.in as z.ZodType;
      else return inner;
    }
  };
  for (const key of path) {
    current = current ? unwrap(current) : undefined;
    if (current instanceof z.ZodObject && typeof key === 'string') current = current.shape[key] as z.ZodType | undefined;
    else if (current instanceof z.ZodArray && typeof key === 'number') current = current.element as z.ZodType;
    else return undefined;
  }
  current = current ? unwrap(current) : undefined;
  return current instanceof z.ZodObject ? Object.keys(current.shape) : undefined;
}

const camelWords = (name: string): string[] =>
  name
    .split(/(?=[A-Z])|[_-]/)
    .map((part) => part.toLowerCase())
    .filter(Boolean);

function closest(word: string, candidates: string[]): string | undefined {
  // A field named with fewer words of a real one (maxLines → maxChangedLines) before a near spelling (maxFiles).
  const words = camelWords(word);
  const containing = candidates.filter((candidate) => {
    const have = camelWords(candidate);
    return words.length > 1 && words.every((part) => have.includes(part));
  });
  if (containing.length) return containing.sort((a, b) => a.length - b.length)[0];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}

/**
 * The policy document as JSON Schema (draft 2020-12), from the zod schema the
 * extension and the CLI parse with, so editors complete and check what they
 * will accept. `agent-lanes policy schema` prints it; `npm run package` writes
 * it as dist/policy.schema.json.
 */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(PolicyDocumentSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://agentlanes.dev/schemas/policy-v1.json',
    title: 'Agent Lanes policy (agentlanes.dev/v1)',
  };
}
