import { execa } from 'execa';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { LaneError } from '../../core/errors';

/**
 * The container engine that runs sandboxes, from the setting
 * `agentLanes.sandbox.containerEngine` (auto | docker | podman).
 */

export type EngineSetting = 'auto' | 'docker' | 'podman';
type EngineKind = 'docker' | 'podman';

export interface ContainerEngine {
  kind: EngineKind;
  /** Absolute path of the CLI, given to the dev containers CLI as --docker-path. */
  path: string;
  version: string;
}

export type EngineDetection = { found: true; engine: ContainerEngine } | { found: false; message: string; tried: string[] };

export const DEFAULT_ENGINE_TIMEOUT_MS = 30_000;
const DEFAULT_INFO_TIMEOUT_MS = 10_000;

const NO_ENGINE_HELP =
  'Install a container engine: on Debian or Ubuntu `sudo apt-get install -y podman` (rootless podman works; on hosts with cgroups v1 also `apt-get install runc` and set runtime = "runc" in /etc/containers/containers.conf), ' +
  'or Docker Engine / Docker Desktop (https://docs.docker.com/engine/install/). Then run the tasks again, or set agentLanes.sandbox.containerEngine to the one you installed.';

/** Finds an executable on PATH the way a shell would; undefined when there is none. */
export async function findOnPath(name: string, pathVariable = process.env.PATH ?? ''): Promise<string | undefined> {
  if (isAbsolute(name) || name.includes('/')) {
    return (await isExecutable(resolve(name))) ? resolve(name) : undefined;
  }
  for (const folder of pathVariable.split(delimiter)) {
    if (!folder) continue;
    const candidate = join(folder, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Asks an engine CLI for `info`; a daemon that does not answer in time counts as absent. */
async function probe(
  kind: EngineKind,
  path: string,
  timeoutMs: number,
): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  const result = await execa(path, ['info', '--format', '{{json .}}'], {
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: 2_000,
    stdin: 'ignore',
  });
  if (result.timedOut)
    return {
      ok: false,
      reason: `${path} info did not answer within ${Math.round(timeoutMs / 1000)} s (is the ${kind === 'docker' ? 'Docker daemon' : 'podman service'} stuck?)`,
    };
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout || result.shortMessage || '').trim().split('\n').slice(-3).join(' ');
    return { ok: false, reason: `${path} info failed: ${detail}` };
  }
  let version = 'unknown';
  try {
    const info = JSON.parse(result.stdout) as { ServerVersion?: string; version?: { Version?: string } };
    version = info.ServerVersion ?? info.version?.Version ?? version;
  } catch {
    // An engine whose info is not JSON still answered; the version is only informative.
    version = 'unknown';
  }
  return { ok: true, version };
}

/**
 * Finds the engine the setting asks for. `auto` tries docker, then podman,
 * and takes the first that is on PATH and answers `info` within the timeout.
 */
export async function detectEngine(
  setting: EngineSetting = 'auto',
  options: { infoTimeoutMs?: number; pathVariable?: string } = {},
): Promise<EngineDetection> {
  const timeoutMs = options.infoTimeoutMs ?? DEFAULT_INFO_TIMEOUT_MS;
  const candidates: EngineKind[] = setting === 'auto' ? ['docker', 'podman'] : [setting];
  const tried: string[] = [];
  for (const kind of candidates) {
    const path = await findOnPath(kind, options.pathVariable);
    if (!path) {
      tried.push(`${kind}: not on PATH`);
      continue;
    }
    const answer = await probe(kind, path, timeoutMs);
    if (answer.ok) return { found: true, engine: { kind, path, version: answer.version } };
    tried.push(`${kind}: ${answer.reason}`);
  }
  const asked =
    setting === 'auto'
      ? 'No container engine was found'
      : `The container engine "${setting}" (agentLanes.sandbox.containerEngine) is not usable`;
  return { found: false, tried, message: `${asked} (${tried.join('; ')}). ${NO_ENGINE_HELP}` };
}

/** A container engine command that failed, timed out or was cancelled; the message carries the engine's own words. */
export class EngineError extends LaneError {
  constructor(
    message: string,
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super('engine', message);
  }
}

export interface EngineRunOptions {
  timeoutMs?: number | undefined;
  /** Exit codes that are answers, not failures. */
  okExitCodes?: readonly number[] | undefined;
  signal?: AbortSignal | undefined;
}

/** Runs one engine command with a timeout; throws EngineError with the engine's own words on failure. */
export async function runEngine(
  engine: ContainerEngine,
  args: readonly string[],
  options: EngineRunOptions = {},
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_ENGINE_TIMEOUT_MS;
  const result = await execa(engine.path, args, {
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: 2_000,
    stdin: 'ignore',
    cancelSignal: options.signal,
    maxBuffer: 64 * 1024 * 1024,
  });
  const command = `${engine.kind} ${args.slice(0, 3).join(' ')}`;
  if (result.timedOut)
    throw new EngineError(
      `${command} did not finish within ${Math.round(timeoutMs / 1000)} s; check that ${engine.kind} is responsive (${engine.kind} info).`,
      args,
      undefined,
      result.stderr,
    );
  if (result.isCanceled) throw new EngineError(`${command} was cancelled.`, args, undefined, result.stderr);
  const exitCode = result.exitCode ?? -1;
  if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
    const detail = (result.stderr || result.stdout || result.shortMessage || '').trim().split('\n').slice(-3).join(' ');
    throw new EngineError(`${command} failed: ${detail}`, args, exitCode, result.stderr);
  }
  return { stdout: result.stdout, stderr: result.stderr, exitCode };
}

/** True when the engine's error says the container is gone. */
export function isNoSuchContainer(text: string): boolean {
  return /no such container|no container with name or id|No such object/i.test(text);
}
