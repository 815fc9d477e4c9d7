import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { posix } from 'node:path';
import {
  DESCRIPTIVE_FEATURE_FIELDS,
  featureReferences,
  isFeatureAllowed,
  isLocalFeatureId,
  type FeatureReference,
} from './devcontainerFeatures';
import { BUILD_FLAGS, describeArg, type EngineArg, parseEngineArgs, RUN_FLAGS } from './engineArgs';
import { checkMount, type MountSpec, mountObjectToFlag, parseMountFlag, parseVolumeFlag } from './mountCheck';

/**
 * Checks a repository's devcontainer.json before it decides anything about a
 * sandbox: whatever would widen the sandbox beyond "this worktree, no
 * network, the engine's default privileges" is refused with its reason,
 * unless policy allows that exact thing. The check covers the merged
 * configuration the dev containers CLI would create the container from:
 * the file itself and the metadata of every feature it names.
 */

/**
 * The exceptions policy may grant. Everything absent is refused.
 *
 * - `allowPrivileged`: `"privileged"` (any value the CLI reads as true) or `--privileged`.
 * - `allowHostNetwork`: `--network=host` / `--net host`; the container (and
 *   so its tasks) then shares the host's network.
 * - `allowCapAdd`: capability names (`NET_ADMIN`, with or without `CAP_`;
 *   `ALL` only when listed) that `capAdd` / `--cap-add` may add.
 * - `allowMounts`: host paths (picomatch globs, e.g. `/opt/cache/**`) or
 *   volume names that a mount in `mounts`, `-v`/`--volume`/`--mount` may use
 *   as its source. The docker socket is refused unless listed exactly.
 * - `allowFeatures`: registry features (ids or globs, e.g.
 *   `ghcr.io/devcontainers/features/node`) that may be used although their
 *   metadata cannot be read offline; the created container is still
 *   inspected before anything of the repository runs in it.
 * - `allowInitializeCommand`: `initializeCommand`, which runs on the host.
 */
export interface DevcontainerAllowances {
  allowPrivileged?: boolean;
  allowHostNetwork?: boolean;
  allowCapAdd?: string[];
  allowMounts?: string[];
  allowFeatures?: string[];
  allowInitializeCommand?: boolean;
}

/** What can allow a widening: an allowance, or the preparation network (a registry pull). */
type Allowance = keyof DevcontainerAllowances | 'preparationNetwork';

/** The policy setting behind each allowance, as a policy file writes it; undefined: no policy setting allows it. */
const POLICY_SETTINGS: Record<Allowance, string | undefined> = {
  allowPrivileged: 'lanes.sandbox.devcontainer.allowPrivileged',
  allowHostNetwork: 'lanes.sandbox.devcontainer.allowHostNetwork',
  allowCapAdd: 'lanes.sandbox.devcontainer.allowedCapabilities',
  allowMounts: 'lanes.sandbox.devcontainer.allowedMounts',
  allowFeatures: 'lanes.sandbox.devcontainer.allowedFeatures',
  allowInitializeCommand: undefined,
  preparationNetwork: 'lanes.sandbox.network.preparation',
};

interface SandboxWidening {
  /** The exact field, e.g. `privileged`, `runArgs[2]: -v=/a:/b` or `features["./x"] (devcontainer-feature.json): capAdd[0]`. */
  where: string;
  /** Why it widens the sandbox. */
  reason: string;
  /** What would allow it, when something can. */
  allowedBy?: Allowance;
}

/** A bind or volume mount the configuration asks for, allowed by policy. */
interface RequestedMount extends MountSpec {
  where: string;
}

