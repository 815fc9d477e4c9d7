import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import picomatch from 'picomatch';

/**
 * Checks a repository's devcontainer.json before it decides anything about a
 * sandbox: whatever would widen the sandbox beyond "this worktree, no
 * network, the engine's default privileges" is refused with its reason,
 * unless policy allows that exact thing.
 */

/**
 * The exceptions policy may grant. Everything absent is refused.
 *
 * - `allowPrivileged`: `"privileged": true` or `--privileged`.
 * - `allowHostNetwork`: `--network=host` / `--net host`; the container (and
 *   so its tasks) then shares the host's network.
 * - `allowCapAdd`: capability names (`NET_ADMIN`, with or without `CAP_`;
 *   `ALL` only when listed) that `capAdd` / `--cap-add` may add.
 * - `allowMounts`: host paths (picomatch globs, e.g. `/opt/cache/**`) or
 *   volume names that a mount in `mounts`, `-v`/`--volume`/`--mount` may use
 *   as its source. The docker socket is refused unless listed exactly.
 * - `allowInitializeCommand`: `initializeCommand`, which runs on the host.
 */
export interface DevcontainerAllowances {
  allowPrivileged?: boolean;
  allowHostNetwork?: boolean;
  allowCapAdd?: string[];
  allowMounts?: string[];
  allowInitializeCommand?: boolean;
}

interface SandboxWidening {
  /** Where in devcontainer.json, e.g. `runArgs: --privileged` or `mounts[0]`. */
  where: string;
  /** Why it widens the sandbox. */
  reason: string;
  /** The policy setting that would allow it, when one can. */
  allowedBy?: keyof DevcontainerAllowances;
}

/** A bind or volume mount the configuration asks for, allowed by policy. */
interface RequestedMount {
  where: string;
  type: string;
  source: string;
  target: string;
  readonly: boolean;
}

export interface DevcontainerCheck {
  kind: 'checked';
  fileName: string;
  /** The parsed configuration (comments and trailing commas allowed). */
  config: Record<string, unknown>;
  /** What widens the sandbox and policy does not allow: the sandbox must not start. */
  refusals: SandboxWidening[];
  /** What widens the sandbox and policy allows: recorded in the evidence. */
  allowed: SandboxWidening[];
  /** Settings the sandbox ignores or replaces (its own network, workspace mount, limits). */
  notes: string[];
  /** The configuration asks for the host's network and policy allows it. */
  hostNetwork: boolean;
  /** Run arguments that survive the check, without network and limit flags (the sandbox sets those). */
  runArgs: string[];
  /** The smallest CPU, memory and process limits the configuration asks for, if any. */
  limits: { cpus?: number; memoryBytes?: number; pids?: number };
  /** Mounts the configuration asks for that policy allows. */
  mounts: RequestedMount[];
  /** The container path the worktree is mounted at, if the configuration names one. */
  workspaceFolder?: string;
}

interface DevcontainerSyntaxError {
  kind: 'syntaxError';
  fileName: string;
  line: number;
  column: number;
  message: string;
}

export type DevcontainerCheckResult = DevcontainerCheck | DevcontainerSyntaxError;

const DOCKER_SOCKET = /(?:^|\/)(?:docker|podman)\.sock$|^\/run\/podman(?:\/|$)|^\/var\/run\/docker(?:\/|$)|^npipe:|docker_engine/;

/** Run flags that narrow the sandbox or do not touch isolation; true when the flag takes a value. */
const SAFE_RUN_FLAGS: Record<string, boolean> = {
  '--init': false,
  '--rm': false,
  '--tty': false,
  '-t': false,
  '--interactive': false,
  '-i': false,
  '--read-only': false,
  '--env': true,
  '-e': true,
  '--label': true,
  '-l': true,
  '--hostname': true,
  '-h': true,
  '--user': true,
  '-u': true,
  '--workdir': true,
  '-w': true,
  '--tmpfs': true,
  '--shm-size': true,
  '--ulimit': true,
  '--add-host': true,
  '--cap-drop': true,
  '--dns': true,
  '--entrypoint': true,
  '--stop-signal': true,
  '--stop-timeout': true,
  '--platform': true,
  '--pull': true,
  '--group-add': true,
  '--memory-swap': true,
  '--memory-reservation': true,
  '--cpu-shares': true,
  '--cpuset-cpus': true,
};

