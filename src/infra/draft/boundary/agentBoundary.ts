import { randomBytes } from 'node:crypto';
import { readFile, realpath, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { execa } from 'execa';
import {
  type AgentIsolationBackend,
  type AgentLimits,
  type BoundaryHandle,
  type CanaryProbe,
  type EgressRecord,
  type IsolationEvidence,
  MAX_LISTED_REFUSALS,
} from '../../../core/draft/agentIsolation';
import { LaneError } from '../../../core/errors';
import { type ContainerEngine, findOnPath, runEngine } from '../../sandbox/engine';
import { detectProcessSandbox } from '../../sandbox/processSandbox';
import { type AgentGit, prepareAgentGit } from './agentGit';
import { CANARY_PROXY_HOST, type CanaryPlanOptions, planCanary } from './canary';
import { type EgressProxy, egressSocketPath, startEgressProxy } from './egressProxy';
import { CANARY_IN_LAUNCHER, CANARY_THEN_AGENT, launcherArgv } from './egressLauncher';

class BoundaryError extends LaneError {
  override name = 'BoundaryError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('agentBoundary', message, options);
  }
}

export interface BoundarySpec {
  backend: AgentIsolationBackend;
  changeId: string;
  repoRoot: string;
  worktreePath: string;
  branch: string;
  headSha: string;
  /** A private folder for this run, outside the worktree: the agent's git and its exchange folder live here. */
  runDir: string;
  /** Where the prompt file and the report go (bound read-write). */
  ioDir: string;
  /** Folders the agent must neither see nor write (the extension's storage). */
  hiddenFolders: string[];
  /** Folders outside the worktree that the canary tries to write (the change's storage). */
  canaryFolders: string[];
  /** The agent's program and its arguments, after placeholders. */
  argv: string[];
  /** The agent's whole environment: nothing of the editor's is added. */
  env: Record<string, string>;
  allow: string[];
  limits: AgentLimits;
  /** Container backend: the image, the engine. */
  image?: string | undefined;
  engine?: ContainerEngine | undefined;
  /** Called with each connection the proxy refuses. */
  onRefused?: (record: EgressRecord) => void;
  /** Files and folders the agent's tools need, bound read-only at the same path (the folder of `agent-lanes mcp`). */
  readOnlyPaths?: string[];
  /** The lane channel's socket when it lies outside ioDir (a short folder): bound at the same path. */
  channelSocket?: string;
}

/** How the host spawns a command inside the boundary. */
interface BoundaryCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

export interface OpenedBoundary {
  readonly backend: AgentIsolationBackend;
  /** The agent's command, wrapped. */
  readonly command: BoundaryCommand;
  /** Kept in the change record before the agent starts; set with the pid for the process backend. */
  handle(pid?: number): Promise<BoundaryHandle>;
  /** Runs the canary inside the same boundary; throws when it cannot run. */
  canary(): Promise<{ probes: CanaryProbe[]; ms: number }>;
  /**
   * Where one start of the boundary can run the canary and then the agent (the process boundary behind the egress
   * launcher): the command to spawn with a socket on fd 3, which carries the canary's report to the host and the
   * host's "go" back. Without it, canary() runs first and the agent starts after.
   */
  gatedCanary?(): Promise<GatedCanary>;
  /** Stops everything inside at once (the container, or nothing more than the process group for bubblewrap). */
  stop(): Promise<void>;
  /** What the evidence says about the boundary, once the run ended. */
  evidence(extra: { probes: CanaryProbe[]; canaryMs?: number; stoppedFor?: string }): IsolationEvidence;
  /** Stops the container and the proxy, and removes the run's private git (the lane never reads it). */
  close(): Promise<void>;
}

/** The canary and the agent in one start: spawn `command` with fd 3, check the report, answer "go" (see agentRunner). */
interface GatedCanary {
  readonly command: BoundaryCommand;
  /** The report line from fd 3, parsed and checked from outside (what landed where). */
  verify(report: string): Promise<CanaryProbe[]>;
  /** Closes the canary's host listener. */
  close(): Promise<void>;
}

const WINDOWS = process.platform === 'win32';

export type BackendProbe = { available: true; detail: string; bwrap: string } | { available: false; message: string };