/** What the check needs besides the file: where it is, its local features' metadata, whether a registry is reachable. */
export interface DevcontainerContext {
  /** Repository path of the devcontainer.json (local features are folders next to it). Default `.devcontainer/devcontainer.json`. */
  configPath?: string;
  /** devcontainer-feature.json text per key of `features`, for the features the caller could read (local ones from the base commit). */
  features?: Readonly<Record<string, string | undefined>>;
  /** Policy gives preparation a network, so a registry pull (`--pull=always`, `cacheFrom`) reaches out only when allowed. */
  pullAllowed?: boolean;
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
  /** Run arguments that survive the check, each as `--flag=value`, without network and limit flags (the sandbox sets those). */
  runArgs: string[];
  /** Build options that survive the check, each as `--flag=value`, without network flags. */
  buildOptions: string[];
  /** The smallest CPU, memory and process limits the configuration asks for, if any. */
  limits: { cpus?: number; memoryBytes?: number; pids?: number };
  /** Mounts the configuration asks for that policy allows. */
  mounts: RequestedMount[];
  /** The features the configuration uses (local ones with their folder in the repository). */
  features: FeatureReference[];
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

/** Run flags that narrow the sandbox or do not touch isolation. */
const SAFE_RUN_FLAGS = new Set([
  '--init',
  '--rm',
  '--tty',
  '--interactive',
  '--read-only',
  '--read-only-tmpfs',
  '--no-healthcheck',
  '--quiet',
  '--hostname',
  '--user',
  '--workdir',
  '--tmpfs',
  '--shm-size',
  '--ulimit',
  '--add-host',
  '--cap-drop',
  '--dns',
  '--dns-search',
  '--dns-option',
  '--entrypoint',
  '--stop-signal',
  '--stop-timeout',
  '--platform',
  '--group-add',
  '--memory-swap',
  '--memory-reservation',
  '--cpu-shares',
  '--cpuset-cpus',
]);

/** Flags the sandbox sets itself; the smaller limit wins. */
const LIMIT_FLAGS: Record<string, 'cpus' | 'memoryBytes' | 'pids'> = {
  '--cpus': 'cpus',
  '--memory': 'memoryBytes',
  '--pids-limit': 'pids',
};

const NETWORK_FLAGS = new Set(['--network', '--net']);
const NAMESPACE_FLAGS = new Set(['--pid', '--ipc', '--uts', '--cgroupns', '--userns']);

/** Flags refused whatever their value, with the reason. */
const REFUSED_FLAGS: Record<string, string> = {
  '--device': 'gives the container a host device',
  '--gpus': 'gives the container the host GPUs',
  '--device-cgroup-rule': 'lets the container use host devices',
  '--security-opt': 'weakens the seccomp, AppArmor or SELinux confinement (only no-new-privileges is accepted)',
  '--volumes-from': 'mounts another container’s volumes',
  '--env-file': 'reads a file on the host into the container',
  '--env-host': "copies the host's whole environment into the container",
  '--label-file': 'reads a file on the host',
  '--cidfile': 'writes a file on the host',
  '--rootfs': 'runs a host folder as the container’s root file system',
  '--init-path': 'runs a host file as the container’s init',
  '--secret': "hands one of the engine's secrets to the container",
  '--publish': 'publishes container ports on the host',
  '--publish-all': 'publishes container ports on the host',
  '--expose': 'publishes container ports',
  '--runtime': 'chooses another container runtime',
  '--name': 'fixes the container name; the sandbox names and finds containers itself',
  '--pod': 'joins a pod, whose namespaces the sandbox does not control',
  '--sysctl': 'changes kernel parameters',
  '--oom-kill-disable': 'lets the container exhaust the host memory',
  '--cgroup-parent': 'moves the container out of the engine’s cgroup',
};

const BUILD_SAFE_FLAGS = new Set(['--label', '--target', '--platform', '--progress', '--add-host', '--no-cache', '--quiet']);

const BUILD_REFUSED_FLAGS: Record<string, string> = {
  '--secret': 'hands a host secret to the build',
  '--ssh': "hands the host's SSH agent or keys to the build",
  '--volume': 'mounts a host folder into the build',
  '--build-context': 'adds a host folder to the build',
  '--file': 'builds from another Dockerfile than the one the sandbox read from the base commit',
  '--cache-from': 'pulls a cache image from a registry',
  '--cache-to': 'writes a cache to a registry or a host folder',
  '--iidfile': 'writes a file on the host',
  '--output': 'writes the image to the host',
  '--tag': 'names the image; the sandbox names the images it builds',
};

/** Labels the sandbox and the dev containers CLI read back: a configuration must not set them. */
const OWN_LABEL = /^(?:dev\.agentlanes\.|devcontainer\.)/;

function offsetToPosition(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/** Memory sizes as the engines take them: `512m`, `2g`, `1073741824`, `1.5GB`. */
export function parseMemory(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([bkmg])?b?$/i.exec(value.trim());
  if (!match) return undefined;
  const unit = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? 'b').toLowerCase() as 'b' | 'k' | 'm' | 'g'];
  return Math.floor(Number(match[1]) * unit);
}

