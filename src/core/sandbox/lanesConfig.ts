import { isNode, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { LaneError } from '../errors';

/**
 * `.lanes/lanes.yaml`: the tasks a repository wants run in the sandbox and
 * the commands that prepare the container. Read from the base commit, never
 * from the change's worktree.
 *
 * ```yaml
 * prepare:
 *   - npm ci
 * tasks:
 *   - id: unit
 *     command: npm test
 *     timeoutSeconds: 600
 *     test: true
 *   - id: lint
 *     command: npm run lint
 *     required: false
 * ```
 */

export const LANES_CONFIG_PATH = '.lanes/lanes.yaml';

const TaskIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'a task id is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
  );

const LanesTaskSchema = z.strictObject({
  id: TaskIdSchema,
  command: z.string().trim().min(1, 'a task needs a command').max(10_000),
  timeoutSeconds: z.number().int().positive().max(86_400).optional(),
  /** The task runs tests: it is also run on the base commit ("tests fail without the change"). */
  test: z.boolean().optional(),
  /** A failing required task blocks promotion to Review; default true. */
  required: z.boolean().optional(),
});

const LanesConfigSchema = z.strictObject({
  tasks: z
    .array(LanesTaskSchema)
    .max(100)
    .default([])
    .superRefine((tasks, ctx) => {
      const seen = new Set<string>();
      tasks.forEach((task, index) => {
        if (seen.has(task.id)) ctx.addIssue({ code: 'custom', message: `the task id "${task.id}" appears twice`, path: [index, 'id'] });
        seen.add(task.id);
      });
    }),
  prepare: z.array(z.string().trim().min(1, 'a prepare command cannot be empty').max(10_000)).max(50).default([]),
});
export type LanesConfig = z.infer<typeof LanesConfigSchema>;

export class LanesConfigError extends LaneError {
  constructor(
    message: string,
    readonly fileName: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super('lanesConfig', message);
    this.name = 'LanesConfigError';
  }
}

/** Parses `.lanes/lanes.yaml`; an empty or missing file is no tasks. Errors name the file, line and column. */
export function parseLanesConfig(text: string | undefined, fileName = LANES_CONFIG_PATH): LanesConfig {
  if (text === undefined || text.trim() === '') return { tasks: [], prepare: [] };
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const syntaxError = document.errors[0];
  if (syntaxError) {
    const position = lineCounter.linePos(syntaxError.pos[0]);
    throw new LanesConfigError(
      `${fileName} has a YAML error at line ${position.line}, column ${position.col}: ${syntaxError.message.split('\n')[0]}. Fix the file in the base commit and run the tasks again.`,
      fileName,
      position.line,
      position.col,
    );
  }
  const parsed = LanesConfigSchema.safeParse(document.toJS() ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
  // Point at the value that is wrong, or at its parent when the value is missing.
  let node: unknown;
  for (let depth = path.length; depth >= 0 && !isNode(node); depth--) node = document.getIn(path.slice(0, depth), true);
  const range = isNode(node) ? node.range : undefined;
  const position = range ? lineCounter.linePos(range[0]) : undefined;
  const where = path.length
    ? path
        .map((part) => (typeof part === 'number' ? `[${part}]` : `.${part}`))
        .join('')
        .replace(/^\./, '')
    : 'the file';
  const at = position ? ` (line ${position.line}, column ${position.col})` : '';
  throw new LanesConfigError(
    `${fileName}: ${where}${at}: ${issue.message}. Expected tasks: [{ id, command, timeoutSeconds?, test?, required? }] and prepare: [command].`,
    fileName,
    position?.line,
    position?.col,
  );
}

/** A task as policy requires it; policy's own schema maps onto this. */
export interface PolicyTask {
  id: string;
  command: string;
  timeoutSeconds?: number;
  test?: boolean;
}

export interface ResolvedTask {
  id: string;
  command: string;
  timeoutSeconds: number;
  test: boolean;
  required: boolean;
  source: 'policy' | 'repository';
}

export interface TaskMergeOptions {
  /** When a task names no timeout. */
  defaultTimeoutSeconds: number;
  /** Policy's time limit: no task runs longer, whatever it asks for. */
  maxTimeoutSeconds?: number;
}

export interface TaskMerge {
  tasks: ResolvedTask[];
  /** What the repository asked for and did not get, for the evidence and the user. */
  notes: string[];
}

/**
 * Policy's required tasks first, then the repository's. The repository can
 * add tasks, never drop or override one that policy requires: a repository
 * task with a policy task's id is ignored (and reported).
 */
export function mergeTasks(policyTasks: readonly PolicyTask[], repository: LanesConfig, options: TaskMergeOptions): TaskMerge {
  const notes: string[] = [];
  const limit = (seconds: number | undefined, id: string) => {
    const wanted = seconds ?? options.defaultTimeoutSeconds;
    if (options.maxTimeoutSeconds !== undefined && wanted > options.maxTimeoutSeconds) {
      notes.push(`task "${id}" asks for ${wanted} s; policy's limit of ${options.maxTimeoutSeconds} s applies`);
      return options.maxTimeoutSeconds;
    }
    return wanted;
  };
  const tasks: ResolvedTask[] = [];
  const policyIds = new Set<string>();
  for (const task of policyTasks) {
    if (policyIds.has(task.id)) continue;
    policyIds.add(task.id);
    tasks.push({
      id: task.id,
      command: task.command,
      timeoutSeconds: limit(task.timeoutSeconds, task.id),
      test: task.test === true,
      required: true,
      source: 'policy',
    });
  }
  for (const task of repository.tasks) {
    if (policyIds.has(task.id)) {
      const policyTask = policyTasks.find((candidate) => candidate.id === task.id)!;
      notes.push(
        `${LANES_CONFIG_PATH} task "${task.id}" is ignored: policy requires a task with this id, and policy's version runs ("${policyTask.command}")`,
      );
      continue;
    }
    tasks.push({
      id: task.id,
      command: task.command,
      timeoutSeconds: limit(task.timeoutSeconds, task.id),
      test: task.test === true,
      required: task.required !== false,
      source: 'repository',
    });
  }
  return { tasks, notes };
}