/** Whether the process backend works here: Linux with bubblewrap able to make its namespaces. */
export async function probeProcessBackend(): Promise<BackendProbe> {
  if (process.platform !== 'linux')
    return {
      available: false,
      message:
        'The process boundary uses bubblewrap, which exists on Linux only; on this system use the container boundary (install podman or Docker).',
    };
  const detection = await detectProcessSandbox();
  if (!detection.available) return { available: false, message: detection.message };
  const version = await execa(detection.bwrap, ['--version'], { reject: false, timeout: 5_000 });
  return { available: true, detail: version.stdout.trim() || 'bubblewrap', bwrap: detection.bwrap };
}

/** How an agent's CLI starts `agent-lanes mcp` inside its boundary: an MCP server entry for its configuration. */
export interface McpServerCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * The MCP server entry for a run (`{"mcpServers": {"agent-lanes": <this>}}`):
 * Node, the extension's `dist/mcp.js` (bound read-only into the boundary) and
 * the run's channel. In the process boundary (and on the host) Node is the
 * one the canary runs with; in a container, the image's `node`.
 */
export async function mcpServerCommand(options: {
  backend: AgentIsolationBackend;
  /** The extension's dist/mcp.js. */
  script: string;
  channelPath: string;
  changeId: string;
}): Promise<McpServerCommand> {
  const node = options.backend === 'container' ? { path: 'node', env: {} } : await hostNode();
  return {
    command: node.path,
    args: [options.script, '--channel', options.channelPath],
    env: { ...node.env, LANES_CHANNEL: options.channelPath, LANES_CHANGE_ID: options.changeId },
  };
}

/** A Node program to run the canary and the egress launcher inside the process boundary. */
async function hostNode(): Promise<{ path: string; env: Record<string, string> }> {
  const onPath = await findOnPath('node');
  if (onPath) return { path: await realpath(onPath), env: {} };
  // The editor's own runtime (Electron) runs as Node with this variable.
  return { path: process.execPath, env: { ELECTRON_RUN_AS_NODE: '1' } };
}

function inside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * The agent's program lives somewhere the boundary may hide (an npm prefix in
 * the home folder): those files are bound read-only, and only those — the
 * program's own package folder, and any PATH folder that lies in a hidden place.
 */
async function programPaths(argv: readonly string[], path: string, hidden: readonly string[]): Promise<string[]> {
  const bound = new Set<string>();
  const hiddenHere = (target: string) => hidden.some((folder) => inside(folder, target));
  const program = await findOnPath(argv[0]!, path);
  if (program) {
    const real = await realpath(program).catch(() => program);
    for (const candidate of [program, real]) if (hiddenHere(candidate)) bound.add(candidate);
    // A package's entry point needs its package: the nearest folder with a package.json.
    let folder = dirname(real);
    for (let depth = 0; depth < 6 && hiddenHere(folder); depth++) {
      if (await stat(join(folder, 'package.json')).catch(() => undefined)) {
        bound.add(folder);
        break;
      }
      folder = dirname(folder);
    }
  }
  for (const entry of path.split(':'))
    if (entry && isAbsolute(entry) && hiddenHere(entry) && (await stat(entry).catch(() => undefined))) bound.add(entry);
  // Script files named in the arguments (node agent.mjs): the file itself, never its folder.
  for (const arg of argv.slice(1))
    if (isAbsolute(arg) && hiddenHere(arg) && (await stat(arg).catch(() => undefined))?.isFile()) bound.add(arg);
  // A folder bound whole may not be, or contain, a hidden root itself (the home folder).
  return [...bound].filter((target) => !hidden.some((folder) => inside(target, folder)));
}

/**
 * Field 22 of /proc/<pid>/stat: the process's start time, to tell a reused pid from ours.
 * @internal Exported for its unit tests; the product calls it inside this module.
 */
export async function processStartTicks(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
}

