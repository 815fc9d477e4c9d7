import { DEFAULT_TASK_TIMEOUT_SECONDS } from '../../core/constants';
import { randomBytes } from 'node:crypto';
import { mkdir, realpath, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import type { PreparationEvidence, TaskEvidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { BUILTIN_SECRET_PATTERNS, type SecretPattern } from '../../core/redaction';
import {
  checkDevcontainer,
  checkImageMetadata,
  describeRefusals,
  isCapabilityAllowed,
  type DevcontainerAllowances,
  type DevcontainerCheck,
} from '../../core/sandbox/devcontainerCheck';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import { isEngineSocket, isMountSourceAllowed } from '../../core/sandbox/mountCheck';
import { buildSandboxConfig, SANDBOX_LABELS, type SandboxRole } from '../../core/sandbox/sandboxConfig';
import { DEFAULT_PREPARATION_TIMEOUT_SECONDS, type SandboxPolicy } from '../../core/sandbox/sandboxPolicy';
import { CappedLog, LineRedactor } from '../../core/sandbox/taskLog';
import { readFileIfExists, writeFileAtomic } from '../storage/fileStore';
import { type ContainerEngine, DEFAULT_ENGINE_TIMEOUT_MS, EngineError, findOnPath, isNoSuchContainer, runEngine } from './engine';
import { capture, logFileFor, sha256, storeLog, taskEvidence, type TaskRunOptions } from './taskRun';
import { type BaseRunner, runTasksOnBase, startTasksOnBase } from './baseWorktree';
import { checkComposeSource, composeContainerIds, removeComposeLeftovers, writeComposeProject, type ComposeFiles } from './composeSandbox';
import type { ComposeCheck } from '../../core/sandbox/composeCheck';
import { composeProjectName } from '../../core/sandbox/composeConfig';
import {
  type BaseRunRequest,
  type BaseRunResult,
  type PreparedSandbox,
  type PrepareRequest,
  SandboxError,
  type TaskSandbox,
} from './types';

/**
 * One dev container per change, created with @devcontainers/cli and found
 * again by label. Design:
 *
 * - The configuration comes from the base commit (given as text) and is
 *   written to a private file outside the worktree (`--config`); the
 *   worktree is the only workspace mount.
 * - Nothing of the repository runs before the created container has been
 *   checked: the configuration (with its features' metadata) is checked
 *   before `devcontainer up`, which creates the container with
 *   `--skip-post-create`; the container is inspected, and only when it is
 *   what the sandbox allows do the lifecycle commands (onCreateCommand ...
 *   postStartCommand, as merged into the container's `devcontainer.metadata`
 *   label: image, features, configuration) and then the `prepare:` commands
 *   run with `exec`.
 * - The container is created with the network policy allows for
 *   preparation; after preparation every network is disconnected
 *   (`<engine> network disconnect`), so tasks run with none. Preparation
 *   happens once per container.
 * - Tasks run with `<engine> exec` directly (the dev containers CLI's start-up
 *   costs a second per call). Each task records its pid in the container so
 *   a timeout or a cancel kills its process group there, not only the local
 *   client.
 * - Git: tasks do not get a working git. A worktree's `.git` file points at
 *   the host's repository (devcontainers/cli#796), which is not mounted:
 *   mounting it would hand the user's whole repository to the sandbox.
 */

const DEFAULT_UP_TIMEOUT_MS = 10 * 60_000;

export interface ContainerSandboxOptions {
  engine: ContainerEngine;
  /** The dev containers CLI (see resolveDevcontainerCli). */
  devcontainerCli: string;
  /** A private folder outside every worktree: generated configurations, container state, base-commit worktrees. */
  stateDir: string;
  /** `agentLanes.sandbox.defaultImage`: used when the repository has no devcontainer.json. */
  defaultImage: string;
  logger?: Logger | undefined;
  /** `devcontainer up` can hang (devcontainers/cli#1236); it is killed after this long. */
  upTimeoutMs?: number | undefined;
  /** Every other engine call. */
  engineTimeoutMs?: number | undefined;
  redactionPatterns?: readonly SecretPattern[] | undefined;
}

/** A running, prepared sandbox container. */
export interface SandboxHandle {
  changeId: string;
  role: SandboxRole;
  containerId: string;
  image: string;
  imageId: string;
  /** The network tasks run with: none unless policy allows one. */
  networkMode: string;
  workspaceFolder: string;
  remoteUser: string;
  remoteEnv: Record<string, string>;
  preparation: PreparationEvidence;
  /** False when this call created the container. */
  reused: boolean;
}

export interface SandboxContainer {
  id: string;
  changeId: string;
  role: string;
  state: string;
  image: string;
  createdAt: string;
  name: string;
}

const StateSchema = z.object({
  containerId: z.string(),
  configHash: z.string(),
  image: z.string(),
  imageId: z.string(),
  networkMode: z.string(),
  workspaceFolder: z.string(),
  remoteUser: z.string(),
  remoteEnv: z.record(z.string(), z.string()),
  worktreePath: z.string(),
  /** An image the dev containers CLI built for this container (a `build` configuration): removed with it. */
  builtImage: z.string().optional(),
  /** A Compose dev container: its project (containers, networks, volumes) and the images it built, removed with it. */
  compose: z.object({ project: z.string(), builtImages: z.array(z.string()) }).optional(),
  preparation: z.any(),
});
type SandboxState = z.infer<typeof StateSchema> & { preparation: PreparationEvidence };

const InspectSchema = z.array(
  z.looseObject({
    Id: z.string(),
    Created: z.string(),
    Image: z.string(),
    Name: z.string().optional(),
    Config: z.looseObject({ Image: z.string().optional(), Labels: z.record(z.string(), z.string()).nullish() }).optional(),
    State: z.looseObject({ Status: z.string(), Running: z.boolean().optional() }),
    HostConfig: z.looseObject({
      Privileged: z.boolean().optional(),
      CapAdd: z.array(z.string()).nullish(),
      NetworkMode: z.string().optional(),
      PidMode: z.string().optional(),
      IpcMode: z.string().optional(),
      UTSMode: z.string().optional(),
      UsernsMode: z.string().optional(),
      CgroupnsMode: z.string().nullish(),
      Devices: z.array(z.unknown()).nullish(),
      SecurityOpt: z.array(z.string()).nullish(),
    }),
    Mounts: z
      .array(
        z.looseObject({ Type: z.string(), Source: z.string().optional(), Destination: z.string().optional(), Name: z.string().optional() }),
      )
      .nullish(),
    NetworkSettings: z.looseObject({ Networks: z.record(z.string(), z.unknown()).nullish() }).nullish(),
  }),
);
type ContainerInfo = z.infer<typeof InspectSchema>[number];

const UpResultSchema = z.looseObject({
  outcome: z.string(),
  containerId: z.string().optional(),
  remoteUser: z.string().optional(),
  remoteWorkspaceFolder: z.string().optional(),
  message: z.string().optional(),
  description: z.string().optional(),
});

/** The network a container has now; a bridge container whose networks were all disconnected has none. */
function effectiveNetworkMode(info: ContainerInfo): string {
  const mode = info.HostConfig.NetworkMode ?? '';
  if (mode === 'none' || mode === 'host' || mode.startsWith('container:') || mode.startsWith('slirp4netns') || mode.startsWith('pasta'))
    return mode;
  const networks = Object.keys(info.NetworkSettings?.Networks ?? {});
  return networks.length === 0 ? 'none' : networks.join(',');
}

/**
 * Checks the container the CLI actually created: images, features and
 * image metadata can ask for privileges that devcontainer.json does not show.
 */
function containerWidenings(info: ContainerInfo, worktreeReal: string, allow: DevcontainerAllowances): string[] {
  const problems: string[] = [];
  const host = info.HostConfig;
  if (host.Privileged && !allow.allowPrivileged) problems.push('it runs privileged');
  for (const cap of host.CapAdd ?? []) if (!isCapabilityAllowed(cap, allow)) problems.push(`it adds the capability ${cap}`);
  if (host.NetworkMode === 'host' && !allow.allowHostNetwork) problems.push("it shares the host's network");
  for (const [name, mode] of [
    ['pid', host.PidMode],
    ['ipc', host.IpcMode],
    ['uts', host.UTSMode],
    ['user', host.UsernsMode],
    ['cgroup', host.CgroupnsMode ?? undefined],
  ] as const) {
    if (mode === 'host') problems.push(`it shares the host's ${name} namespace`);
  }
  if ((host.Devices ?? []).length > 0) problems.push('it has host devices');
  // The dev containers CLI itself adds label=disable for podman, so that the workspace bind mount is readable under SELinux.
  for (const option of host.SecurityOpt ?? [])
    if (!/^(?:label[=:]disable|no-new-privileges(?:[:=]true)?)$/.test(option)) problems.push(`it has the security option ${option}`);
  for (const mount of info.Mounts ?? []) {
    const source = mount.Source ?? '';
    if (mount.Type === 'bind') {
      if (source !== worktreeReal && !isMountSourceAllowed(source, allow))
        problems.push(
          `it mounts ${isEngineSocket(source) ? "the engine's socket " : ''}${source} from the host at ${mount.Destination ?? '?'}`,
        );
    } else if (mount.Type === 'volume') {
      const anonymous = /^[0-9a-f]{64}$/.test(mount.Name ?? '');
      if (!anonymous && !isMountSourceAllowed(mount.Name ?? '', allow)) problems.push(`it mounts the named volume ${mount.Name ?? '?'}`);
    } else if (mount.Type !== 'tmpfs') {
      problems.push(`it has a ${mount.Type} mount at ${mount.Destination ?? '?'}`);
    }
  }
  return problems;
}

function lifecycleCommands(config: Record<string, unknown>): string[] {
  const commands: string[] = [];
  for (const key of ['onCreateCommand', 'updateContentCommand', 'postCreateCommand', 'postStartCommand']) {
    const value = config[key];
    if (value === undefined) continue;
    if (typeof value === 'string') commands.push(`${key}: ${value}`);
    else if (Array.isArray(value)) commands.push(`${key}: ${value.join(' ')}`);
    else if (typeof value === 'object' && value !== null) {
      for (const [name, command] of Object.entries(value))
        commands.push(`${key}.${name}: ${Array.isArray(command) ? command.join(' ') : String(command)}`);
    }
  }
  return commands;
}

function literalRemoteEnv(config: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  const remoteEnv = config.remoteEnv;
  if (typeof remoteEnv !== 'object' || remoteEnv === null) return env;
  // Values with ${...} need the CLI's substitution; tasks run with the container's own environment for those.
  for (const [name, value] of Object.entries(remoteEnv)) if (typeof value === 'string' && !value.includes('${')) env[name] = value;
  return env;
}

const TASK_WRAPPER = 'echo $$ > "$1" 2>/dev/null; shift; exec /bin/sh -c "$1"';
const KILL_SCRIPT =
  'p=$(cat "$1" 2>/dev/null) || exit 0; [ -n "$p" ] && { kill -9 -"$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; }; rm -f "$1"';

export class ContainerSandbox implements TaskSandbox {
  readonly isolation = 'container' as const;
  private readonly engineTimeoutMs: number;
  private readonly upTimeoutMs: number;
  private readonly patterns: readonly SecretPattern[];
  /** Runs for the same change and role wait for each other: one container, one preparation. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * What an image's labels and user said when read, by image name, with the
   * image's ID: a direct start from the same name need not read them again
   * (one engine call less), and the created container's image ID tells
   * whether the name still points at that image (checkedImage).
   */
  private readonly imageConfigs = new Map<string, { id: string; config: ImageConfig }>();

  constructor(private readonly options: ContainerSandboxOptions) {
    this.engineTimeoutMs = options.engineTimeoutMs ?? DEFAULT_ENGINE_TIMEOUT_MS;
    this.upTimeoutMs = options.upTimeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
    this.patterns = options.redactionPatterns ?? BUILTIN_SECRET_PATTERNS;
  }

  get engine(): ContainerEngine {
    return this.options.engine;
  }

  private engineCall(
    args: readonly string[],
    extra: { okExitCodes?: number[] | undefined; timeoutMs?: number | undefined; signal?: AbortSignal | undefined } = {},
  ) {
    return runEngine(this.options.engine, args, { timeoutMs: this.engineTimeoutMs, ...extra });
  }

  private stateFile(changeId: string, role: SandboxRole): string {
    return join(this.options.stateDir, 'containers', `${changeId}-${role}.json`);
  }

  private configDir(changeId: string, role: SandboxRole): string {
    return join(this.options.stateDir, 'configs', `${changeId}-${role}`);
  }

  private async readState(changeId: string, role: SandboxRole): Promise<SandboxState | undefined> {
    const text = await readFileIfExists(this.stateFile(changeId, role));
    if (!text) return undefined;
    try {
      return StateSchema.parse(JSON.parse(text)) as SandboxState;
    } catch (error) {
      this.options.logger?.warn(`sandbox: ignoring unreadable state ${this.stateFile(changeId, role)}: ${String(error)}`);
      return undefined;
    }
  }

  private async inspect(containerId: string): Promise<ContainerInfo | undefined> {
    const result = await this.engineCall(['container', 'inspect', containerId], { okExitCodes: [1, 125] });
    if (result.exitCode !== 0) {
      if (isNoSuchContainer(result.stderr) || result.stdout.trim() === '[]') return undefined;
      throw new EngineError(
        `${this.options.engine.kind} container inspect failed: ${result.stderr.trim()}`,
        ['inspect'],
        result.exitCode,
        result.stderr,
      );
    }
    return InspectSchema.parse(JSON.parse(result.stdout))[0];
  }

  /** Finds the change's container (or creates and prepares it) and checks it is what the sandbox allows. */
  async ensure(request: PrepareRequest): Promise<SandboxHandle> {
    const role = request.role ?? 'change';
    const worktreeReal = await realWorktree(request);
    const { check, compose } = await checkSource(request);
    const plan = await this.planContainer(request, role, check, worktreeReal, compose);
    const state = await this.readState(request.changeId, role);
    if (state && state.configHash === plan.configHash && state.worktreePath === worktreeReal) {
      const reused = await this.reuse(state, worktreeReal, plan.allow, request);
      if (reused) return reused;
    } else if (state) {
      this.options.logger?.info(`sandbox: the configuration for ${request.changeId} changed; recreating its container`);
      await this.removeContainers(request.changeId, role);
    }
    return this.create(plan);
  }

  /** Step: the generated devcontainer configuration (and a `build` configuration's Dockerfile from the base commit). */
  private async planContainer(
    request: PrepareRequest,
    role: SandboxRole,
    check: DevcontainerCheck | undefined,
    worktreeReal: string,
    compose?: ComposeCheck,
  ): Promise<ContainerPlan> {
    const { policy } = request;
    const allow = policy.devcontainer ?? {};
    const preparationNetwork = policy.preparationNetwork ?? 'none';
    const taskNetwork = policy.taskNetwork ?? 'none';
    const creationNetwork = check?.hostNetwork ? 'host' : preparationNetwork !== 'none' || taskNetwork !== 'none' ? 'bridge' : 'none';
    const dockerfile = compose ? undefined : await this.writeBaseDockerfile(request, role, check, worktreeReal);
    const sandboxConfig = buildSandboxConfig(check, {
      worktreePath: worktreeReal,
      defaultImage: this.options.defaultImage,
      creationNetwork,
      limits: policy.limits ?? {},
      labels: {},
      ...(dockerfile ?? {}),
    });
    const configHash = sha256(
      JSON.stringify({ config: sandboxConfig.config, prepare: request.source.prepare, preparationNetwork, taskNetwork, allow, compose }),
    );
    sandboxConfig.config.runArgs = [
      ...(sandboxConfig.config.runArgs as string[]),
      `--label=${SANDBOX_LABELS.config}=${configHash.slice(7, 23)}`,
    ];
    let composeFiles: ComposeFiles | undefined;
    if (compose) {
      // The CLI takes a Compose configuration's mounts, network and limits from the Compose file: the sandbox writes its own.
      composeFiles = await writeComposeProject({
        dir: join(this.configDir(request.changeId, role), 'compose'),
        changeId: request.changeId,
        role,
        compose,
        source: request.source,
        worktreeReal,
        engine: this.options.engine,
        creationNetwork,
        limits: policy.limits ?? {},
        labels: {
          [SANDBOX_LABELS.change]: request.changeId,
          [SANDBOX_LABELS.role]: role,
          [SANDBOX_LABELS.config]: configHash.slice(7, 23),
        },
      });
      for (const key of ['workspaceMount', 'runArgs', 'build', 'image']) delete sandboxConfig.config[key];
      sandboxConfig.config.dockerComposeFile = composeFiles.composeFile;
    }
    return {
      request,
      role,
      check,
      allow,
      config: sandboxConfig.config,
      workspaceFolder: sandboxConfig.workspaceFolder,
      configHash,
      worktreeReal,
      creationNetwork,
      ...(composeFiles ? { compose: composeFiles } : {}),
      ...(compose
        ? {
            composeImages: compose.services
              .filter((service) => !service.build && typeof service.settings.image === 'string')
              .map((service) => service.settings.image as string),
          }
        : {}),
    };
  }

  /** Step: a `build` configuration builds from the base commit's Dockerfile, copied to the private config folder. */
  private async writeBaseDockerfile(
    request: PrepareRequest,
    role: SandboxRole,
    check: DevcontainerCheck | undefined,
    worktreeReal: string,
  ): Promise<{ dockerfilePath: string; buildContext: string } | undefined> {
    const build = check?.config.build as { dockerfile?: unknown; context?: unknown } | undefined;
    const devcontainer = request.source.devcontainer;
    if (!check || !devcontainer || !build || typeof build !== 'object') return undefined;
    const configFolder = posix.dirname(devcontainer.path);
    const dockerfile = typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile';
    const dockerfileRepoPath = posix.normalize(posix.join(configFolder, dockerfile));
    const text = request.source.readBaseFile ? await request.source.readBaseFile(dockerfileRepoPath) : undefined;
    if (text === undefined) {
      throw new SandboxError(
        'refused',
        `${check.fileName} builds from ${dockerfileRepoPath}, which could not be read from the base commit. Commit the Dockerfile, or use "image".`,
      );
    }
    const configDir = this.configDir(request.changeId, role);
    const dockerfilePath = join(configDir, 'Dockerfile');
    await mkdir(configDir, { recursive: true });
    await writeFile(dockerfilePath, text, { mode: 0o600 });
    return { dockerfilePath, buildContext: await buildContextInside(worktreeReal, configFolder, build.context, check.fileName) };
  }

  private async reuse(
    state: SandboxState,
    worktreeReal: string,
    allow: DevcontainerAllowances,
    request: PrepareRequest,
  ): Promise<SandboxHandle | undefined> {
    let info = await this.inspect(state.containerId);
    if (!info) {
      this.options.logger?.info(`sandbox: container ${state.containerId.slice(0, 12)} of ${request.changeId} is gone; creating a new one`);
      return undefined;
    }
    if (!info.State.Running) {
      await this.engineCall(['start', state.containerId], { signal: request.signal });
      info = await this.inspect(state.containerId);
      if (!info) return undefined;
    }
    const problems = state.compose
      ? await this.reuseComposeProject(state.compose.project, state.networkMode, worktreeReal, allow, request.signal)
      : containerWidenings(info, worktreeReal, allow);
    const networkMode = effectiveNetworkMode(info);
    if (problems.length > 0 || networkMode !== state.networkMode) {
      this.options.logger?.warn(
        `sandbox: container ${state.containerId.slice(0, 12)} no longer matches its sandbox (${[...problems, `network ${networkMode}`].join('; ')}); recreating it`,
      );
      await this.removeContainers(request.changeId, request.role ?? 'change');
      return undefined;
    }
    return {
      changeId: request.changeId,
      role: request.role ?? 'change',
      containerId: state.containerId,
      image: state.image,
      imageId: info.Image,
      networkMode,
      workspaceFolder: state.workspaceFolder,
      remoteUser: state.remoteUser,
      remoteEnv: state.remoteEnv,
      preparation: state.preparation,
      reused: true,
    };
  }

  /** Creates the container with `devcontainer up`, checks what was created, prepares it and switches its network off. */
  private async create(plan: ContainerPlan): Promise<SandboxHandle> {
    const { request, role, check, config } = plan;
    const reach =
      plan.creationNetwork === 'none'
        ? { networkMode: 'none', reachable: [] as string[] }
        : preparationReachFor(request.policy, plan.creationNetwork);
    const log = new PreparationLog(logFileFor(request.logDir, request.changeId, `${role}-prepare`), this.patterns, request.onOutput, {
      commands: [...lifecycleCommands(config), ...request.source.prepare],
      ...reach,
      notes: [
        ...(check?.notes ?? []),
        ...(check?.allowed ?? []).map((item) => `allowed by policy (${item.allowedBy}): ${item.where}: ${item.reason}`),
      ],
    });
    await this.checkImagePresent(plan, log);
    // An image read before in this session, that starts directly, is not read again: its ID is compared below.
    const known = typeof config.image === 'string' ? this.imageConfigs.get(config.image) : undefined;
    const reused = known && directStart(plan, known.config) ? known : undefined;
    if (reused) await this.refuseByMetadata(plan, reused.config, log);
    const imageConfig = reused?.config ?? (await this.checkImageLabel(plan, log));
    const direct = directStart(plan, imageConfig);
    const up = direct
      ? await this.runDirect(plan, direct, log).catch((error: unknown) => {
          if (!reused || request.signal?.aborted) throw error;
          // The image may be gone since it was read: read again, so that a missing image says so.
          this.imageConfigs.delete(String(config.image));
          return undefined;
        })
      : await this.up(plan, await this.writeConfig(plan), log);
    if (!up) return this.create(plan);
    const info = await this.inspectCreated(plan, up.containerId, log);
    if (info !== 'stale' && reused && info.Image !== reused.id) {
      // The name points at another image since it was read: its labels are read (and checked) before anything else
      // runs in it, as for an image read now. Only the sandbox's own keep-alive ran, with its network and mounts.
      this.options.logger?.info(`sandbox: the image ${String(config.image)} changed since it was read; reading it again`);
      this.imageConfigs.delete(String(config.image));
      await this.removeContainers(request.changeId, role);
      return this.create(plan);
    }
    if (info === 'stale') {
      // A container of this change from before (its state file lost): how far it was prepared is unknown, so start afresh.
      this.options.logger?.info(
        `sandbox: found an earlier container ${up.containerId.slice(0, 12)} for ${request.changeId} without state; recreating it`,
      );
      await this.removeContainers(request.changeId, role);
      return this.create(plan);
    }
    const image = typeof config.image === 'string' ? config.image : `(built from ${check?.fileName ?? 'devcontainer.json'})`;
    // A build configuration, or an image with features: the CLI built an image for this container. A Compose project's images are removed with the project (composeSandbox.ts).
    const builtImage = (typeof config.image === 'string' && !check?.features.length) || plan.compose ? undefined : info.Config?.Image;
    const handle: SandboxHandle = {
      changeId: request.changeId,
      role,
      containerId: up.containerId,
      image: plan.compose ? (info.Config?.Image ?? info.Image) : (builtImage ?? image),
      imageId: info.Image,
      networkMode: effectiveNetworkMode(info),
      workspaceFolder: up.remoteWorkspaceFolder ?? plan.workspaceFolder,
      remoteUser: up.remoteUser ?? 'root',
      remoteEnv: literalRemoteEnv(config),
      preparation: undefined as unknown as PreparationEvidence,
      reused: false,
    };
    await this.runLifecycleCommands(plan, handle, info, log);
    await this.runPrepareCommands(plan, handle, log);
    await this.switchNetworkOff(plan, handle, info, log);
    handle.preparation = await log.finish('passed');
    await this.saveState(plan, handle, image, builtImage);
    return handle;
  }

  /**
   * Step: the configuration goes to a private folder outside the worktree,
   * as `<folder>/.devcontainer/devcontainer.json` with its local features
   * from the base commit beside it: the CLI reads local features only from
   * the `.devcontainer` folder of its workspace folder, which is this private
   * folder (`--workspace-folder`), never the agent-writable worktree (the
   * worktree is mounted by the configuration's own `workspaceMount`).
   */
  private async writeConfig(plan: ContainerPlan): Promise<{ configFile: string; workspaceFolder: string }> {
    const workspaceFolder = this.configDir(plan.request.changeId, plan.role);
    const configFolder = join(workspaceFolder, '.devcontainer');
    const configFile = join(configFolder, 'devcontainer.json');
    await mkdir(configFolder, { recursive: true });
    await writeFile(configFile, JSON.stringify(plan.config, null, 2), { mode: 0o600 });
    await copyLocalFeatures(plan, configFolder);
    return { configFile, workspaceFolder };
  }

  /** Step: with no preparation network the engine must not pull either: the image has to be here already. */
  private async checkImagePresent({ request, composeImages }: ContainerPlan, log: PreparationLog): Promise<void> {
    if ((request.policy.preparationNetwork ?? 'none') !== 'none') return;
    // The configuration's own image is read once, with its labels (checkImageLabel).
    for (const image of composeImages ?? []) {
      const exists = await this.engineCall(['image', 'inspect', '--format', '{{.Id}}', image], { okExitCodes: [1, 125] });
      if (exists.exitCode === 0) continue;
      await this.imageMissing(image, composeImages !== undefined, log);
    }
  }

  /** With no preparation network the engine must not pull: an image that is not here stops the run. */
  private async imageMissing(image: string, compose: boolean, log: PreparationLog): Promise<never> {
    throw new SandboxError(
      'imageMissing',
      `The image ${image} does not exist on this machine, and policy allows no network for preparation, so it cannot be pulled. ` +
        `Build or pull it first (${this.options.engine.kind} pull ${image}; for the sample image run scripts/build-sandbox-image.sh), ` +
        `or set "image" in the devcontainer.json${compose ? ' or the Compose file' : ''} / agentLanes.sandbox.defaultImage to an image that exists.`,
      await log.finish('failed', `image ${image} not found`),
    );
  }

  /**
   * Step: an `image` configuration's image may ask, in its
   * `devcontainer.metadata` label, for what the file does not show (and an
   * entrypoint there runs as the container starts), so the label is checked
   * before the container is created. An image that is not here yet (a
   * preparation network pulls it) and a built image are checked on the
   * created container, before anything else runs in it. What was read is kept
   * by name for later direct starts (see create).
   */
  private async checkImageLabel(plan: ContainerPlan, log: PreparationLog): Promise<ImageConfig | undefined> {
    const { config, request } = plan;
    if (typeof config.image !== 'string') return undefined;
    const read = await this.engineCall(
      ['image', 'inspect', '--format', '{{.Id}}\t{{json .Config.Labels}}\t{{json .Config.User}}', config.image],
      { okExitCodes: [1, 125] },
    );
    if (read.exitCode !== 0) {
      if ((request.policy.preparationNetwork ?? 'none') === 'none') await this.imageMissing(config.image, false, log);
      return undefined;
    }
    let label: unknown;
    let user: unknown;
    const [id = '', labels = 'null', userJson = '""'] = read.stdout.trim().split('\t');
    try {
      label = (JSON.parse(labels) as Record<string, unknown> | null)?.['devcontainer.metadata'];
      user = JSON.parse(userJson);
    } catch {
      label = undefined;
    }
    const imageConfig: ImageConfig = {
      user: typeof user === 'string' ? user : '',
      ...(typeof label === 'string' ? { metadata: label } : {}),
    };
    await this.refuseByMetadata(plan, imageConfig, log);
    if (id) this.imageConfigs.set(config.image, { id, config: imageConfig });
    return imageConfig;
  }

  /** An image's metadata label asking for what the policy does not allow stops the run before any container is made. */
  private async refuseByMetadata({ config, allow }: ContainerPlan, image: ImageConfig, log: PreparationLog): Promise<void> {
    if (image.metadata === undefined) return;
    const refused = checkImageMetadata(image.metadata, String(config.image), allow);
    if (refused)
      throw new SandboxError('refused', refused, await log.finish('failed', `image ${String(config.image)} refused by its metadata`));
  }

  /**
   * Step, instead of `devcontainer up` when the repository has no
   * devcontainer.json: `<engine> run -d` with what the CLI would pass for the
   * generated configuration (the worktree as the only bind mount, the
   * sandbox's network, limits and labels, podman's `label=disable` and
   * `--userns=keep-id` for a non-root user, the CLI's keep-alive entrypoint),
   * without the CLI's second of start-up. Nothing of the repository runs.
   */
  private async runDirect(
    plan: ContainerPlan,
    direct: DirectStart,
    log: PreparationLog,
  ): Promise<{ containerId: string; remoteUser: string; remoteWorkspaceFolder: string }> {
    const { request, role, config } = plan;
    const podman = this.options.engine.kind === 'podman';
    const args = [
      'run',
      '-d',
      '--sig-proxy=false',
      `--mount=${String(config.workspaceMount)}`,
      `--label=${SANDBOX_LABELS.change}=${request.changeId}`,
      `--label=${SANDBOX_LABELS.role}=${role}`,
      ...Object.entries(direct.containerEnv).map(([name, value]) => `--env=${name}=${value}`),
      ...(direct.containerUser ? [`--user=${direct.containerUser}`] : []),
      ...(direct.init ? ['--init'] : []),
      ...(podman
        ? ['--security-opt=label=disable', ...(direct.remoteUser !== 'root' && direct.remoteUser !== '0' ? ['--userns=keep-id'] : [])]
        : []),
      ...(config.runArgs as string[]),
      '--entrypoint=/bin/sh',
      String(config.image),
      '-c',
      DIRECT_KEEPALIVE,
      '-',
    ];
    log.note(`── ${this.options.engine.kind} ${args.join(' ')}\n`);
    const timeoutMs = Math.min(this.upTimeoutMs, preparationTimeoutMs(request.policy));
    const result = await runEngine(this.options.engine, args, { timeoutMs, signal: request.signal, okExitCodes: [125, 126, 127] }).catch(
      async (error: unknown) => {
        await this.removeContainers(request.changeId, role).catch(() => undefined);
        if (request.signal?.aborted)
          throw new SandboxError(
            'cancelled',
            'The sandbox run was cancelled while its container was being created.',
            await log.finish('failed', 'cancelled'),
          );
        throw error;
      },
    );
    const containerId = result.stdout.trim().split('\n').pop() ?? '';
    if (result.exitCode !== 0 || !/^[0-9a-f]{12,64}$/.test(containerId)) {
      await this.removeContainers(request.changeId, role).catch(() => undefined);
      const detail = result.stderr.trim() || `exit code ${result.exitCode}`;
      throw new SandboxError(
        'upFailed',
        `The sandbox container could not be created: ${detail}. The preparation log has the details.`,
        await log.finish('failed', detail),
      );
    }
    return { containerId, remoteUser: direct.remoteUser, remoteWorkspaceFolder: plan.workspaceFolder };
  }

  /** Step: `devcontainer up --skip-post-create` (creates and starts, runs nothing of the repository), stopped at its time limit; its result line parsed. */
  private async up(
    plan: ContainerPlan,
    { configFile, workspaceFolder }: { configFile: string; workspaceFolder: string },
    log: PreparationLog,
  ): Promise<z.infer<typeof UpResultSchema> & { containerId: string }> {
    const { request, role, config } = plan;
    const { changeId } = request;
    const timeoutMs = Math.min(this.upTimeoutMs, preparationTimeoutMs(request.policy));
    const args = [
      'up',
      '--docker-path',
      this.options.engine.path,
      '--workspace-folder',
      workspaceFolder,
      '--config',
      configFile,
      '--id-label',
      `${SANDBOX_LABELS.change}=${changeId}`,
      '--id-label',
      `${SANDBOX_LABELS.role}=${role}`,
      '--default-user-env-probe',
      'none',
      // Lifecycle commands run only after the created container has been inspected (runLifecycleCommands).
      '--skip-post-create',
      '--log-format',
      'text',
      ...(plan.compose?.composeCommand ? ['--docker-compose-path', plan.compose.composeCommand] : []),
    ];
    log.note(`── devcontainer ${args.join(' ')}\n`);
    const up = execa(this.options.devcontainerCli, args, {
      reject: false,
      timeout: timeoutMs,
      forceKillAfterDelay: 2_000,
      cancelSignal: request.signal,
      stdin: 'ignore',
      buffer: { stdout: true, stderr: false },
      stderr: 'pipe',
      env: { ...process.env, NO_COLOR: '1' },
    });
    up.stderr?.setEncoding('utf8');
    up.stderr?.on('data', (chunk: string) => log.note(chunk));
    const upResult = await up;
    if (upResult.timedOut || upResult.isCanceled) {
      await this.removeContainers(changeId, role).catch((error) =>
        this.options.logger?.warn(`sandbox: cleanup after up: ${String(error)}`),
      );
      if (upResult.isCanceled)
        throw new SandboxError(
          'cancelled',
          'The sandbox run was cancelled while its container was being created.',
          await log.finish('failed', 'cancelled'),
        );
      const seconds = Math.round(timeoutMs / 1000);
      throw new SandboxError(
        'upTimedOut',
        `devcontainer up did not finish within ${seconds} s (it can hang after "Container started": devcontainers/cli#1236), so it was stopped and the container removed. Run the tasks again; if it keeps happening, look at the preparation log or raise policy's preparation time limit.`,
        await log.finish('timedOut', `devcontainer up did not finish within ${seconds} s`),
      );
    }
    const lastLine =
      String(upResult.stdout ?? '')
        .trim()
        .split('\n')
        .pop() ?? '';
    let parsed: z.infer<typeof UpResultSchema> | undefined;
    try {
      parsed = UpResultSchema.parse(JSON.parse(lastLine));
    } catch {
      parsed = undefined;
    }
    if (parsed?.outcome === 'success' && parsed.containerId) return { ...parsed, containerId: parsed.containerId };
    const detail = parsed?.message ?? (upResult.exitCode === undefined ? upResult.shortMessage : `exit code ${upResult.exitCode}`);
    await this.removeContainers(changeId, role).catch(() => undefined);
    const said = `${detail} ${parsed?.description ?? ''}`;
    if (/\b(?:pull|image not known|manifest unknown|not found|no such image)\b/i.test(said) && typeof config.image === 'string') {
      throw new SandboxError(
        'imageMissing',
        `The image ${config.image} could not be found or pulled (${detail}). Check the name in the devcontainer.json or agentLanes.sandbox.defaultImage, and that the preparation network can reach its registry.`,
        await log.finish('failed', detail),
      );
    }
    const lifecycle = /postCreateCommand|onCreateCommand|updateContentCommand|postStartCommand|lifecycle/i.test(said);
    throw new SandboxError(
      lifecycle ? 'preparationFailed' : 'upFailed',
      `The sandbox container could not be ${lifecycle ? 'prepared' : 'created'}: ${detail}. The preparation log has the details${lifecycle ? '; fix the command in the base commit' : ''}.`,
      await log.finish('failed', detail),
    );
  }

  /**
   * Step: checks the container the CLI created: it exists, it is new ('stale'
   * when it is an earlier one without state), and it asks for nothing the
   * sandbox does not allow (images and features can).
   */
  private async inspectCreated(plan: ContainerPlan, containerId: string, log: PreparationLog): Promise<ContainerInfo | 'stale'> {
    const { request, role } = plan;
    const info = await this.inspect(containerId);
    if (!info)
      throw new SandboxError(
        'containerRemoved',
        `The sandbox container ${containerId.slice(0, 12)} disappeared right after it was created; run the tasks again.`,
        await log.finish('failed', 'container disappeared'),
      );
    if (Date.parse(info.Created) < log.started - 2_000) return 'stale';
    const problems = plan.compose
      ? await this.composeWidenings(plan.compose.project, plan.worktreeReal, plan.allow)
      : containerWidenings(info, plan.worktreeReal, plan.allow);
    if (problems.length > 0) {
      await this.removeContainers(request.changeId, role);
      throw new SandboxError(
        'refused',
        `The container created from ${plan.check?.fileName ?? 'the default image'} asks for more than the sandbox allows (from the image's metadata or a feature): ${problems.join('; ')}. It was removed. Use an image without these settings, or ask the policy owner to allow them.`,
        await log.finish('failed', problems.join('; ')),
      );
    }
    return info;
  }

  /**
   * Step: the lifecycle commands (onCreateCommand, updateContentCommand,
   * postCreateCommand, postStartCommand) of the image, the features and the
   * configuration, as the CLI merged them into the container's metadata
   * label, run only now that the container has been inspected and accepted.
   */
  private async runLifecycleCommands(plan: ContainerPlan, handle: SandboxHandle, info: ContainerInfo, log: PreparationLog): Promise<void> {
    const commands = mergedLifecycleCommands(info.Config?.Labels?.['devcontainer.metadata'], plan.config);
    await this.runPreparationCommands(
      plan,
      handle,
      log,
      commands,
      (origin) => `Fix the ${origin} in the base commit's devcontainer.json (or its image or feature)`,
    );
  }

  /** A reused Compose project: every service started again (after a reboot), checked, and each with the network tasks had. */
  private async reuseComposeProject(
    project: string,
    networkMode: string,
    worktreeReal: string,
    allow: DevcontainerAllowances,
    signal: AbortSignal | undefined,
  ): Promise<string[]> {
    const problems: string[] = [];
    for (const id of await composeContainerIds(this.options.engine, project, this.engineTimeoutMs)) {
      let info = await this.inspect(id);
      if (info && !info.State.Running) {
        await this.engineCall(['start', id], { signal });
        info = await this.inspect(id);
      }
      if (!info) problems.push(`the service container ${id.slice(0, 12)} is gone`);
      else if (effectiveNetworkMode(info) !== networkMode)
        problems.push(`the service container ${id.slice(0, 12)} has network ${effectiveNetworkMode(info)}`);
    }
    return [...problems, ...(await this.composeWidenings(project, worktreeReal, allow))];
  }

  /** Every container of a Compose project, checked like a single one; its own volumes and folders of the worktree are its to mount. */
  private async composeWidenings(project: string, worktreeReal: string, allow: DevcontainerAllowances): Promise<string[]> {
    const own: DevcontainerAllowances = {
      ...allow,
      allowMounts: [...(allow.allowMounts ?? []), `${project}_*`, `${worktreeReal}/**`],
    };
    const problems: string[] = [];
    for (const id of await composeContainerIds(this.options.engine, project, this.engineTimeoutMs)) {
      const info = await this.inspect(id);
      if (!info) continue;
      const name = (info.Name ?? id.slice(0, 12)).replace(/^\//, '');
      problems.push(...containerWidenings(info, worktreeReal, own).map((problem) => `${name}: ${problem}`));
    }
    return problems;
  }

  /** Step: the `prepare:` commands of the base commit's lanes.yaml, within policy's preparation time limit. */
  private async runPrepareCommands(plan: ContainerPlan, handle: SandboxHandle, log: PreparationLog): Promise<void> {
    await this.runPreparationCommands(
      plan,
      handle,
      log,
      plan.request.source.prepare.map((command) => ({ origin: 'prepare', command })),
      () => 'Fix .lanes/lanes.yaml in the base commit',
    );
  }

  /** Runs preparation commands one by one in the container, within policy's preparation time limit; the first failure removes it. */
  private async runPreparationCommands(
    { request, role }: ContainerPlan,
    handle: SandboxHandle,
    log: PreparationLog,
    commands: readonly { origin: string; command: string }[],
    whatToFix: (origin: string) => string,
  ): Promise<void> {
    const { policy } = request;
    const deadline = log.started + preparationTimeoutMs(policy);
    for (const { origin, command } of commands) {
      log.note(`── ${origin}: ${command}\n`);
      const run = await this.execCaptured(handle, command, {
        timeoutMs: Math.max(deadline - Date.now(), 1_000),
        signal: request.signal,
        onChunk: (text) => log.note(text),
        maxLogChars: log.maxChars,
      });
      if (run.ended === 'exited' && run.exitCode === 0) continue;
      await this.removeContainers(request.changeId, role);
      const why =
        run.ended === 'timedOut'
          ? `did not finish within policy's preparation time limit`
          : run.ended === 'cancelled'
            ? 'was cancelled'
            : `failed with exit code ${run.exitCode}`;
      throw new SandboxError(
        run.ended === 'cancelled' ? 'cancelled' : 'preparationFailed',
        `The ${origin} command "${command}" ${why}; no task ran. Its output is in the preparation log. ${whatToFix(origin)}${(policy.preparationNetwork ?? 'none') === 'none' ? ', and note that preparation has no network under the current policy' : ''}.`,
        await log.finish(run.ended === 'timedOut' ? 'timedOut' : 'failed', `${origin} "${command}" ${why}`),
      );
    }
  }

  /** Step: after preparation every network is disconnected, so tasks run with none (unless policy opens one for tasks). */
  private async switchNetworkOff(plan: ContainerPlan, handle: SandboxHandle, created: ContainerInfo, log: PreparationLog): Promise<void> {
    if ((plan.request.policy.taskNetwork ?? 'none') !== 'none' || (plan.creationNetwork !== 'bridge' && !plan.compose)) return;
    const containers = plan.compose
      ? await composeContainerIds(this.options.engine, plan.compose.project, this.engineTimeoutMs)
      : [handle.containerId];
    let mode = 'none';
    for (const id of containers) {
      const current = id === handle.containerId ? created : await this.inspect(id);
      for (const network of plan.creationNetwork === 'bridge' ? Object.keys(current?.NetworkSettings?.Networks ?? {}) : []) {
        log.note(`── ${this.options.engine.kind} network disconnect ${network} ${id.slice(0, 12)}\n`);
        await this.engineCall(['network', 'disconnect', network, id]);
      }
      // Every service of a Compose project must end with none, not only the one tasks run in.
      const info = await this.inspect(id);
      const own = info ? effectiveNetworkMode(info) : 'unknown';
      if (own !== 'none') mode = own;
    }
    if (mode !== 'none') {
      await this.removeContainers(plan.request.changeId, plan.role);
      throw new SandboxError(
        'networkNotOff',
        `The network of the sandbox container could not be switched off after preparation (it is "${mode}"; rootless podman's slirp4netns cannot be disconnected). No task ran. Run podman as root or use Docker, or set policy's preparation network to none.`,
        await log.finish('failed', `network still ${mode}`),
      );
    }
    handle.networkMode = 'none';
  }

  /** Step: the state file lets the next run find and reuse the prepared container. */
  private async saveState(plan: ContainerPlan, handle: SandboxHandle, image: string, builtImage: string | undefined): Promise<void> {
    const state: SandboxState = {
      containerId: handle.containerId,
      configHash: plan.configHash,
      image,
      imageId: handle.imageId,
      networkMode: handle.networkMode,
      workspaceFolder: handle.workspaceFolder,
      remoteUser: handle.remoteUser,
      remoteEnv: handle.remoteEnv,
      worktreePath: plan.worktreeReal,
      ...(builtImage ? { builtImage } : {}),
      ...(plan.compose ? { compose: { project: plan.compose.project, builtImages: plan.compose.builtImages } } : {}),
      preparation: handle.preparation,
    };
    await writeFileAtomic(this.stateFile(plan.request.changeId, plan.role), JSON.stringify(state, null, 2));
  }

  /** Runs a command in the container with `<engine> exec`, killing it there on timeout or cancel. */
  private async execCaptured(
    handle: SandboxHandle,
    command: string,
    options: {
      timeoutMs: number;
      signal?: AbortSignal | undefined;
      onChunk?: ((text: string) => void) | undefined;
      onOutput?: ((text: string) => void) | undefined;
      maxLogChars?: number | undefined;
    },
  ) {
    const pidFile = `/tmp/.agent-lanes-${randomBytes(6).toString('hex')}.pid`;
    const env = Object.entries(handle.remoteEnv).flatMap(([name, value]) => ['-e', `${name}=${value}`]);
    const args = [
      'exec',
      '--user',
      handle.remoteUser,
      '--workdir',
      handle.workspaceFolder,
      ...env,
      handle.containerId,
      '/bin/sh',
      '-c',
      TASK_WRAPPER,
      'agent-lanes-task',
      pidFile,
      command,
    ];
    let subprocess: ReturnType<typeof execa> | undefined;
    const killInContainer = () =>
      execa(
        this.options.engine.path,
        ['exec', '--user', 'root', handle.containerId, '/bin/sh', '-c', KILL_SCRIPT, 'agent-lanes-kill', pidFile],
        {
          reject: false,
          timeout: this.engineTimeoutMs,
          stdin: 'ignore',
        },
      );
    let exited = false;
    const run = await capture(
      () => {
        subprocess = execa(this.options.engine.path, args, {
          reject: false,
          buffer: false,
          all: true,
          stdin: 'ignore',
          stripFinalNewline: false,
        });
        const done = (async () => {
          const result = await subprocess!;
          exited = true;
          return { exitCode: result.exitCode, stderrTail: '' };
        })();
        if (options.onChunk) subprocess.all?.on('data', (chunk: Buffer | string) => options.onChunk!(String(chunk)));
        return { output: options.onChunk ? undefined : (subprocess.all ?? undefined), done };
      },
      async () => {
        // The pid file may not be written yet right after the start: try a few times.
        for (let attempt = 0; attempt < 5 && !exited; attempt++) {
          await killInContainer();
          for (let wait = 0; wait < 10 && !exited; wait++) await delay(100);
        }
        if (!exited) subprocess?.kill('SIGKILL');
      },
      {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        onOutput: options.onOutput,
        maxLogChars: options.maxLogChars,
        patterns: this.patterns,
      },
    );
    return run;
  }

  /** Runs one task in a prepared container; never throws for the task's own failure. */
  async runTask(handle: SandboxHandle, task: ResolvedTask, options: TaskRunOptions): Promise<TaskEvidence> {
    const timeoutMs = (task.timeoutSeconds || DEFAULT_TASK_TIMEOUT_SECONDS) * 1000;
    const run = await this.execCaptured(handle, task.command, {
      timeoutMs,
      signal: options.signal,
      onOutput: options.onOutput,
      maxLogChars: options.maxLogChars,
    });
    const sandbox = { isolation: 'container' as const, networkMode: handle.networkMode, image: handle.image, imageId: handle.imageId };
    let outcome: TaskEvidence['outcome'];
    let message: string | undefined;
    if (run.ended === 'timedOut') {
      outcome = 'timedOut';
      message = `Killed after its time limit of ${task.timeoutSeconds} s.`;
    } else if (run.ended === 'cancelled') {
      outcome = 'cancelled';
      message = 'Cancelled; the task was stopped in the container.';
    } else if (run.exitCode === 0) {
      outcome = 'passed';
    } else {
      outcome = 'failed';
      // The engine's own exit codes (125-127, 137, 255) may mean the container went away rather than the task failing.
      if (run.exitCode === undefined || run.exitCode >= 125) {
        const info = await this.inspect(handle.containerId).catch(() => undefined);
        if (!info || !info.State.Running) {
          outcome = 'error';
          message = `The sandbox container ${handle.containerId.slice(0, 12)} was ${info ? 'stopped' : 'removed'} while the task ran. Run the tasks again: a new container will be created.`;
          await rm(this.stateFile(handle.changeId, handle.role), { force: true });
          if (info) await this.removeContainers(handle.changeId, handle.role).catch(() => undefined);
        }
      }
    }
    if (message) run.log.append(`\n[agent-lanes: ${message}]\n`);
    const stored = await storeLog(
      logFileFor(options.logDir, handle.changeId, `${handle.role === 'base' ? 'base-' : ''}${task.id}`),
      run.log,
      options.redactionPatterns ?? this.patterns,
    );
    return taskEvidence(task, run, outcome, stored, sandbox, message);
  }

  /**
   * Finds or creates the change's container, prepared once; its tasks then
   * run one at a time with `<engine> exec`. Preparations for the same change
   * and role wait for each other: one container, one preparation.
   */
  async prepare(request: PrepareRequest): Promise<PreparedSandbox> {
    request.onPreparing?.('Starting the sandbox container');
    const handle = await this.serialised(`${request.changeId}:${request.role ?? 'change'}`, () => this.ensure(request));
    return {
      label: { isolation: 'container', networkMode: handle.networkMode, image: handle.image, imageId: handle.imageId },
      preparation: handle.preparation,
      auditDetails: { image: handle.image, imageId: handle.imageId, taskNetwork: handle.networkMode, reused: handle.reused },
      stopAfterError: 'Not run: the sandbox container went away during an earlier task.',
      runTask: (task, options) => this.runTask(handle, task, options),
    };
  }

  private serialised<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.queues.set(key, next);
    const forget = () => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    };
    next.then(forget, forget);
    return next;
  }

  /**
   * "Tests fail without the change": runs the given (test) tasks on the base
   * commit, in a scratch worktree at the base SHA and a container of its own
   * made from the same configuration, then removes both.
   */
  runOnBase(request: BaseRunRequest): Promise<BaseRunResult> {
    return runTasksOnBase(this, this.options.stateDir, request, () => this.removeBaseContainer(request.changeId));
  }

  startOnBase(request: Omit<BaseRunRequest, 'tasks'>): Promise<BaseRunner> {
    return startTasksOnBase(this, this.options.stateDir, request, () => this.removeBaseContainer(request.changeId));
  }

  private async removeBaseContainer(changeId: string): Promise<void> {
    await this.removeContainers(changeId, 'base').catch((error) =>
      this.options.logger?.warn(`sandbox: removing the base container: ${String(error)}`),
    );
  }

  private async containerIds(filters: string[]): Promise<string[]> {
    const result = await this.engineCall(['ps', '-a', '-q', '--no-trunc', ...filters.flatMap((filter) => ['--filter', `label=${filter}`])]);
    return result.stdout
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
  }

  private async removeContainers(changeId: string, role?: SandboxRole): Promise<number> {
    const ids = await this.containerIds([`${SANDBOX_LABELS.change}=${changeId}`, ...(role ? [`${SANDBOX_LABELS.role}=${role}`] : [])]);
    if (ids.length > 0) await this.engineCall(['rm', '-f', '-v', '-t', '0', ...ids], { okExitCodes: [1] });
    for (const which of role ? [role] : (['change', 'base'] as const)) {
      const state = await this.readState(changeId, which);
      // Another container may still use the image (the same configuration built for another change): then it stays.
      if (state?.builtImage) await this.engineCall(['rmi', state.builtImage], { okExitCodes: [1, 2, 125] }).catch(() => undefined);
      if (state?.compose || (await readFileIfExists(join(this.configDir(changeId, which), 'compose', 'compose.yml'))) !== undefined)
        await removeComposeLeftovers(
          this.options.engine,
          state?.compose?.project ?? composeProjectName(changeId, which),
          state?.compose?.builtImages ?? [],
          this.engineTimeoutMs,
        );
      await rm(this.stateFile(changeId, which), { force: true });
      await rm(this.configDir(changeId, which), { recursive: true, force: true });
    }
    return ids.length;
  }

  /** Removes the change's containers (on discard, after the PR); returns how many there were. */
  removeSandbox(changeId: string): Promise<number> {
    return this.removeContainers(changeId);
  }

  /** Every sandbox container on this engine, to match against open changes on activation. */
  async listSandboxContainers(): Promise<SandboxContainer[]> {
    const ids = await this.containerIds([SANDBOX_LABELS.change]);
    if (ids.length === 0) return [];
    const result = await this.engineCall(['container', 'inspect', ...ids], { okExitCodes: [1, 125] });
    const infos = result.stdout.trim() ? InspectSchema.parse(JSON.parse(result.stdout)) : [];
    return infos.map((info) => ({
      id: info.Id,
      changeId: info.Config?.Labels?.[SANDBOX_LABELS.change] ?? '',
      role: info.Config?.Labels?.[SANDBOX_LABELS.role] ?? 'change',
      state: info.State.Status,
      image: info.Config?.Image ?? info.Image,
      createdAt: new Date(Date.parse(info.Created)).toISOString(),
      name: (info.Name ?? '').replace(/^\//, ''),
    }));
  }
}

/** The CLI's keep-alive entrypoint for a container whose command it overrides. */
const DIRECT_KEEPALIVE = 'echo Container started\ntrap "exit 0" 15\nwhile sleep 1 & wait $!; do :; done';

interface ImageConfig {
  user: string;
  metadata?: string;
}

interface DirectStart {
  containerEnv: Record<string, string>;
  containerUser?: string;
  remoteUser: string;
  init: boolean;
}

/** What the image's `devcontainer.metadata` label may hold for the sandbox to start the container itself; anything else goes through the CLI. */
const DIRECT_METADATA_KEYS = new Set([
  'id',
  'remoteUser',
  'containerUser',
  'containerEnv',
  'remoteEnv',
  'customizations',
  'updateRemoteUserUID',
  'userEnvProbe',
  'waitFor',
  'shutdownAction',
  'init',
  'onCreateCommand',
  'updateContentCommand',
  'postCreateCommand',
  'postStartCommand',
  'postAttachCommand',
  'forwardPorts',
  'portsAttributes',
  'otherPortsAttributes',
]);

/**
 * Whether the container can be started with `<engine> run -d` instead of
 * `devcontainer up`: no devcontainer.json (the generated configuration around
 * the default image), no Compose, and an image whose metadata asks for
 * nothing beyond users, environment and lifecycle commands (those run later
 * with exec either way).
 */
function directStart(plan: Pick<ContainerPlan, 'check' | 'compose' | 'config'>, image: ImageConfig | undefined): DirectStart | undefined {
  if (plan.check || plan.compose || typeof plan.config.image !== 'string' || !image) return undefined;
  let entries: Record<string, unknown>[] = [];
  if (image.metadata !== undefined) {
    try {
      const parsed: unknown = JSON.parse(image.metadata);
      const list = Array.isArray(parsed) ? parsed : [parsed];
      if (!list.every((entry) => typeof entry === 'object' && entry !== null && !Array.isArray(entry))) return undefined;
      entries = list as Record<string, unknown>[];
    } catch {
      return undefined;
    }
  }
  const containerEnv: Record<string, string> = {};
  let containerUser: string | undefined;
  let remoteUser: string | undefined;
  let init = false;
  for (const entry of entries) {
    if (Object.keys(entry).some((key) => !DIRECT_METADATA_KEYS.has(key))) return undefined;
    if (entry.containerEnv !== undefined) {
      if (typeof entry.containerEnv !== 'object' || entry.containerEnv === null) return undefined;
      for (const [name, value] of Object.entries(entry.containerEnv)) {
        // ${...} needs the CLI's substitution.
        if (typeof value !== 'string' || value.includes('${') || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return undefined;
        containerEnv[name] = value;
      }
    }
    if (entry.containerUser !== undefined) {
      if (typeof entry.containerUser !== 'string') return undefined;
      containerUser = entry.containerUser;
    }
    if (entry.remoteUser !== undefined) {
      if (typeof entry.remoteUser !== 'string') return undefined;
      remoteUser = entry.remoteUser;
    }
    if (entry.init !== undefined) init = entry.init === true;
  }
  return {
    containerEnv,
    ...(containerUser ? { containerUser } : {}),
    remoteUser: remoteUser ?? containerUser ?? (image.user || 'root'),
    init,
  };
}

/** What `devcontainer up` creates a container from, worked out once per preparation. */
interface ContainerPlan {
  request: PrepareRequest;
  role: SandboxRole;
  check: DevcontainerCheck | undefined;
  allow: DevcontainerAllowances;
  config: Record<string, unknown>;
  workspaceFolder: string;
  configHash: string;
  worktreeReal: string;
  creationNetwork: 'none' | 'bridge' | 'host';
  /** A Compose dev container: the files the sandbox wrote for it. */
  compose?: ComposeFiles;
  /** The images of a Compose project's services that are not built: they must exist when preparation has no network. */
  composeImages?: string[];
}

/** The preparation's log (capped, streamed redacted) and the evidence it ends in, whatever step ends it. */
class PreparationLog {
  readonly started = Date.now();
  private readonly log = new CappedLog();
  private readonly stream: LineRedactor | undefined;

  constructor(
    private readonly file: string,
    private readonly patterns: readonly SecretPattern[],
    onOutput: ((text: string) => void) | undefined,
    private readonly summary: { commands: string[]; networkMode: string; reachable: string[]; notes: string[] },
  ) {
    this.stream = onOutput ? new LineRedactor(onOutput, patterns) : undefined;
  }

  get maxChars(): number {
    return this.log.maxChars;
  }

  note(text: string): void {
    this.log.append(text);
    this.stream?.write(text);
  }

  async finish(outcome: PreparationEvidence['outcome'], message?: string): Promise<PreparationEvidence> {
    this.stream?.end();
    const stored = await storeLog(this.file, this.log, this.patterns);
    const { commands, networkMode, reachable, notes } = this.summary;
    return {
      commands,
      networkMode,
      reachable,
      outcome,
      durationMs: Date.now() - this.started,
      logDigest: stored.digest,
      logFile: stored.file,
      ...(message ? { message } : {}),
      ...(notes.length ? { notes } : {}),
    };
  }
}

/** Step: the worktree must exist; the sandbox mounts its real path. */
async function realWorktree(request: PrepareRequest): Promise<string> {
  try {
    return await realpath(request.worktreePath);
  } catch {
    throw new SandboxError(
      'engine',
      `The worktree ${request.worktreePath} of change ${request.changeId} is missing; restore it ("Agent Lanes: Reconcile") or discard the change.`,
    );
  }
}

/**
 * Step: the base commit's devcontainer.json, merged with its local features'
 * metadata (read from the base commit), and its Compose files when it names
 * some, may ask for nothing policy does not allow (features need a
 * preparation network). Throws SandboxError ('refused', 'configSyntax').
 * @internal Exported for the templates corpus test; the product calls it inside this module and the sandbox lane.
 */
export async function checkSource(
  request: Pick<PrepareRequest, 'source' | 'policy'>,
): Promise<{ check: DevcontainerCheck | undefined; compose?: ComposeCheck }> {
  const devcontainer = request.source.devcontainer;
  if (!devcontainer) return { check: undefined };
  const fileName = devcontainer.label ?? devcontainer.path;
  const allow = request.policy.devcontainer ?? {};
  const context = { configPath: devcontainer.path, pullAllowed: (request.policy.preparationNetwork ?? 'none') !== 'none' };
  const first = checkDevcontainer(devcontainer.text, fileName, allow, context);
  if (first.kind === 'syntaxError') throw new SandboxError('configSyntax', first.message);
  const metadata: Record<string, string | undefined> = {};
  for (const feature of first.features) {
    if (feature.local) metadata[feature.id] = await request.source.readBaseFile?.(posix.join(feature.local, 'devcontainer-feature.json'));
  }
  const check = first.features.some((feature) => feature.local)
    ? checkDevcontainer(devcontainer.text, fileName, allow, { ...context, features: metadata })
    : first;
  if (check.kind === 'syntaxError') throw new SandboxError('configSyntax', check.message);
  if (check.refusals.length > 0) throw new SandboxError('refused', describeRefusals(check));
  if (check.features.length > 0 && (request.policy.preparationNetwork ?? 'none') === 'none') {
    throw new SandboxError(
      'refused',
      `${check.fileName} uses dev container features, which are installed by an image build that the sandbox cannot take off the network (and a registry feature is downloaded), and policy allows no network for preparation. Bake the features into the image, or ask the policy owner for a preparation network (lanes.sandbox.network.preparation).`,
    );
  }
  if (check.config.dockerComposeFile === undefined) return { check };
  return { check, compose: await checkComposeSource(request.source, check, request.policy.devcontainer ?? {}) };
}

/** Step: a `build` configuration's context is a folder of the worktree, after every symbolic link is followed. */
async function buildContextInside(worktreeReal: string, configFolder: string, context: unknown, fileName: string): Promise<string> {
  const asked = join(worktreeReal, configFolder, typeof context === 'string' ? context : '.');
  let real: string;
  try {
    real = await realpath(asked);
  } catch {
    throw new SandboxError(
      'refused',
      `The build context of ${fileName} (${String(context ?? '.')}) is not a folder of the change's worktree.`,
    );
  }
  if (real !== worktreeReal && !real.startsWith(`${worktreeReal}/`)) {
    throw new SandboxError(
      'refused',
      `The build context of ${fileName} (${String(context ?? '.')}) leads to ${real}, outside the change's worktree (a symbolic link in the worktree); the build would read host files. Remove the link.`,
    );
  }
  return real;
}

/** Step: a local feature's files, from the base commit, go next to the private configuration (the CLI reads `./features/x` there). */
async function copyLocalFeatures(plan: ContainerPlan, configDir: string): Promise<void> {
  const { source } = plan.request;
  const configFolder = posix.dirname(source.devcontainer?.path ?? '.devcontainer/devcontainer.json');
  for (const feature of plan.check?.features ?? []) {
    if (!feature.local) continue;
    const files = (await source.listBaseFiles?.(feature.local)) ?? [];
    if (files.length === 0 || !source.readBaseFile)
      throw new SandboxError(
        'refused',
        `The local feature ${feature.id} has no files in the base commit (${feature.local}); commit the feature's folder.`,
      );
    for (const file of files) {
      const text = await source.readBaseFile(file);
      if (text === undefined) continue;
      const relative = posix.relative(configFolder === '.' ? '' : configFolder, file);
      if (relative.startsWith('..')) continue;
      const target = join(configDir, ...relative.split('/'));
      await mkdir(join(target, '..'), { recursive: true });
      await writeFile(target, text, { mode: 0o700 });
    }
  }
}

const LIFECYCLE_KEYS = ['onCreateCommand', 'updateContentCommand', 'postCreateCommand', 'postStartCommand'] as const;

/** A lifecycle command as one shell command line: a string as it is, an array's words quoted. */
function shellCommand(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (Array.isArray(value) && value.length > 0 && value.every((word) => typeof word === 'string'))
    return value.map((word: string) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
  return undefined;
}

/**
 * The lifecycle commands in the order the dev containers CLI runs them:
 * every onCreateCommand (image, features, configuration, as merged into the
 * container's `devcontainer.metadata` label), then every
 * updateContentCommand, and so on. Without a readable label, the
 * configuration's own.
 */
function mergedLifecycleCommands(label: string | undefined, config: Record<string, unknown>): { origin: string; command: string }[] {
  let entries: Record<string, unknown>[] = [config];
  try {
    const parsed: unknown = label === undefined ? undefined : JSON.parse(label);
    const list = Array.isArray(parsed) ? parsed : parsed && typeof parsed === 'object' ? [parsed] : undefined;
    if (list) entries = list.filter((entry): entry is Record<string, unknown> => typeof entry === 'object' && entry !== null);
  } catch {
    // An unreadable label: the configuration's own commands.
  }
  const commands: { origin: string; command: string }[] = [];
  for (const key of LIFECYCLE_KEYS) {
    for (const entry of entries) {
      const value = entry[key];
      const origin = typeof entry.id === 'string' ? `${key} of ${entry.id}` : key;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        for (const [name, command] of Object.entries(value)) {
          const line = shellCommand(command);
          if (line) commands.push({ origin: `${origin} (${name})`, command: line });
        }
      } else {
        const line = shellCommand(value);
        if (line) commands.push({ origin, command: line });
      }
    }
  }
  return commands;
}

function preparationTimeoutMs(policy: SandboxPolicy): number {
  return (policy.preparationTimeoutSeconds ?? DEFAULT_PREPARATION_TIMEOUT_SECONDS) * 1000;
}

function preparationReachFor(policy: SandboxPolicy, creationNetwork: 'bridge' | 'host'): { networkMode: string; reachable: string[] } {
  const network = policy.preparationNetwork ?? 'none';
  if (creationNetwork === 'host') return { networkMode: 'host', reachable: ['any host (the host network, allowed by policy)'] };
  if (network === 'registries') {
    const named = policy.preparationRegistries ?? [];
    return {
      networkMode: 'bridge',
      reachable: [`any host (policy names ${named.length ? named.join(', ') : 'no registry'}; not enforced per host)`],
    };
  }
  if (network === 'open') return { networkMode: 'bridge', reachable: ['any host'] };
  return { networkMode: 'bridge', reachable: ['any host (policy opens the network for tasks)'] };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolveDelay) => setTimeout(resolveDelay, ms));
}

/** Where the dev containers CLI is: a setting, the development install, or PATH. */
export async function resolveDevcontainerCli(options: {
  settingPath?: string | undefined;
  extensionRoot?: string | undefined;
  pathVariable?: string | undefined;
}): Promise<{ path: string } | { error: string }> {
  if (options.settingPath && options.settingPath.trim() !== '') {
    const found = await findOnPath(options.settingPath.trim());
    if (found) return { path: found };
    return {
      error: `agentLanes.sandbox.devcontainerCliPath is "${options.settingPath}", which is not an executable file. Install the CLI with \`npm install -g @devcontainers/cli\` and point the setting at it (or clear the setting to use devcontainer from PATH).`,
    };
  }
  if (options.extensionRoot) {
    const development = join(options.extensionRoot, 'node_modules', '.bin', 'devcontainer');
    const found = await findOnPath(development);
    if (found) return { path: found };
  }
  const onPath = await findOnPath('devcontainer', options.pathVariable);
  if (onPath) return { path: onPath };
  return {
    error:
      'The dev containers CLI (devcontainer) was not found. Install it with `npm install -g @devcontainers/cli` (it needs Node.js on PATH), or set agentLanes.sandbox.devcontainerCliPath to its location.',
  };
}

/** The configuration folder and base worktrees live here; kept for tests and cleanup. */
export function sandboxStateDir(storageRoot: string): string {
  return join(storageRoot, 'sandbox');
}
