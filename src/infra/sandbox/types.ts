import { LaneError } from '../../core/errors';
import type { PreparationEvidence, TaskEvidence } from '../../core/evidence';
import { type BaseOverlay, failsOnBaseFrom, type TestFileResult } from '../../core/sandbox/baseRun';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import type { SandboxRole } from '../../core/sandbox/sandboxConfig';
import type { SandboxPolicy } from '../../core/sandbox/sandboxPolicy';
import type { TaskRunOptions } from './taskRun';
import type { BaseRunner } from './baseWorktree';

/** What decides a sandbox, read by the caller from the BASE commit, never from the worktree. */
export interface SandboxSource {
  /** The base commit's devcontainer.json; undefined when the repository has none (the default image is used). */
  devcontainer?: {
    text: string;
    /** Repository-relative path, e.g. `.devcontainer/devcontainer.json`. */
    path: string;
    /** How to name the file in messages, e.g. `.devcontainer/devcontainer.json (base abc1234)`; default the path. */
    label?: string;
  };
  /** Reads another file of the base commit (a `build` configuration's Dockerfile, a local feature's files); repository-relative path. */
  readBaseFile?: (repoPath: string) => Promise<string | undefined>;
  /** The files of the base commit under a folder (a local feature), repository-relative paths. */
  listBaseFiles?: (repoFolder: string) => Promise<string[]>;
  /** `prepare:` commands from the base commit's `.lanes/lanes.yaml`. */
  prepare: readonly string[];
}

export type SandboxProgress =
  | { kind: 'preparing'; message: string }
  | { kind: 'taskStarted'; task: ResolvedTask; index: number; total: number }
  | { kind: 'taskFinished'; evidence: TaskEvidence; index: number; total: number };

/** How a task's evidence names its sandbox. */
export interface SandboxLabel {
  isolation: 'container' | 'process';
  networkMode: string;
  image?: string;
  imageId?: string;
}

/** What a sandbox needs to get ready for a worktree's tasks. */
export interface PrepareRequest {
  changeId: string;
  worktreePath: string;
  source: SandboxSource;
  policy: SandboxPolicy;
  /** The change's own sandbox, or a scratch one for the base commit (its logs are named base-...). */
  role?: SandboxRole | undefined;
  /** Where logs are stored, outside every worktree (e.g. RepoStorage.logsDir). */
  logDir: string;
  signal?: AbortSignal | undefined;
  /** The preparation's output as it arrives, redacted. */
  onOutput?: ((text: string) => void) | undefined;
  /** Said when a preparation starts (a container to find or create, prepare commands to run). */
  onPreparing?: ((message: string) => void) | undefined;
}

/** A sandbox made ready for one worktree: its tasks run one at a time with runTaskSequence. */
export interface PreparedSandbox {
  readonly label: SandboxLabel;
  /** Undefined when there was nothing to prepare (the process sandbox without prepare commands). */
  readonly preparation?: PreparationEvidence;
  /** What the preparation's audit event adds (the image, a reused container...). */
  readonly auditDetails: Record<string, unknown>;
  /** Why the remaining tasks are skipped after a task ended in error (the sandbox itself failed); undefined: they still run. */
  readonly stopAfterError?: string;
  /** Runs one task; never throws for the task's own failure. */
  runTask(task: ResolvedTask, options: TaskRunOptions): Promise<TaskEvidence>;
}

export interface BaseRunRequest extends Omit<TaskRunOptions, 'onOutput'> {
  changeId: string;
  /** The repository (any of its worktrees) the base worktree is added to. */
  repoRoot: string;
  baseSha: string;
  /** The change's head commit: its test files are put over the base commit's other files. */
  headSha: string;
  /** Which test files come from the head and which are removed (see baseOverlay). */
  overlay: BaseOverlay;
  /** The change's worktree, so the base worktree gets the same folder name (and so the same path in the sandbox). */
  changeWorktreePath: string;
  source: SandboxSource;
  tasks: readonly ResolvedTask[];
  policy: SandboxPolicy;
  /** Output of the preparation ('prepare') and of each task (its id), redacted. */
  onTaskOutput?: (taskId: string, text: string) => void;
}

export interface BaseRunResult {
  /** Per task id: true = fails on the base (good), false = passes there too, null = could not tell. */
  failsOnBase: Map<string, boolean | null>;
  /** Per task id: the change's test files that the runner's output names, failed or passed on the base. */
  files: Map<string, TestFileResult[]>;
  /** The base run's own evidence (logs named base-<task>). */
  tasks: TaskEvidence[];
  preparation?: PreparationEvidence;
}

export function baseRunResult(
  preparation: PreparationEvidence | undefined,
  tasks: TaskEvidence[],
  files: Map<string, TestFileResult[]> = new Map(),
): BaseRunResult {
  return {
    failsOnBase: new Map(tasks.map((task) => [task.id, failsOnBaseFrom(task.outcome)] as const)),
    files,
    tasks,
    ...(preparation ? { preparation } : {}),
  };
}

/** A container sandbox or the lesser process sandbox. */
export interface TaskSandbox {
  readonly isolation: 'container' | 'process';
  /** Gets the sandbox ready for the worktree (a container found or created, prepare commands run once). */
  prepare(request: PrepareRequest): Promise<PreparedSandbox>;
  /** Runs the given tasks on the base commit (a scratch worktree) and cleans up after. */
  runOnBase(request: BaseRunRequest): Promise<BaseRunResult>;
  /** Gets the base commit's sandbox ready (worktree, sandbox, preparation) ahead of its tasks, e.g. while the change's own tasks run. */
  startOnBase(request: Omit<BaseRunRequest, 'tasks'>): Promise<BaseRunner>;
}

export type SandboxErrorKind =
  | 'configSyntax'
  | 'refused'
  | 'imageMissing'
  | 'upFailed'
  | 'upTimedOut'
  | 'preparationFailed'
  | 'networkNotOff'
  | 'cancelled'
  | 'containerRemoved'
  | 'engine'
  | 'noSandbox';

/** A sandbox that could not be set up; `message` says what happened and what to do. */
export class SandboxError extends LaneError {
  declare readonly kind: SandboxErrorKind;

  constructor(
    kind: SandboxErrorKind,
    message: string,
    readonly preparation?: PreparationEvidence,
  ) {
    super(kind, message);
  }
}
