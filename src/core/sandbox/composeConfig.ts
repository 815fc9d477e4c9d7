import { posix } from 'node:path';
import type { ComposeCheck, ComposeMount } from './composeCheck';
import { parseMemory } from './devcontainerCheck';
import type { SandboxLimits } from './sandboxPolicy';

/**
 * The Compose file the sandbox actually runs: written from a checked
 * `ComposeCheck`, never copied from the repository. Every path is absolute
 * (the worktree, or copies of base-commit files in the sandbox's private
 * folder), the workspace mount is the change's worktree only, every service
 * carries the sandbox's labels and policy's limits, and its network is the
 * one the sandbox gives preparation (`none` unless policy opens one).
 */

export interface ComposeProjectOptions {
  /** The Compose project name: one per change and role. */
  project: string;
  /** The change's worktree (real path). */
  worktreePath: string;
  creationNetwork: 'none' | 'bridge' | 'host';
  limits: SandboxLimits;
  labels: Record<string, string>;
  /** Per service: the base commit's Dockerfile, copied outside the worktree. */
  dockerfiles: Record<string, string>;
  /** Per repository-relative env file: its base-commit copy outside the worktree. */
  envFiles: Record<string, string>;
}

export interface ComposeProject {
  compose: Record<string, unknown>;
  /** Images the project builds; removed with it. */
  builtImages: string[];
}

/** A name the engines accept for a project, a volume prefix and an image tag. */
export function composeProjectName(changeId: string, role: string): string {
  return `agentlanes-${changeId}-${role}`.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
}

function labelsRecord(value: unknown): Record<string, string> {
  if (Array.isArray(value))
    return Object.fromEntries(
      value.map((item) => {
        const [key = '', ...rest] = String(item).split('=');
        return [key, rest.join('=')];
      }),
    );
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
  return {};
}

function mountSpec(mount: ComposeMount, options: ComposeProjectOptions): string | Record<string, unknown> {
  const mode = 'readonly' in mount && mount.readonly ? ':ro' : '';
  switch (mount.kind) {
    case 'workspace': {
      // `../..:/workspaces` shows the repository's folder at /workspaces/<folder>: the worktree goes there, alone.
      const segments = options.worktreePath.split('/').filter(Boolean).slice(-mount.levelsUp);
      const target = mount.levelsUp === 0 ? mount.target : posix.join(mount.target, ...segments);
      return `${options.worktreePath}:${target}${mode}`;
    }
    case 'worktree':
      return `${posix.join(options.worktreePath, mount.source)}:${mount.target}${mode}`;
    case 'projectVolume':
      return `${mount.name}:${mount.target}${mode}`;
    case 'allowed':
      return { type: mount.type, source: mount.source, target: mount.target, read_only: mount.readonly };
    case 'anonymous':
      return mount.target;
    case 'tmpfs':
      return { type: 'tmpfs', target: mount.target };
  }
}

function smallerCpus(own: unknown, policy: number | undefined): unknown {
  if (policy === undefined) return own;
  const value = Number(own);
  return own === undefined || !Number.isFinite(value) || value > policy ? policy : own;
}

function smallerMemory(own: unknown, policyMb: number | undefined): unknown {
  if (policyMb === undefined) return own;
  const bytes = own === undefined ? undefined : typeof own === 'number' ? own : parseMemory(String(own));
  return bytes === undefined || bytes > policyMb * 1024 * 1024 ? `${policyMb}m` : own;
}

export function buildComposeProject(check: ComposeCheck, options: ComposeProjectOptions): ComposeProject {
  if (check.refusals.length > 0) throw new Error('buildComposeProject needs a Compose configuration without refusals');
  const services: Record<string, unknown> = {};
  const builtImages: string[] = [];
  for (const service of check.services) {
    const settings: Record<string, unknown> = { ...service.settings };
    if (service.build) {
      const image = `localhost/${options.project}-${service.name.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}:sandbox`;
      builtImages.push(image);
      settings.image = image;
      settings.build = {
        context: posix.join(options.worktreePath, service.build.context),
        dockerfile: options.dockerfiles[service.name] ?? posix.join(options.worktreePath, service.build.dockerfile),
        ...(service.build.args !== undefined ? { args: service.build.args } : {}),
        ...(service.build.target ? { target: service.build.target } : {}),
      };
    }
    if (service.mounts.length) settings.volumes = service.mounts.map((mount) => mountSpec(mount, options));
    if (service.envFiles.length) settings.env_file = service.envFiles.map((file) => options.envFiles[file] ?? file);
    settings.labels = { ...labelsRecord(settings.labels), ...options.labels };
    const network = service.hostNetwork ? 'host' : options.creationNetwork;
    if (network !== 'bridge') settings.network_mode = network;
    const cpus = smallerCpus(settings.cpus, options.limits.cpus);
    if (cpus !== undefined) settings.cpus = cpus;
    const memory = smallerMemory(settings.mem_limit, options.limits.memoryMb);
    if (memory !== undefined) settings.mem_limit = memory;
    if (options.limits.pids !== undefined)
      settings.pids_limit = Math.min(Number(settings.pids_limit ?? Infinity) || Infinity, options.limits.pids);
    services[service.name] = settings;
  }
  return {
    compose: {
      name: options.project,
      services,
      ...(check.projectVolumes.length ? { volumes: Object.fromEntries(check.projectVolumes.map((name) => [name, {}])) } : {}),
    },
    builtImages,
  };
}
