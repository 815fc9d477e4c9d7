import type { ResolvedPolicy } from '../policy/schema';
import type { DevcontainerAllowances } from './devcontainerCheck';
import type { PolicyTask } from './lanesConfig';

/**
 * What policy decides about a sandbox. The policy schema (another module)
 * maps its merged, effective policy onto this plain object; absent fields
 * take the strict default.
 */
export interface SandboxPolicy {
  /** Network while tasks run. Default none. */
  taskNetwork?: 'none' | 'open';
  /**
   * Network while the container is built and prepared (image pull or build,
   * features, postCreateCommand, `prepare:` commands). Default none.
   * `registries` opens the network for preparation and records the named
   * registries; the engine cannot limit a container to some hosts, so the
   * evidence says the network was open.
   */
  preparationNetwork?: 'none' | 'registries' | 'open';
  /** The registries policy names for `preparationNetwork: registries`. */
  preparationRegistries?: string[];
  limits?: SandboxLimits;
  /** The devcontainer.json settings that policy lets widen the sandbox. */
  devcontainer?: DevcontainerAllowances;
  /** Whether the lesser process sandbox (bubblewrap) may run tasks when there is no container engine. Default false. */
  allowProcessSandbox?: boolean;
  /** Time limit for preparation (postCreateCommand and `prepare:` together). Default 900 s. */
  preparationTimeoutSeconds?: number;
}

export interface SandboxLimits {
  cpus?: number;
  memoryMb?: number;
  pids?: number;
}

export const DEFAULT_PREPARATION_TIMEOUT_SECONDS = 900;

/** What the preparation could reach, for the evidence. */
export function preparationReach(policy: SandboxPolicy): { networkMode: string; reachable: string[] } {
  switch (policy.preparationNetwork ?? 'none') {
    case 'open':
      return { networkMode: 'bridge', reachable: ['any host'] };
    case 'registries': {
      const named = policy.preparationRegistries ?? [];
      return {
        networkMode: 'bridge',
        reachable: [`any host (policy names ${named.length ? named.join(', ') : 'no registry'}; not enforced per host)`],
      };
    }
    default:
      return { networkMode: 'none', reachable: [] };
  }
}

/** What the sandbox and the task merge take from the effective (merged) policy. */
export interface SandboxPolicyView {
  policy: SandboxPolicy;
  requiredTasks: PolicyTask[];
  /** Policy's time limit per task, if any: the cap in mergeTasks. */
  maxTimeoutSeconds?: number;
}

/**
 * Maps the effective policy's `lanes.sandbox` section onto the sandbox's
 * plain objects. Policy has no setting for initializeCommand, so it stays
 * refused.
 */
export function sandboxPolicyFrom(sandbox: ResolvedPolicy['lanes']['sandbox']): SandboxPolicyView {
  const preparation = sandbox.network.preparation;
  const policy: SandboxPolicy = {
    taskNetwork: sandbox.network.tasks,
    preparationNetwork: typeof preparation === 'string' ? preparation : 'registries',
    ...(typeof preparation === 'object' ? { preparationRegistries: [...preparation.registries] } : {}),
    limits: {
      ...(sandbox.limits.cpus !== undefined ? { cpus: sandbox.limits.cpus } : {}),
      ...(sandbox.limits.memoryMb !== undefined ? { memoryMb: sandbox.limits.memoryMb } : {}),
      ...(sandbox.limits.pids !== undefined ? { pids: sandbox.limits.pids } : {}),
    },
    devcontainer: {
      allowPrivileged: sandbox.devcontainer.allowPrivileged,
      allowHostNetwork: sandbox.devcontainer.allowHostNetwork,
      allowMounts: [...sandbox.devcontainer.allowedMounts],
      allowCapAdd: [...sandbox.devcontainer.allowedCapabilities],
      allowFeatures: [...sandbox.devcontainer.allowedFeatures],
    },
    allowProcessSandbox: sandbox.processSandbox === 'allowed',
  };
  return {
    policy,
    requiredTasks: sandbox.requiredTasks.map((task) => ({
      id: task.id,
      command: task.command,
      ...(task.timeoutSeconds ? { timeoutSeconds: task.timeoutSeconds } : {}),
    })),
    ...(sandbox.limits.timeoutSeconds !== undefined ? { maxTimeoutSeconds: sandbox.limits.timeoutSeconds } : {}),
  };
}