/** Opens the boundary for one agent run: its git, its proxy, its container. Nothing runs yet. */
export async function openBoundary(spec: BoundarySpec): Promise<OpenedBoundary> {
  if (spec.backend === 'host') return openHostBoundary(spec.argv, spec.env, spec.worktreePath, spec.limits);
  const agentGit = await prepareAgentGit({
    repoRoot: spec.repoRoot,
    worktreePath: spec.worktreePath,
    dir: join(spec.runDir, 'git'),
    branch: spec.branch,
    headSha: spec.headSha,
  });
  const refusals: EgressRecord[] = [];
  let refusedTotal = 0;
  let allowedTotal = 0;
  let proxy: EgressProxy | undefined;
  if (spec.allow.length) {
    proxy = await startEgressProxy({
      allow: spec.allow,
      socketPath: egressSocketPath(randomBytes(6).toString('hex')),
      onDecision: (decision) => {
        // The canary's own probe proves the proxy refuses; it is not the agent's connection.
        if (decision.host === CANARY_PROXY_HOST) return;
        if (decision.allowed) {
          allowedTotal++;
          return;
        }
        refusedTotal++;
        const record = {
          host: decision.host,
          port: decision.port,
          at: decision.at,
          ...(decision.reason ? { reason: decision.reason } : {}),
        };
        if (refusals.length < MAX_LISTED_REFUSALS) refusals.push(record);
        spec.onRefused?.(record);
      },
    });
  }
  const network = () => ({ allow: [...spec.allow], refused: [...refusals], refusedTotal, allowedTotal });
  try {
    return spec.backend === 'process'
      ? await openProcessBoundary(spec, agentGit, proxy, network)
      : await openContainerBoundary(spec, agentGit, proxy, network);
  } catch (error) {
    await proxy?.close();
    throw error;
  }
}

type NetworkEvidence = () => IsolationEvidence['network'];

async function openProcessBoundary(
  spec: BoundarySpec,
  git: AgentGit,
  proxy: EgressProxy | undefined,
  network: NetworkEvidence,
): Promise<OpenedBoundary> {
  const probe = await probeProcessBackend();
  if (!probe.available) throw new BoundaryError(`The process boundary cannot run here: ${probe.message}`);
  const home = homedir();
  const node = await hostNode();
  // The repository's git folder may live outside its checkout (a linked worktree's common directory): hidden too.
  const hidden = [...new Set([home, spec.repoRoot, dirname(git.objectsDir), ...spec.hiddenFolders])].filter(
    (folder) => folder && folder !== '/' && !inside(spec.worktreePath, folder),
  );
  const path = spec.env.PATH ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  // /tmp, /run and /var/tmp are private in the boundary too: a program there is bound like one in a hidden folder.
  const readOnly = await programPaths(spec.argv, path, [...hidden, '/tmp', '/var/tmp', '/run']);
  if (inside(home, node.path) || hidden.some((folder) => inside(folder, node.path))) readOnly.push(node.path);
  // A tool folder bound whole may not be, or contain, a hidden root (the home folder).
  for (const target of spec.readOnlyPaths ?? [])
    if (!hidden.some((folder) => inside(target, folder)) && (await stat(target).catch(() => undefined))) readOnly.push(target);

  const bwrapArgs = (): string[] => {
    const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--tmpfs', '/run', '--tmpfs', '/var/tmp'];
    // Hidden first, then what is bound back inside them (bubblewrap makes the mount points on the tmpfs).
    for (const folder of hidden) args.push('--tmpfs', folder);
    args.push('--ro-bind', git.objectsDir, git.objectsDir);
    for (const target of readOnly) args.push('--ro-bind', target, target);
    args.push('--bind', spec.worktreePath, spec.worktreePath, '--ro-bind', git.gitFile, join(spec.worktreePath, '.git'));
    args.push('--bind', git.gitDir, git.gitDir, '--bind', spec.ioDir, spec.ioDir);
    if (proxy) args.push('--ro-bind', proxy.socketPath, proxy.socketPath);
    if (spec.channelSocket && !inside(spec.ioDir, spec.channelSocket)) args.push('--ro-bind', spec.channelSocket, spec.channelSocket);
    // The user's repository and our storage read as empty and refuse writes (the home folder stays a private, writable scratch).
    for (const folder of hidden) if (folder !== home) args.push('--remount-ro', folder);
    args.push('--chdir', spec.worktreePath);
    args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-net', '--unshare-cgroup-try');
    args.push('--new-session', '--die-with-parent', '--cap-drop', 'ALL', '--');
    return args;
  };
  const wrap = (argv: string[], env: Record<string, string>): BoundaryCommand => ({
    file: probe.bwrap,
    args: [...bwrapArgs(), ...(proxy ? launcherArgv(node.path, proxy.socketPath, argv) : argv)],
    env: { ...env, ...(proxy ? node.env : {}) },
    cwd: spec.worktreePath,
  });
  const env = { HOME: home || '/tmp', ...spec.env };
  const command = wrap(spec.argv, env);
  // Memory and processes are measured on the process tree instead (processWatch); CPU time cannot be held without a cgroup.
  const notEnforced = spec.limits.cpus !== undefined ? ['cpus'] : [];
  return {
    backend: 'process',
    command,
    async handle(pid?: number) {
      const ticks = pid ? await processStartTicks(pid) : undefined;
      return { backend: 'process', ...(pid ? { pid } : {}), ...(ticks ? { pidStartTicks: ticks } : {}) };
    },
    canary: () =>
      runCanary(
        spec,
        // Behind the egress launcher the canary runs in the launcher's own Node (one start instead of two).
        (args) => (proxy ? wrap([CANARY_IN_LAUNCHER, ...args], env) : wrap([node.path, ...args], { ...env, ...node.env })),
        proxy !== undefined,
        dirname(git.objectsDir),
      ),
    ...(proxy
      ? {
          gatedCanary: async (): Promise<GatedCanary> => {
            const plan = await planCanary(canaryPlanOptions(spec, dirname(git.objectsDir)));
            const [, source = '', canarySpec = ''] = plan.args;
            return {
              command: wrap([CANARY_THEN_AGENT, source, canarySpec, ...spec.argv], env),
              verify: (report) => plan.verify(report),
              close: () => plan.close(),
            };
          },
        }
      : {}),
    stop: async () => undefined,
    evidence: (extra) => ({
      backend: 'process',
      verified: extra.probes.length > 0 && extra.probes.every((probe) => probe.outcome !== 'escaped'),
      sandbox: probe.detail,
      network: network(),
      limits: spec.limits,
      notEnforced,
      probes: extra.probes,
      ...(extra.canaryMs !== undefined ? { canaryMs: extra.canaryMs } : {}),
      ...(extra.stoppedFor ? { stoppedFor: extra.stoppedFor } : {}),
    }),
    close: async () => {
      await proxy?.close();
      await rm(dirname(git.gitDir), { recursive: true, force: true });
    },
  };
}

