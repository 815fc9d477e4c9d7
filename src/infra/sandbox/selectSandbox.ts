import type { Logger } from '../../core/logger';
import type { SecretPattern } from '../../core/redaction';
import type { SandboxPolicy } from '../../core/sandbox/sandboxPolicy';
import { ContainerSandbox, resolveDevcontainerCli } from './containerSandbox';
import { type ContainerEngine, detectEngine, type EngineSetting } from './engine';
import { detectProcessSandbox, ProcessSandbox } from './processSandbox';
import type { TaskSandbox } from './types';

export interface SelectSandboxOptions {
  /** `agentLanes.sandbox.containerEngine`. */
  engineSetting: EngineSetting;
  /** `agentLanes.sandbox.defaultImage`. */
  defaultImage: string;
  /** `agentLanes.sandbox.devcontainerCliPath` (empty: the development install or PATH). */
  devcontainerCliPath?: string;
  /** The extension's folder: `node_modules/.bin/devcontainer` there is used in development. */
  extensionRoot?: string;
  policy: SandboxPolicy;
  /** Private folder outside every worktree, e.g. join(RepoStorage.root, 'sandbox'). */
  stateDir: string;
  logger?: Logger;
  redactionPatterns?: readonly SecretPattern[];
  upTimeoutMs?: number;
}

export type SandboxSelection =
  | { ok: true; sandbox: TaskSandbox; engine?: ContainerEngine; containerSandbox?: ContainerSandbox; notice?: string }
  | { ok: false; message: string };

/**
 * The sandbox tasks run in: a dev container when an engine answers; else,
 * when policy allows it and bubblewrap works, the lesser process sandbox;
 * else a message saying what to install.
 */
export async function selectSandbox(options: SelectSandboxOptions): Promise<SandboxSelection> {
  const detection = await detectEngine(options.engineSetting);
  if (detection.found) {
    const cli = await resolveDevcontainerCli({ settingPath: options.devcontainerCliPath, extensionRoot: options.extensionRoot });
    if ('error' in cli) return { ok: false, message: cli.error };
    const sandbox = new ContainerSandbox({
      engine: detection.engine,
      devcontainerCli: cli.path,
      stateDir: options.stateDir,
      defaultImage: options.defaultImage,
      logger: options.logger,
      redactionPatterns: options.redactionPatterns,
      upTimeoutMs: options.upTimeoutMs,
    });
    return { ok: true, sandbox, engine: detection.engine, containerSandbox: sandbox };
  }
  if (options.policy.allowProcessSandbox !== true) {
    return { ok: false, message: `${detection.message} (Policy does not allow the lesser process sandbox.)` };
  }
  const bwrap = await detectProcessSandbox();
  if (!bwrap.available) return { ok: false, message: `${detection.message} Policy allows the process sandbox, but ${bwrap.message}` };
  return {
    ok: true,
    sandbox: new ProcessSandbox({
      bwrap: bwrap.bwrap,
      stateDir: options.stateDir,
      logger: options.logger,
      redactionPatterns: options.redactionPatterns,
    }),
    notice:
      'No container engine: tasks run in the process sandbox (bubblewrap, no network, writes only to the worktree), a lesser isolation recorded as such in the evidence.',
  };
}