export function isCapabilityAllowed(name: string, allow: DevcontainerAllowances): boolean {
  const wanted = normaliseCapability(name);
  return (allow.allowCapAdd ?? []).some((cap) => normaliseCapability(cap) === wanted);
}

function normaliseCapability(name: string): string {
  return name.trim().toUpperCase().replace(/^CAP_/, '');
}

/** `-v /a:/b:ro` (short syntax) or `type=bind,source=/a,target=/b,readonly` (`--mount` syntax) into its parts. */
export function parseMountSpec(spec: string, shortForm: boolean): MountSpec {
  return shortForm ? parseVolumeFlag(spec) : parseMountFlag(spec);
}

/** A flag as the sandbox passes it on: one argument, `--flag=value` (or `--flag` for a true boolean). */
function canonical(token: EngineArg): string {
  return token.value === undefined || token.value === 'true' ? token.flag : `${token.flag}=${token.value}`;
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? value : undefined;
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

/**
 * A container path the sandbox can write into its own `--mount` of the
 * worktree: absolute, no commas, quotes or variables except
 * `${localWorkspaceFolderBasename}` (the sandbox puts in the worktree's folder name).
 */
function isContainerPathForMount(path: string): boolean {
  return /^\/[^,"'\n\\$]*$/.test(path.replaceAll('${localWorkspaceFolderBasename}', 'folder'));
}

/** A path in the repository (relative to the configuration's folder) that stays inside it, or why not. */
function repositoryPathProblem(value: unknown, configFolder: string): string | undefined {
  if (typeof value !== 'string') return 'must be a path (a string)';
  if (value.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(value) || value.startsWith('\\'))
    return `is the absolute path ${value}; the sandbox builds only from the change's worktree, so use a path relative to the devcontainer.json`;
  const inRepository = posix.normalize(posix.join(configFolder || '.', value.replace(/\\/g, '/')));
  if (inRepository === '..' || inRepository.startsWith('../'))
    return `is ${value}, which leaves the repository (${inRepository}); the build could read host files outside the change's worktree`;
  return undefined;
}

class Checker {
  readonly refusals: SandboxWidening[] = [];
  readonly allowed: SandboxWidening[] = [];
  readonly notes: string[] = [];
  readonly runArgs: string[] = [];
  readonly buildOptions: string[] = [];
  readonly mounts: RequestedMount[] = [];
  readonly limits: DevcontainerCheck['limits'] = {};
  hostNetwork = false;

  constructor(
    private readonly allow: DevcontainerAllowances,
    private readonly context: DevcontainerContext,
  ) {}

  refuse(where: string, reason: string, allowedBy?: Allowance): void {
    this.refusals.push({ where, reason, ...(allowedBy ? { allowedBy } : {}) });
  }

  widen(where: string, reason: string, permitted: boolean, allowedBy: Allowance): boolean {
    (permitted ? this.allowed : this.refusals).push({ where, reason, allowedBy });
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

  /** One capability entry; the engines split `A,B` into two. */
  capabilities(where: string, value: string): boolean {
    let permitted = true;
    for (const name of value.split(',').filter((part) => part.trim() !== ''))
      permitted =
        this.widen(where, `adds the Linux capability ${normaliseCapability(name)}`, isCapabilityAllowed(name, this.allow), 'allowCapAdd') &&
        permitted;
    return permitted;
  }

  mount(where: string, mount: MountSpec): boolean {
    const verdict = checkMount(mount, this.allow);
    if (verdict.kind === 'refused') {
      this.refuse(where, verdict.reason);
      return false;
    }
    if (verdict.kind === 'widens' && !this.widen(where, verdict.reason, verdict.permitted, 'allowMounts')) return false;
    this.mounts.push({ where, ...mount });
    return true;
  }

  /** `mounts` in devcontainer.json or a feature: `--mount` strings, or objects the CLI turns into them. */
  mountList(field: string, value: unknown): void {
    if (!Array.isArray(value)) {
      this.refuse(field, 'must be a list of mounts');
      return;
    }
    value.forEach((item, index) => {
      const where = `${field}[${index}]`;
      const spec = typeof item === 'string' ? item : mountObjectToFlag(item);
      if (spec === undefined) this.refuse(where, 'is neither a mount string nor a mount object');
      else this.mount(where, parseMountFlag(spec));
    });
  }

  capAddList(field: string, value: unknown): void {
    const caps = stringArray(value);
    if (!caps) this.refuse(field, 'must be a list of capability names');
    else caps.forEach((cap, index) => this.capabilities(`${field}[${index}]`, cap));
  }

  securityOptList(field: string, value: unknown): void {
    const options = stringArray(value) ?? [String(value)];
    options.forEach((option, index) => {
      if (!/^no-new-privileges(?:[:=]true)?$/.test(option)) this.refuse(`${field}[${index}]: ${option}`, REFUSED_FLAGS['--security-opt']!);
    });
  }

  /** A registry pull the engine would make from the host, whatever the container's network. */
  pull(where: string, what: string): boolean {
    return this.widen(
      where,
      `${what} from a registry; the engine does that from the host, and policy gives preparation no network (pull the image beforehand, or use --pull=never)`,
      this.context.pullAllowed === true,
      'preparationNetwork',
    );
  }

  limit(flag: string, value: string | undefined, where: string): void {
    const key = LIMIT_FLAGS[flag]!;
    const parsed = value === undefined ? undefined : key === 'memoryBytes' ? parseMemory(value) : Number(value);
    if (parsed === undefined || !Number.isFinite(parsed) || parsed <= 0) {
      this.refuse(
        where,
        `has a value the sandbox does not understand (${value ?? 'missing'}); use a number such as ${key === 'memoryBytes' ? '2g' : '2'}`,
      );
      return;
    }
    this.limits[key] = Math.min(this.limits[key] ?? Infinity, parsed);
  }

  checkRunArgs(args: readonly string[]): void {
    for (const token of parseEngineArgs(args, RUN_FLAGS)) {
      const where = describeArg('runArgs', token);
      const keep = () => this.runArgs.push(canonical(token));
      const { flag, value = '' } = token;
      if (token.problem) this.refuse(where, token.problem);
      else if (token.unknown)
        this.refuse(
          where,
          `is not one of the run flags the sandbox passes on (${[...SAFE_RUN_FLAGS, '--env', '--label', '--pull=never'].join(', ')})`,
        );
      else if (flag === '--privileged') {
        if (value !== 'false' && this.privileged(where)) keep();
      } else if (NETWORK_FLAGS.has(flag)) {
        if (value === 'host')
          this.hostNetwork = this.widen(where, "shares the host's network", this.allow.allowHostNetwork === true, 'allowHostNetwork');
        else if (value === 'none') continue;
        else if (/^(?:container|ns):/.test(value)) this.refuse(where, `joins another network namespace (${value})`);
        else this.notes.push(`${where} is ignored: the sandbox sets the network (none for tasks, policy's preparation network)`);
      } else if (NAMESPACE_FLAGS.has(flag)) {
        if (value === 'host') this.refuse(where, `shares the host's ${flag.slice(2)} namespace`);
        else if (/^(?:container|ns|pod):/.test(value)) this.refuse(where, `joins another ${flag.slice(2)} namespace (${value})`);
        else keep();
      } else if (flag === '--cap-add') {
        if (this.capabilities(where, value)) keep();
      } else if (flag === '--volume') {
        if (this.mount(where, parseVolumeFlag(value))) keep();
      } else if (flag === '--mount') {
        if (this.mount(where, parseMountFlag(value))) keep();
      } else if (flag in LIMIT_FLAGS) {
        this.limit(flag, token.value, where);
      } else if (flag === '--security-opt' && /^no-new-privileges(?:[:=]true)?$/.test(value)) {
        keep();
      } else if (flag === '--env') {
        // `-e NAME` and `-e 'NAME*'` copy the host's variables (the CLI's environment holds the user's tokens).
        if (value.includes('=')) keep();
        else
          this.refuse(
            where,
            `copies the host environment variable${value.includes('*') ? 's' : ''} ${value} into the container; give a value (NAME=value)`,
          );
      } else if (flag === '--label') {
        if (OWN_LABEL.test(value))
          this.refuse(where, 'sets a label the sandbox or the dev containers CLI reads back to find and describe its containers');
        else keep();
      } else if (flag === '--pull') {
        if (token.value === undefined) this.refuse(where, 'has no value; the engines read a bare --pull differently: write --pull=never');
        else if (value === 'never' || value === 'missing') keep();
        else if (['always', 'newer', 'true'].includes(value)) {
          if (this.pull(where, 'pulls the image')) keep();
        } else this.refuse(where, `has a value the sandbox does not know (${value}); use --pull=never`);
      } else if (flag in REFUSED_FLAGS) {
        this.refuse(where, REFUSED_FLAGS[flag]!);
      } else if (SAFE_RUN_FLAGS.has(flag)) {
        keep();
      } else {
        this.refuse(
          where,
          `is not one of the run flags the sandbox passes on (${[...SAFE_RUN_FLAGS, '--env', '--label', '--pull=never'].join(', ')})`,
        );
      }
    }
  }

  checkBuildOptions(args: readonly string[]): void {
    for (const token of parseEngineArgs(args, BUILD_FLAGS)) {
      const where = describeArg('build.options', token);
      const { flag, value = '' } = token;
      if (token.problem) this.refuse(where, token.problem);
      else if (NETWORK_FLAGS.has(flag)) {
        if (value === 'host') this.widen(where, "builds with the host's network", this.allow.allowHostNetwork === true, 'allowHostNetwork');
        else this.notes.push(`${where} is ignored: the image builds with policy's preparation network`);
      } else if (flag === '--build-arg') {
        if (value.includes('=')) this.buildOptions.push(canonical(token));
        else this.refuse(where, `copies the host environment variable ${value} into the build; give a value (NAME=value)`);
      } else if (flag === '--pull') {
        if (['never', 'missing', 'false'].includes(value)) this.buildOptions.push(canonical(token));
        else if (this.pull(where, 'pulls the base image')) this.buildOptions.push(canonical(token));
      } else if (flag === '--label' && OWN_LABEL.test(value)) {
        this.refuse(where, 'sets a label the sandbox or the dev containers CLI reads back');
      } else if (!token.unknown && BUILD_SAFE_FLAGS.has(flag)) {
        this.buildOptions.push(canonical(token));
      } else {
        this.refuse(
          where,
          BUILD_REFUSED_FLAGS[flag] ??
            `is not one of the build flags the sandbox passes on (--build-arg NAME=value, ${[...BUILD_SAFE_FLAGS].join(', ')}, --pull=never)`,
        );
      }
    }
  }

  checkBuild(build: unknown, configFolder: string): void {
    if (typeof build !== 'object' || build === null || Array.isArray(build)) {
      this.refuse('build', 'must be an object ({ "dockerfile": ..., "context": ... })');
      return;
    }
    const record = build as Record<string, unknown>;
    for (const field of ['dockerfile', 'context'] as const) {
      if (record[field] === undefined) continue;
      const problem = repositoryPathProblem(record[field], configFolder);
      if (problem) this.refuse(`build.${field}`, problem);
    }
    if (record.options !== undefined) {
      const options = stringArray(record.options);
      if (!options) this.refuse('build.options', 'must be a list of strings');
      else this.checkBuildOptions(options);
    }
    const cacheFrom = record.cacheFrom;
    if (cacheFrom !== undefined && (typeof cacheFrom === 'string' ? cacheFrom !== '' : !Array.isArray(cacheFrom) || cacheFrom.length > 0))
      this.pull('build.cacheFrom', 'pulls cache images');
  }

  checkFeatures(config: Record<string, unknown>, configPath: string): FeatureReference[] {
    const features = config.features;
    if (features === undefined) return [];
    if (typeof features !== 'object' || features === null || Array.isArray(features)) {
      this.refuse('features', 'must be an object of feature ids and their options');
      return [];
    }
    const references = featureReferences(config, configPath);
    for (const reference of references) {
      const where = `features[${JSON.stringify(reference.id)}]`;
      const metadata = this.context.features?.[reference.id];
      if (isLocalFeatureId(reference.id) && !reference.local) {
        this.refuse(
          where,
          `names a folder outside ${posix.dirname(configPath)}; local features must be folders next to the devcontainer.json`,
        );
      } else if (metadata !== undefined) {
        this.checkFeatureMetadata(where, metadata);
      } else if (reference.local) {
        this.refuse(
          where,
          `has no devcontainer-feature.json at ${reference.local} in the base commit, so what it asks for cannot be checked`,
        );
      } else {
        this.widen(
          where,
          'comes from a registry, and its metadata (privileges, mounts, security options) cannot be read without the network, so it cannot be checked before the container is created; copy it into the repository as a local feature (./features/<id>), or ask the policy owner to allow it',
          isFeatureAllowed(reference.id, this.allow.allowFeatures),
          'allowFeatures',
        );
      }
    }
    return references;
  }

  /** A feature's devcontainer-feature.json, merged into the container the way the CLI merges it. */
  checkFeatureMetadata(featureWhere: string, text: string): void {
    const errors: ParseError[] = [];
    const metadata: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
    if (errors.length > 0 || typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      this.refuse(featureWhere, 'has a devcontainer-feature.json that is not a JSON object, so what it asks for cannot be checked');
      return;
    }
    this.checkMetadataEntry(metadata as Record<string, unknown>, (field) => `${featureWhere} (devcontainer-feature.json): ${field}`);
  }

  /** One metadata entry (a feature's, or one of an image's `devcontainer.metadata` label), as the CLI merges it into the container. */
  checkMetadataEntry(record: Record<string, unknown>, where: (field: string) => string): void {
    if (record.privileged) this.privileged(where('privileged'));
    if (record.capAdd !== undefined) this.capAddList(where('capAdd'), record.capAdd);
    if (record.mounts !== undefined) this.mountList(where('mounts'), record.mounts);
    if (record.securityOpt !== undefined) this.securityOptList(where('securityOpt'), record.securityOpt);
    if (typeof record.dependsOn === 'object' && record.dependsOn !== null) {
      for (const id of Object.keys(record.dependsOn))
        this.widen(
          where(`dependsOn[${JSON.stringify(id)}]`),
          'installs another feature from a registry, whose metadata cannot be read without the network',
          isFeatureAllowed(id, this.allow.allowFeatures),
          'allowFeatures',
        );
    }
    if (typeof record.entrypoint === 'string')
      this.notes.push(`${where('entrypoint')} runs ${record.entrypoint} in the container when it starts`);
    const reads: { where: string; name: string }[] = [];
    const checked = Object.fromEntries(Object.entries(record).filter(([key]) => !DESCRIPTIVE_FEATURE_FIELDS.has(key)));
    hostEnvironmentReads(checked, '', reads);
    for (const read of reads) this.refuse(where(read.where), `reads the host environment variable ${read.name} into the sandbox`);
  }
}

/**
 * Parses and checks a devcontainer.json. `fileName` is how the file is named
 * in messages (e.g. `.devcontainer/devcontainer.json at abc1234`).
 */
export function checkDevcontainer(
  text: string,
  fileName: string,
  allow: DevcontainerAllowances = {},
  context: DevcontainerContext = {},
): DevcontainerCheckResult {
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
  const configPath = context.configPath ?? '.devcontainer/devcontainer.json';
  const configFolder = posix.dirname(configPath) === '.' ? '' : posix.dirname(configPath);
  const check = new Checker(allow, context);

  // dockerComposeFile: the Compose files are checked service by service in composeCheck.ts (they are read from the base commit).
  if (record.initializeCommand !== undefined) {
    check.widen(
      'initializeCommand',
      'runs a command on the host, outside every container',
      allow.allowInitializeCommand === true,
      'allowInitializeCommand',
    );
  }
  // The CLI tests truthiness: "true", 1 and even "false" make the container privileged.
  if (record.privileged) check.privileged('privileged');
  if (record.capAdd !== undefined) check.capAddList('capAdd', record.capAdd);
  if (record.securityOpt !== undefined) check.securityOptList('securityOpt', record.securityOpt);
  if (record.mounts !== undefined) check.mountList('mounts', record.mounts);
  let workspaceFolder = typeof record.workspaceFolder === 'string' ? record.workspaceFolder : undefined;
  if (record.workspaceMount !== undefined) {
    const mount = typeof record.workspaceMount === 'string' ? parseMountFlag(record.workspaceMount) : undefined;
    const source = mount?.source.replace(/\/+$/, '');
    if (
      !mount ||
      mount.problem ||
      !(source === '${localWorkspaceFolder}' || source === '${containerWorkspaceFolder}') ||
      mount.type !== 'bind'
    ) {
      check.refuse(
        `workspaceMount: ${String(record.workspaceMount)}`,
        "mounts something other than the change's worktree; the sandbox mounts only the worktree (use source=${localWorkspaceFolder},type=bind or leave workspaceMount out)",
      );
    } else {
      workspaceFolder ??= mount.target || undefined;
      check.notes.push('workspaceMount is replaced by the sandbox’s own mount of the change’s worktree at the same target');
    }
  }
  if (
    record.workspaceFolder !== undefined &&
    (typeof record.workspaceFolder !== 'string' || !isContainerPathForMount(record.workspaceFolder))
  ) {
    check.refuse(
      'workspaceFolder',
      'must be an absolute container path without commas, quotes or variables: the sandbox writes it into its own mount of the worktree',
    );
    workspaceFolder = undefined;
  } else if (workspaceFolder !== undefined && !isContainerPathForMount(workspaceFolder)) {
    check.refuse(
      'workspaceMount',
      'has a target the sandbox cannot write into its own mount (not absolute, or with commas, quotes or variables)',
    );
    workspaceFolder = undefined;
  }
  if (record.runArgs !== undefined) {
    const args = stringArray(record.runArgs);
    if (!args) check.refuse('runArgs', 'must be a list of strings');
    else check.checkRunArgs(args);
  }
  if (record.build !== undefined) check.checkBuild(record.build, configFolder);
  const features = check.checkFeatures(record, configPath);
  const gpu = (record.hostRequirements as Record<string, unknown> | undefined)?.gpu;
  if (gpu !== undefined && gpu !== false) check.refuse('hostRequirements.gpu', 'gives the container the host GPUs');
  if (record.appPort !== undefined) check.notes.push('appPort is ignored: the sandbox publishes no ports');
  if (record.forwardPorts !== undefined) check.notes.push('forwardPorts is ignored: the sandbox publishes no ports');

  const envReads: { where: string; name: string }[] = [];
  // customizations are read by editors, not passed to the container.
  hostEnvironmentReads({ ...record, customizations: undefined }, '', envReads);
  for (const read of envReads) {
    // Settings already refused above would name the same variable twice.
    if (check.refusals.some((refusal) => refusal.where.startsWith(read.where))) continue;
    check.refuse(read.where, `reads the host environment variable ${read.name} into the sandbox`);
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
    buildOptions: check.buildOptions,
    limits: check.limits,
    mounts: check.mounts,
    features,
    ...(workspaceFolder ? { workspaceFolder } : {}),
  };
}

/** What would allow a refusal, in the words of a policy file. */
function allowanceHint(allowedBy: Allowance | undefined): string {
  const setting = allowedBy ? POLICY_SETTINGS[allowedBy] : undefined;
  return setting ? `policy can allow it: ${setting}` : 'no policy setting allows it';
}

function refusalLines(refusals: readonly SandboxWidening[]): string {
  return refusals.map((refusal) => `- ${refusal.where}: ${refusal.reason} (${allowanceHint(refusal.allowedBy)})`).join('\n');
}

/** One message for the user listing every refusal with its field and what would allow it, saying what to do. */
export function describeRefusals(check: DevcontainerCheck): string {
  return `${check.fileName} asks for more than the sandbox allows, so no container was started:\n${refusalLines(check.refusals)}\nRemove these settings from the devcontainer.json in the base commit, or ask the policy owner to allow them.`;
}

/**
 * An image's `devcontainer.metadata` label: the CLI merges it into the
 * container (privileges, mounts, an entrypoint that runs at start), so it is
 * checked before the container is created. Returns the message to show, or
 * undefined when the label asks for nothing policy does not allow.
 */
export function checkImageMetadata(label: string, image: string, allow: DevcontainerAllowances): string | undefined {
  const check = new Checker(allow, {});
  const where = (index: number) => (field: string) => `image ${image}: label devcontainer.metadata[${index}]: ${field}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(label);
  } catch {
    check.refuse(`image ${image}: label devcontainer.metadata`, 'is not JSON, so what it asks for cannot be checked');
  }
  const entries = Array.isArray(parsed) ? parsed : parsed === undefined ? [] : [parsed];
  entries.forEach((entry: unknown, index) => {
    if (typeof entry === 'object' && entry !== null && !Array.isArray(entry))
      check.checkMetadataEntry(entry as Record<string, unknown>, where(index));
    else check.refuse(where(index)(''), 'is not an object, so what it asks for cannot be checked');
  });
  if (check.refusals.length === 0) return undefined;
  return `The image ${image} asks, in its devcontainer.metadata label, for more than the sandbox allows, so no container was started:\n${refusalLines(check.refusals)}\nUse an image without these settings, or ask the policy owner to allow them.`;
}