function canaryPlanOptions(spec: BoundarySpec, gitCommonDir: string | undefined): CanaryPlanOptions {
  return {
    repoRoot: spec.repoRoot,
    ...(gitCommonDir ? { gitCommonDir } : {}),
    outsideFolders: [...spec.canaryFolders, homedir()],
    home: homedir(),
  };
}

/**
 * Runs the canary with the boundary's own wrapping; parses and checks it from outside.
 * @internal Exported for its unit tests (a canary run without a boundary must report escapes); the product calls it inside this module.
 */
export async function runCanary(
  spec: BoundarySpec,
  wrap: (nodeArgs: string[]) => BoundaryCommand,
  viaProxy: boolean,
  gitCommonDir?: string,
): Promise<{ probes: CanaryProbe[]; ms: number }> {
  const started = performance.now();
  const plan = await planCanary(canaryPlanOptions(spec, gitCommonDir));
  try {
    const command = wrap(plan.args);
    const result = await execa(command.file, command.args, {
      cwd: command.cwd,
      env: command.env,
      extendEnv: false,
      reject: false,
      timeout: 30_000,
      stdin: 'ignore',
    });
    if (result.exitCode !== 0 && !result.stdout.trim())
      throw new BoundaryError(
        `The isolation canary could not run in the ${spec.backend} boundary (exit code ${result.exitCode}): ${(result.stderr || result.shortMessage || '').trim().split('\n').slice(-3).join(' ')}`,
      );
    const probes = await plan.verify(result.stdout);
    if (!viaProxy && probes.some((probe) => probe.name === 'proxyRefuses' && probe.outcome !== 'skipped'))
      throw new BoundaryError('The canary found a proxy where the network should be off.');
    return { probes, ms: Math.round(performance.now() - started) };
  } finally {
    await plan.close();
  }
}

