import { posix } from 'node:path';
import type { DevcontainerCheck } from './devcontainerCheck';
import type { SandboxLimits } from './sandboxPolicy';

/** Labels every sandbox container carries, so it is found again and orphans are recognised. */
export const SANDBOX_LABELS = {
  change: 'dev.agentlanes.change',
  role: 'dev.agentlanes.role',
  config: 'dev.agentlanes.config',
} as const;

export type SandboxRole = 'change' | 'base';

export interface SandboxConfigOptions {
  /** The change's worktree on the host: the only host folder the container sees. */
  worktreePath: string;
  /** Used when the repository has no devcontainer.json. */
  defaultImage: string;
  /** The network the container is created with (for preparation). */
  creationNetwork: 'none' | 'bridge' | 'host';
  /** Policy's limits; the smaller of policy's and the configuration's applies. */
  limits: SandboxLimits;
  labels: Record<string, string>;
  /** For `build` configurations: the base commit's Dockerfile, written outside the worktree. */
  dockerfilePath?: string;
  /** For `build` configurations: the build context on the host. */
  buildContext?: string;
}

export interface SandboxConfig {
  /** The devcontainer.json the CLI gets through --config. */
  config: Record<string, unknown>;
  workspaceFolder: string;
  limits: { cpus?: number; memoryBytes?: number; pids?: number };
}

/** Settings the sandbox owns: the repository's values are replaced, never merged. */
const REPLACED = ['workspaceMount', 'workspaceFolder', 'runArgs', 'appPort', 'forwardPorts'];

function smaller(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/**
 * The devcontainer.json the sandbox actually uses: the checked repository
 * configuration (or a generated one around the default image), with the
 * worktree as the only workspace mount, the network policy gives preparation,
 * the smaller limits, and the sandbox's labels.
 */
export function buildSandboxConfig(check: DevcontainerCheck | undefined, options: SandboxConfigOptions): SandboxConfig {
  if (/[,"\n]/.test(options.worktreePath)) {
    throw new Error(
      `The worktree path ${options.worktreePath} contains a comma, quote or newline, which a container mount cannot name; move the extension's storage to a plain path.`,
    );
  }
  if (check && check.refusals.length > 0) throw new Error('buildSandboxConfig needs a configuration without refusals');
  const base: Record<string, unknown> = check ? { ...check.config } : { image: options.defaultImage, updateRemoteUserUID: false };
  for (const key of REPLACED) delete base[key];
  // The CLI's workspace folder is the sandbox's private configuration folder, so the worktree's folder name is put in here.
  const workspaceFolder = (check?.workspaceFolder ?? '/workspaces/${localWorkspaceFolderBasename}').replaceAll(
    '${localWorkspaceFolderBasename}',
    posix.basename(options.worktreePath),
  );

  const limits = {
    cpus: smaller(options.limits.cpus, check?.limits.cpus),
    memoryBytes: smaller(
      options.limits.memoryMb === undefined ? undefined : options.limits.memoryMb * 1024 * 1024,
      check?.limits.memoryBytes,
    ),
    pids: smaller(options.limits.pids, check?.limits.pids),
  };
  const runArgs = [...(check?.runArgs ?? [])];
  // The configuration asked for the host network and policy allowed it: nothing else applies.
  const network = check?.hostNetwork ? 'host' : options.creationNetwork;
  if (network !== 'bridge') runArgs.push(`--network=${network}`);
  if (limits.cpus !== undefined) runArgs.push(`--cpus=${limits.cpus}`);
  if (limits.memoryBytes !== undefined) runArgs.push(`--memory=${limits.memoryBytes}b`);
  if (limits.pids !== undefined) runArgs.push(`--pids-limit=${limits.pids}`);
  for (const [key, value] of Object.entries(options.labels)) runArgs.push(`--label=${key}=${value}`);

  const config: Record<string, unknown> = {
    ...base,
    workspaceMount: `type=bind,source=${options.worktreePath},target=${workspaceFolder}`,
    workspaceFolder,
    runArgs,
  };
  const build = base.build as Record<string, unknown> | undefined;
  if (build && typeof build === 'object') {
    // The checked options, one argument each, without network flags: the sandbox sets the build's network.
    const buildOptions = [...(check?.buildOptions ?? [])];
    if (network !== 'bridge') buildOptions.push(`--network=${network}`);
    config.build = {
      ...build,
      ...(options.dockerfilePath ? { dockerfile: options.dockerfilePath } : {}),
      ...(options.buildContext ? { context: options.buildContext } : {}),
      options: buildOptions,
    };
  }
  return { config, workspaceFolder, limits: Object.fromEntries(Object.entries(limits).filter(([, value]) => value !== undefined)) };
}
