import { stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { execa } from 'execa';
import { LaneError } from '../../core/errors';
import { configOverrides } from './configGuard';

/** Variables that would point git at another repository than the one asked for. */
const REDIRECTING_VARIABLES = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_COMMON_DIR',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

/** The environment for a child process, without the variables that redirect git. */
function environmentWithoutGitRedirects(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of REDIRECTING_VARIABLES) delete env[name];
  return { ...env, ...extra };
}

export class GitCommandError extends LaneError {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    message: string,
    cause?: unknown,
  ) {
    super('gitCommand', message, { cause });
  }
}

export interface GitOptions {
  input?: string | Buffer;
  /** Exit codes that are answers rather than failures (e.g. 1 for `diff --quiet`). */
  okExitCodes?: readonly number[];
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

export interface GitResult<T> {
  stdout: T;
  stderr: string;
  exitCode: number;
}

function describe(args: readonly string[]): string {
  return `git ${args.join(' ')}`;
}

/** The environment of a lane's git call: no redirecting variables, no prompt, C locale, and the config overrides. */
async function gitEnvironment(cwd: string, args: readonly string[], extra: GitOptions['env']): Promise<Record<string, string | undefined>> {
  const env = environmentWithoutGitRedirects({ GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...extra });
  try {
    return { ...env, ...(await configOverrides(cwd, env)).env };
  } catch (error) {
    throw new GitCommandError(args, undefined, '', `${describe(args)} did not run: ${(error as Error).message}`, error);
  }
}

async function run<T extends 'utf8' | 'buffer'>(
  cwd: string,
  args: readonly string[],
  encoding: T,
  options: GitOptions,
): Promise<GitResult<T extends 'utf8' ? string : Uint8Array>> {
  const result = await execa('git', args, {
    cwd,
    reject: false,
    encoding,
    stripFinalNewline: false,
    input: options.input,
    extendEnv: false,
    env: await gitEnvironment(cwd, args, options.env),
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: 1024 * 1024 * 1024,
  });
  const stderr = typeof result.stderr === 'string' ? result.stderr : Buffer.from(result.stderr as Uint8Array).toString('utf8');
  const exitCode = await checkExit(cwd, args, result, stderr, options.okExitCodes);
  return { stdout: result.stdout as unknown as T extends 'utf8' ? string : Uint8Array, stderr, exitCode };
}

/**
 * Runs git with text output; throws GitCommandError on an exit code not in okExitCodes.
 * No repository configuration that runs a program is honoured (see configGuard).
 */
export function git(cwd: string, args: readonly string[], options: GitOptions = {}): Promise<GitResult<string>> {
  return run(cwd, args, 'utf8', options);
}

/** Runs git with byte output (contents of blobs, which need not be UTF-8). */
export function gitBytes(cwd: string, args: readonly string[], options: GitOptions = {}): Promise<GitResult<Uint8Array>> {
  return run(cwd, args, 'buffer', options);
}

/** Throws GitCommandError when git did not run or exited with a code not in okExitCodes; else the exit code. */
async function checkExit(
  cwd: string,
  args: readonly string[],
  result: { failed: boolean; exitCode?: number | undefined; shortMessage?: string },
  stderr: string,
  okExitCodes: readonly number[] = [],
): Promise<number> {
  if (result.failed && result.exitCode === undefined) {
    // ENOENT is also what spawning in a folder that does not exist (any more) says.
    const cause =
      (result as { code?: string }).code === 'ENOENT'
        ? (await stat(cwd).then(
            () => true,
            () => false,
          ))
          ? 'git is not installed or not on PATH; install git and try again'
          : `the folder ${cwd} does not exist`
        : result.shortMessage;
    throw new GitCommandError(args, undefined, stderr, `${describe(args)} could not run: ${cause}`);
  }
  const exitCode = result.exitCode ?? 0;
  if (exitCode !== 0 && !okExitCodes.includes(exitCode)) {
    const detail = stderr.trim().split('\n').slice(-5).join(' ') || `exit code ${exitCode}`;
    throw new GitCommandError(args, exitCode, stderr, `${describe(args)} failed in ${cwd}: ${detail}`);
  }
  return exitCode;
}

/**
 * Runs git and hands its stdout to `onLine` one line at a time (split on "\n"
 * only, as UTF-8), so output of any size is read in constant memory. A final
 * piece without a newline is a line too; an empty one is not. Throws like git().
 */
export async function gitLines(
  cwd: string,
  args: readonly string[],
  onLine: (line: string) => void,
  options: Omit<GitOptions, 'input'> = {},
): Promise<{ stderr: string; exitCode: number }> {
  const child = execa('git', args, {
    cwd,
    reject: false,
    buffer: { stdout: false, stderr: true },
    stripFinalNewline: false,
    stdin: 'ignore',
    extendEnv: false,
    env: await gitEnvironment(cwd, args, options.env),
    timeout: options.timeoutMs ?? 120_000,
    maxBuffer: { stderr: 16 * 1024 * 1024 },
  });
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let failure: unknown;
  const take = (text: string) => {
    pending += text;
    let start = 0;
    let end: number;
    while ((end = pending.indexOf('\n', start)) >= 0) {
      onLine(pending.slice(start, end));
      start = end + 1;
    }
    pending = pending.slice(start);
  };
  child.stdout.on('data', (chunk: Buffer) => {
    if (failure !== undefined) return;
    try {
      take(decoder.write(chunk));
    } catch (error) {
      // The reader refused a line: stop git, report the reader's error.
      failure = error;
      child.kill();
    }
  });
  const result = await child;
  if (failure !== undefined) throw failure;
  take(decoder.end());
  if (pending) onLine(pending);
  const stderr = String(result.stderr ?? '');
  return { stderr, exitCode: await checkExit(cwd, args, result, stderr, options.okExitCodes) };
}
