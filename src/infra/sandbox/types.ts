import { LaneError } from '../../core/errors';
import type { PreparationEvidence, TaskEvidence } from '../../core/evidence';
import { failsOnBaseFrom } from '../../core/sandbox/baseRun';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import type { SandboxPolicy } from '../../core/sandbox/sandboxPolicy';
import type { TaskRunOptions } from './taskRun';

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
  /** Reads another file of the base commit (a `build` configuration's Dockerfile); repository-relative path. */
  readBaseFile?: (repoPath: string) => Promise<string | undefined>;
  /** `prepare:` commands from the base commit's `.lanes/lanes.yaml`. */
  prepare: readonly string[];
}

export type SandboxProgress =
  | { kind: 'preparing'; message: string }
  | { kind: 'taskStarted'; task: ResolvedTask; index: number; total: number }
  | { kind: 'taskFinished'; evidence: TaskEvidence; index: number; total: number };

export interface RunTasksRequest extends TaskRunOptions {
  changeId: string;
  worktreePath: string;
  source: SandboxSource;
  tasks: readonly ResolvedTask[];
  policy: SandboxPolicy;
  /** Output of the preparation and of each task, redacted; `taskId` is 'prepare' for the preparation. */
  onTaskOutput?: (taskId: string, text: string) => void;
  onProgress?: (progress: SandboxProgress) => void;
}

export interface SandboxRunResult {
  isolation: 'container' | 'process';
  preparation?: PreparationEvidence;
  tasks: TaskEvidence[];
}

export interface BaseRunRequest extends Omit<RunTasksRequest, 'worktreePath'> {
  /** The repository (any of its worktrees) the base worktree is added to. */
  repoRoot: string;
  baseSha: string;
  /** The change's worktree, so the base worktree gets the same folder name (and so the same path in the sandbox). */
  changeWorktreePath: string;
}

export interface BaseRunResult {
  /** Per task id: true = fails on the base (good), false = passes there too, null = could not tell. */
  failsOnBase: Map<string, boolean | null>;
  /** The base run's own evidence (logs named base-<task>). */
  tasks: TaskEvidence[];
  preparation?: PreparationEvidence;
}

export function baseRunResult(result: SandboxRunResult): BaseRunResult {
  return {
    failsOnBase: new Map(result.tasks.map((task) => [task.id, failsOnBaseFrom(task.outcome)] as const)),
    tasks: result.tasks,
    ...(result.preparation ? { preparation: result.preparation } : {}),
  };
}

/** A container sandbox or the lesser process sandbox. */
export interface TaskSandbox {
  readonly isolation: 'container' | 'process';
  runTasks(request: RunTasksRequest): Promise<SandboxRunResult>;
  /** Runs the given tasks on the base commit (a scratch worktree) and cleans up after. */
  runOnBase(request: BaseRunRequest): Promise<BaseRunResult>;
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