async function openContainerBoundary(
  spec: BoundarySpec,
  git: AgentGit,
  proxy: EgressProxy | undefined,
  network: NetworkEvidence,
): Promise<OpenedBoundary> {
  const { engine, image } = spec;
  if (!engine)
    throw new BoundaryError(
      'The container boundary needs podman or Docker, and neither answers here. Install podman (`sudo apt-get install -y podman`).',
    );
  if (!image)
    throw new BoundaryError(
      'The container boundary needs an image: the policy names none (lanes.agent.image) and agentLanes.sandbox.defaultImage is empty. Set one of them to an image that has the agent CLI, git and node.',
    );
  const name = `agent-lanes-agent-${spec.changeId}-${randomBytes(4).toString('hex')}`;
  const mounts = [
    ['type=bind', `source=${spec.worktreePath}`, `destination=${spec.worktreePath}`],
    ['type=bind', `source=${git.gitFile}`, `destination=${join(spec.worktreePath, '.git')}`, 'readonly'],
    ['type=bind', `source=${git.gitDir}`, `destination=${git.gitDir}`],
    ['type=bind', `source=${git.objectsDir}`, `destination=${git.objectsDir}`, 'readonly'],
    ['type=bind', `source=${spec.ioDir}`, `destination=${spec.ioDir}`],
    ...(proxy ? [['type=bind', `source=${proxy.socketPath}`, `destination=${proxy.socketPath}`, 'readonly']] : []),
    ...(spec.channelSocket && !inside(spec.ioDir, spec.channelSocket)
      ? [['type=bind', `source=${spec.channelSocket}`, `destination=${spec.channelSocket}`, 'readonly']]
      : []),
    ...(spec.readOnlyPaths ?? []).map((target) => ['type=bind', `source=${target}`, `destination=${target}`, 'readonly']),
  ];
  const { limits } = spec;
  const runArgs = [
    'run',
    '--detach',
    '--name',
    name,
    '--label',
    `agent-lanes.change=${spec.changeId}`,
    '--label',
    'agent-lanes.role=agent',
    '--network',
    'none',
    '--cap-drop',
    'all',
    '--security-opt',
    'no-new-privileges',
    '--read-only',
    '--tmpfs',
    '/tmp:rw,exec,size=512m',
    ...(limits.pids ? ['--pids-limit', String(limits.pids)] : []),
    ...(limits.memoryMb ? ['--memory', `${limits.memoryMb}m`] : []),
    ...(limits.cpus ? ['--cpus', String(limits.cpus)] : []),
    ...mounts.flatMap((mount) => ['--mount', mount.join(',')]),
    '--workdir',
    spec.worktreePath,
    '--entrypoint',
    'sleep',
    image,
    'infinity',
  ];
  const inspect = await runEngine(engine, ['image', 'inspect', '--format', '{{.Id}} {{.Digest}}', image], { okExitCodes: [1, 125] });
  if (inspect.exitCode !== 0)
    throw new BoundaryError(
      `The agent image ${image} is not on this machine (${engine.kind} image inspect: ${inspect.stderr.trim().split('\n').pop()}). Pull or build it first; the boundary never pulls with the network on.`,
    );
  const [imageId, digest] = inspect.stdout.trim().split(' ');
  const imageDigest = digest && digest !== '<none>' ? digest : `sha256:${(imageId ?? '').replace(/^sha256:/, '')}`;
  let started = false;
  const start = async () => {
    if (started) return;
    started = true;
    await runEngine(engine, runArgs, { timeoutMs: 60_000 });
  };
  const remove = async () => {
    await runEngine(engine, ['rm', '--force', '--time', '0', name], { okExitCodes: [1, 125] }).catch(() => undefined);
  };
  // Names only: the values reach `exec` through the engine client's environment, never its arguments;
  // a name the client itself needs (HOME, XDG_RUNTIME_DIR…) keeps the client's value, and the agent's goes in by value.
  const client = clientEnvironment();
  const envNames = Object.keys(spec.env).filter((key) => key !== 'PATH' && key !== 'HOME');
  const envArgs = envNames.flatMap((key) => ['--env', key in client ? `${key}=${spec.env[key]}` : key]);
  const wrap = (argv: string[]): BoundaryCommand => ({
    file: engine.path,
    args: ['exec', '--workdir', spec.worktreePath, '--env', 'HOME=/tmp', ...envArgs, name, ...argv],
    env: { ...spec.env, ...client },
    cwd: spec.worktreePath,
  });
  const argv = proxy ? launcherArgv('node', proxy.socketPath, spec.argv) : spec.argv;
  return {
    backend: 'container',
    command: wrap(argv),
    async handle() {
      return { backend: 'container', containerName: name, engine: engine.path };
    },
    async canary() {
      await start();
      return runCanary(spec, (args) => wrap(['node', ...args]), proxy !== undefined, dirname(git.objectsDir));
    },
    stop: remove,
    evidence: (extra) => ({
      backend: 'container',
      verified: extra.probes.length > 0 && extra.probes.every((probe) => probe.outcome !== 'escaped'),
      sandbox: `${engine.kind} ${engine.version}`,
      image,
      imageDigest,
      network: network(),
      limits,
      notEnforced: [],
      probes: extra.probes,
      ...(extra.canaryMs !== undefined ? { canaryMs: extra.canaryMs } : {}),
      ...(extra.stoppedFor ? { stoppedFor: extra.stoppedFor } : {}),
    }),
    close: async () => {
      await remove();
      await proxy?.close();
      await rm(dirname(git.gitDir), { recursive: true, force: true });
    },
  };
}