/** Flags the sandbox sets itself; the smaller limit wins. */
const LIMIT_FLAGS: Record<string, 'cpus' | 'memoryBytes' | 'pids'> = {
  '--cpus': 'cpus',
  '--memory': 'memoryBytes',
  '-m': 'memoryBytes',
  '--pids-limit': 'pids',
};

const NETWORK_FLAGS = new Set(['--network', '--net']);
const NAMESPACE_FLAGS = new Set(['--pid', '--ipc', '--uts', '--cgroupns', '--userns']);
const MOUNT_FLAGS = new Set(['-v', '--volume', '--mount']);

/** Flags refused whatever their value, with the reason. */
const REFUSED_FLAGS: Record<string, string> = {
  '--device': 'gives the container a host device',
  '--gpus': 'gives the container the host GPUs',
  '--device-cgroup-rule': 'lets the container use host devices',
  '--security-opt': 'weakens the seccomp, AppArmor or SELinux confinement (only no-new-privileges is accepted)',
  '--volumes-from': 'mounts another container’s volumes',
  '--env-file': 'reads a file on the host into the container',
  '--label-file': 'reads a file on the host',
  '--cidfile': 'writes a file on the host',
  '-p': 'publishes container ports on the host',
  '--publish': 'publishes container ports on the host',
  '-P': 'publishes container ports on the host',
  '--publish-all': 'publishes container ports on the host',
  '--expose': 'publishes container ports',
  '--runtime': 'chooses another container runtime',
  '--name': 'fixes the container name; the sandbox names and finds containers itself',
  '--sysctl': 'changes kernel parameters',
  '--oom-kill-disable': 'lets the container exhaust the host memory',
};

const BUILD_SAFE_FLAGS: Record<string, boolean> = {
  '--build-arg': true,
  '--label': true,
  '--target': true,
  '--platform': true,
  '--pull': false,
  '--no-cache': false,
  '--progress': true,
  '--quiet': false,
  '-q': false,
};

function offsetToPosition(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/** Memory sizes as the engines take them: `512m`, `2g`, `1073741824`, `1.5GB`. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function parseMemory(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([bkmg])?b?$/i.exec(value.trim());
  if (!match) return undefined;
  const unit = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? 'b').toLowerCase() as 'b' | 'k' | 'm' | 'g'];
  return Math.floor(Number(match[1]) * unit);
}

/** Whether policy's `allowMounts` lets a mount use this host path or volume name as its source. */
export function isMountSourceAllowed(source: string, allow: DevcontainerAllowances): boolean {
  const patterns = (allow.allowMounts ?? []).filter((pattern) => pattern.trim() !== '');
  if (source === '' || patterns.length === 0) return false;
  if (patterns.includes(source)) return true;
  // A glob never reaches the engine socket: that one must be listed exactly.
  return !isEngineSocket(source) && patterns.some((pattern) => picomatch.isMatch(source, pattern, { dot: true }));
}

export function isEngineSocket(source: string): boolean {
  return DOCKER_SOCKET.test(source);
}

export function isCapabilityAllowed(name: string, allow: DevcontainerAllowances): boolean {
  const wanted = normaliseCapability(name);
  return (allow.allowCapAdd ?? []).some((cap) => normaliseCapability(cap) === wanted);
}

function normaliseCapability(name: string): string {
  return name.trim().toUpperCase().replace(/^CAP_/, '');
}

/** `type=bind,source=/a,target=/b,readonly` or `/a:/b:ro` into its parts. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function parseMountSpec(spec: string, shortForm: boolean): { type: string; source: string; target: string; readonly: boolean } {
  if (shortForm && !spec.includes('=')) {
    const [source = '', target = '', options = ''] = spec.split(':');
    // `-v /path` alone is an anonymous volume at /path.
    if (!target) return { type: 'volume', source: '', target: source, readonly: false };
    return {
      type: source.startsWith('/') || source.startsWith('.') || source.startsWith('$') ? 'bind' : 'volume',
      source,
      target,
      readonly: /(^|,)ro(,|$)/.test(options),
    };
  }
  const fields = new Map<string, string>();
  let readonly = false;
  for (const part of spec.split(',')) {
    const [key = '', ...rest] = part.split('=');
    const name = key.trim().toLowerCase();
    if (rest.length === 0 && (name === 'readonly' || name === 'ro')) readonly = true;
    else fields.set(name, rest.join('=').trim());
  }
  if (fields.get('readonly') === 'true' || fields.get('ro') === 'true') readonly = true;
  return {
    type: fields.get('type') ?? 'volume',
    source: fields.get('source') ?? fields.get('src') ?? '',
    target: fields.get('target') ?? fields.get('destination') ?? fields.get('dst') ?? '',
    readonly,
  };
}

function mountFromObject(value: unknown): { type: string; source: string; target: string; readonly: boolean } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  return {
    type: typeof record.type === 'string' ? record.type : 'volume',
    source: typeof record.source === 'string' ? record.source : '',
    target: typeof record.target === 'string' ? record.target : '',
    readonly: record.readonly === true,
  };
}

/** Splits `--flag=value` and `--flag value` forms; returns the flag, its value and how many entries it used. */
function readFlag(
  args: readonly string[],
  index: number,
  takesValue: (flag: string) => boolean,
): { flag: string; value?: string; used: number } {
  const arg = args[index]!;
  const eq = arg.indexOf('=');
  if (arg.startsWith('--') && eq > 2) return { flag: arg.slice(0, eq), value: arg.slice(eq + 1), used: 1 };
  // `-eFOO=bar`, `-v/a:/b`: short flags with the value attached.
  if (/^-[a-zA-Z]./.test(arg) && !arg.startsWith('--') && takesValue(arg.slice(0, 2)))
    return { flag: arg.slice(0, 2), value: arg.slice(2), used: 1 };
  if (takesValue(arg)) return { flag: arg, value: args[index + 1], used: 2 };
  return { flag: arg, used: 1 };
}

function takesValueAnywhere(flag: string): boolean {
  return (
    SAFE_RUN_FLAGS[flag] === true ||
    flag in LIMIT_FLAGS ||
    NETWORK_FLAGS.has(flag) ||
    NAMESPACE_FLAGS.has(flag) ||
    MOUNT_FLAGS.has(flag) ||
    flag === '--cap-add' ||
    (flag in REFUSED_FLAGS && !['-P', '--publish-all', '--oom-kill-disable'].includes(flag))
  );
}

class Checker {
  readonly refusals: SandboxWidening[] = [];
  readonly allowed: SandboxWidening[] = [];
  readonly notes: string[] = [];
  readonly runArgs: string[] = [];
  readonly mounts: RequestedMount[] = [];
  readonly limits: DevcontainerCheck['limits'] = {};
  hostNetwork = false;

  constructor(private readonly allow: DevcontainerAllowances) {}

  widen(where: string, reason: string, permitted: boolean, allowedBy?: keyof DevcontainerAllowances): boolean {
    (permitted ? this.allowed : this.refusals).push({ where, reason, ...(allowedBy ? { allowedBy } : {}) });
    return permitted;
  }

  privileged(where: string): boolean {
    return this.widen(
      where,
      'runs the container with every capability and every host device',
      this.allow.allowPrivileged === true,
      'allowPrivileged',
    );
  }

  capability(where: string, name: string): boolean {
    return this.widen(
      where,
      `adds the Linux capability ${normaliseCapability(name)}`,
      isCapabilityAllowed(name, this.allow),
      'allowCapAdd',
    );
  }

  mount(where: string, mount: { type: string; source: string; target: string; readonly: boolean }): boolean {
    if (mount.type === 'tmpfs' || (mount.type === 'volume' && mount.source === '')) {
      this.mounts.push({ where, ...mount });
      return true;
    }
    const socket = isEngineSocket(mount.source);
    const reason = socket
      ? `mounts the container engine's socket (${mount.source}), which controls the host`
      : mount.type === 'volume'
        ? `mounts the named volume ${mount.source}, shared with other containers`
        : `mounts ${mount.source || 'a host path'} from the host`;
    const permitted = isMountSourceAllowed(mount.source, this.allow);
    if (this.widen(where, reason, permitted, 'allowMounts')) this.mounts.push({ where, ...mount });
    return permitted;
  }

  limit(flag: string, value: string | undefined, where: string): void {
    const key = LIMIT_FLAGS[flag]!;
    const parsed = value === undefined ? undefined : key === 'memoryBytes' ? parseMemory(value) : Number(value);
    if (parsed === undefined || !Number.isFinite(parsed) || parsed <= 0) {
      this.refusals.push({
        where,
        reason: `has a value the sandbox does not understand (${value ?? 'missing'}); use a number such as ${key === 'memoryBytes' ? '2g' : '2'}`,
      });
      return;
    }
    this.limits[key] = Math.min(this.limits[key] ?? Infinity, parsed);
  }

  checkRunArgs(args: readonly string[]): void {
    for (let index = 0; index < args.length;) {
      const { flag, value, used } = readFlag(args, index, takesValueAnywhere);
      const where = `runArgs: ${args.slice(index, index + used).join(' ')}`;
      const start = index;
      const keep = () => this.runArgs.push(...args.slice(start, start + used));
      index += used;
      if (!flag.startsWith('-')) {
        this.refusals.push({ where, reason: `is not a flag; runArgs must be flags such as --init or --env=NAME=value` });
      } else if (takesValueAnywhere(flag) && value === undefined) {
        this.refusals.push({ where, reason: `needs a value` });
      } else if (flag === '--privileged') {
        if (value === 'false') continue;
        if (this.privileged(where)) keep();
      } else if (NETWORK_FLAGS.has(flag)) {
        if (value === 'host')
          this.hostNetwork = this.widen(where, "shares the host's network", this.allow.allowHostNetwork === true, 'allowHostNetwork');
        else if (value === 'none') continue;
        else if (value?.startsWith('container:')) this.refusals.push({ where, reason: `joins another container's network` });
        else this.notes.push(`${where} is ignored: the sandbox sets the network (none for tasks, policy's preparation network)`);
      } else if (NAMESPACE_FLAGS.has(flag)) {
        if (value === 'host') this.refusals.push({ where, reason: `shares the host's ${flag.slice(2)} namespace` });
        else if (value?.startsWith('container:') || value?.startsWith('ns:'))
          this.refusals.push({ where, reason: `joins another ${flag.slice(2)} namespace` });
        else keep();
      } else if (flag === '--cap-add') {
        if (this.capability(where, value!)) keep();
      } else if (MOUNT_FLAGS.has(flag)) {
        if (this.mount(where, parseMountSpec(value!, flag !== '--mount'))) keep();
      } else if (flag in LIMIT_FLAGS) {
        this.limit(flag, value, where);
      } else if (flag === '--security-opt' && /^no-new-privileges(?:[:=]true)?$/.test(value ?? '')) {
        keep();
      } else if (flag in REFUSED_FLAGS) {
        this.refusals.push({ where, reason: REFUSED_FLAGS[flag]! });
      } else if (flag in SAFE_RUN_FLAGS) {
        keep();
      } else {
        this.refusals.push({
          where,
          reason: `is not one of the run flags the sandbox passes on (${Object.keys(SAFE_RUN_FLAGS)
            .filter((f) => f.startsWith('--'))
            .join(', ')})`,
        });
      }
    }
  }

  checkBuildOptions(args: readonly string[]): void {
    for (let index = 0; index < args.length;) {
      const { flag, value, used } = readFlag(args, index, (f) => BUILD_SAFE_FLAGS[f] === true || NETWORK_FLAGS.has(f));
      const where = `build.options: ${args.slice(index, index + used).join(' ')}`;
      index += used;
      if (NETWORK_FLAGS.has(flag)) {
        if (value === 'host') this.widen(where, "builds with the host's network", this.allow.allowHostNetwork === true, 'allowHostNetwork');
        else this.notes.push(`${where} is ignored: the image builds with policy's preparation network`);
      } else if (!(flag in BUILD_SAFE_FLAGS)) {
        this.refusals.push({
          where,
          reason: `is not one of the build flags the sandbox passes on (${Object.keys(BUILD_SAFE_FLAGS)
            .filter((f) => f.startsWith('--'))
            .join(', ')}); --secret and --ssh would hand host secrets to the build`,
        });
      }
    }
  }
}

/** Every `${localEnv:NAME}` / `${env:NAME}` the configuration reads from the host. */
function hostEnvironmentReads(value: unknown, path: string, found: { where: string; name: string }[]): void {
  if (typeof value === 'string') {
    for (const match of value.matchAll(/\$\{(?:localEnv|env):([^}:]*)/g)) found.push({ where: path, name: match[1]! });
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => hostEnvironmentReads(item, `${path}[${index}]`, found));
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) hostEnvironmentReads(item, path ? `${path}.${key}` : key, found);
  }
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? value : undefined;
}