/** What the engine's own client needs to reach its service: nothing else of the editor's environment. */
function clientEnvironment(): Record<string, string> {
  const keep = ['PATH', 'XDG_RUNTIME_DIR', 'DOCKER_HOST', 'CONTAINER_HOST', 'CONTAINERS_CONF', 'HOME', 'USER', 'LANG'];
  return Object.fromEntries(keep.flatMap((key) => (process.env[key] ? [[key, process.env[key]!]] : [])));
}

/** Unconfined: only where policy names `host`; the evidence says so and the review flags it. */
export function openHostBoundary(
  argv: string[],
  env: Record<string, string>,
  worktreePath: string,
  limits: AgentLimits = { timeoutSeconds: 0 },
): OpenedBoundary {
  return {
    backend: 'host',
    command: { file: argv[0]!, args: argv.slice(1), env, cwd: worktreePath },
    async handle(pid?: number) {
      const ticks = pid ? await processStartTicks(pid) : undefined;
      return { backend: 'host', ...(pid ? { pid } : {}), ...(ticks ? { pidStartTicks: ticks } : {}) };
    },
    canary: async () => ({ probes: [], ms: 0 }),
    stop: async () => undefined,
    evidence: (extra) => ({
      backend: 'host',
      verified: false,
      network: { allow: [], refused: [], refusedTotal: 0, allowedTotal: 0 },
      limits,
      notEnforced: ['cpus', 'memoryMb', 'pids', 'network'],
      probes: [],
      ...(extra.stoppedFor ? { stoppedFor: extra.stoppedFor } : {}),
    }),
    close: async () => undefined,
  };
}

/** Stops what a run that outlived its editor left: its process group (if still ours) or its container. */
export async function stopLeftoverRun(handle: BoundaryHandle): Promise<string> {
  if (handle.containerName) {
    const engine = handle.engine ?? 'podman';
    const result = await execa(engine, ['rm', '--force', '--time', '0', handle.containerName], { reject: false, timeout: 60_000 });
    return result.exitCode === 0 ? `container ${handle.containerName} removed` : `container ${handle.containerName} was already gone`;
  }
  if (handle.pid && !WINDOWS) {
    const ticks = await processStartTicks(handle.pid);
    if (!ticks || ticks !== handle.pidStartTicks) return `process ${handle.pid} had already ended`;
    try {
      process.kill(-handle.pid, 'SIGKILL');
    } catch {
      process.kill(handle.pid, 'SIGKILL');
    }
    return `process group ${handle.pid} stopped`;
  }
  return 'nothing was left running';
}