/**
 * Parses and checks a devcontainer.json. `fileName` is how the file is named
 * in messages (e.g. `.devcontainer/devcontainer.json at abc1234`).
 */
export function checkDevcontainer(text: string, fileName: string, allow: DevcontainerAllowances = {}): DevcontainerCheckResult {
  const errors: ParseError[] = [];
  const config: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0]!;
    const { line, column } = offsetToPosition(text, first.offset);
    const problem = printParseErrorCode(first.error)
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toLowerCase();
    return {
      kind: 'syntaxError',
      fileName,
      line,
      column,
      message: `${fileName} has a syntax error at line ${line}, column ${column}: ${problem}. Fix the file (JSON with comments) in the base commit and run the tasks again.`,
    };
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    return {
      kind: 'syntaxError',
      fileName,
      line: 1,
      column: 1,
      message: `${fileName} must contain one JSON object ({ "image": ... }); it contains ${Array.isArray(config) ? 'an array' : String(config)}.`,
    };
  }
  const record = config as Record<string, unknown>;
  const check = new Checker(allow);

  // dockerComposeFile: the Compose files are checked service by service in composeCheck.ts (they are read from the base commit).
  if (record.initializeCommand !== undefined) {
    check.widen(
      'initializeCommand',
      'runs a command on the host, outside every container',
      allow.allowInitializeCommand === true,
      'allowInitializeCommand',
    );
  }
  if (record.privileged === true) check.privileged('privileged');
  if (record.capAdd !== undefined) {
    const caps = stringArray(record.capAdd);
    if (!caps) check.refusals.push({ where: 'capAdd', reason: 'must be a list of capability names' });
    else caps.forEach((cap, index) => check.capability(`capAdd[${index}]`, cap));
  }
  if (record.securityOpt !== undefined) {
    const options = stringArray(record.securityOpt) ?? [String(record.securityOpt)];
    options.forEach((option, index) => {
      if (!/^no-new-privileges(?:[:=]true)?$/.test(option))
        check.refusals.push({ where: `securityOpt[${index}]: ${option}`, reason: REFUSED_FLAGS['--security-opt']! });
    });
  }
  if (record.mounts !== undefined) {
    if (!Array.isArray(record.mounts)) check.refusals.push({ where: 'mounts', reason: 'must be a list of mounts' });
    else
      record.mounts.forEach((mount, index) => {
        const parsed = typeof mount === 'string' ? parseMountSpec(mount, false) : mountFromObject(mount);
        if (!parsed) check.refusals.push({ where: `mounts[${index}]`, reason: 'is neither a mount string nor a mount object' });
        else check.mount(`mounts[${index}]`, parsed);
      });
  }
  let workspaceFolder = typeof record.workspaceFolder === 'string' ? record.workspaceFolder : undefined;
  if (record.workspaceMount !== undefined) {
    const mount = typeof record.workspaceMount === 'string' ? parseMountSpec(record.workspaceMount, false) : undefined;
    const source = mount?.source.replace(/\/+$/, '');
    if (!mount || !(source === '${localWorkspaceFolder}' || source === '${containerWorkspaceFolder}') || mount.type !== 'bind') {
      check.refusals.push({
        where: `workspaceMount: ${String(record.workspaceMount)}`,
        reason:
          "mounts something other than the change's worktree; the sandbox mounts only the worktree (use source=${localWorkspaceFolder},type=bind or leave workspaceMount out)",
      });
    } else {
      workspaceFolder ??= mount.target || undefined;
      check.notes.push('workspaceMount is replaced by the sandbox’s own mount of the change’s worktree at the same target');
    }
  }
  if (record.runArgs !== undefined) {
    const args = stringArray(record.runArgs);
    if (!args) check.refusals.push({ where: 'runArgs', reason: 'must be a list of strings' });
    else check.checkRunArgs(args);
  }
  const build = record.build as Record<string, unknown> | undefined;
  if (build !== undefined && build.options !== undefined) {
    const options = stringArray(build.options);
    if (!options) check.refusals.push({ where: 'build.options', reason: 'must be a list of strings' });
    else check.checkBuildOptions(options);
  }
  const gpu = (record.hostRequirements as Record<string, unknown> | undefined)?.gpu;
  if (gpu !== undefined && gpu !== false)
    check.refusals.push({ where: 'hostRequirements.gpu', reason: 'gives the container the host GPUs' });
  if (record.appPort !== undefined) check.notes.push('appPort is ignored: the sandbox publishes no ports');
  if (record.forwardPorts !== undefined) check.notes.push('forwardPorts is ignored: the sandbox publishes no ports');

  const envReads: { where: string; name: string }[] = [];
  // customizations are read by editors, not passed to the container.
  hostEnvironmentReads({ ...record, customizations: undefined }, '', envReads);
  for (const read of envReads) {
    // Mounts already refused above would name the same variable twice.
    if (check.refusals.some((refusal) => refusal.where.startsWith(read.where))) continue;
    check.refusals.push({ where: read.where, reason: `reads the host environment variable ${read.name} into the sandbox` });
  }

  return {
    kind: 'checked',
    fileName,
    config: record,
    refusals: check.refusals,
    allowed: check.allowed,
    notes: check.notes,
    hostNetwork: check.hostNetwork,
    runArgs: check.runArgs,
    limits: check.limits,
    mounts: check.mounts,
    ...(workspaceFolder ? { workspaceFolder } : {}),
  };
}

/** One message for the user listing every refusal, saying what to do. */
export function describeRefusals(check: DevcontainerCheck): string {
  const lines = check.refusals.map(
    (refusal) => `- ${refusal.where}: ${refusal.reason}${refusal.allowedBy ? ` (policy can allow it with ${refusal.allowedBy})` : ''}`,
  );
  return `${check.fileName} asks for more than the sandbox allows, so no container was started:\n${lines.join('\n')}\nRemove these settings from the devcontainer.json in the base commit, or ask the policy owner to allow them.`;
}
