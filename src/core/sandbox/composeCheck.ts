import { posix } from 'node:path';
import { parseDocument } from 'yaml';
import { isCapabilityAllowed, parseMountSpec, type DevcontainerAllowances } from './devcontainerCheck';
import { isEngineSocket, isMountSourceAllowed } from './mountCheck';

/**
 * Checks a Docker Compose dev container (`dockerComposeFile` in
 * devcontainer.json) before anything starts: every service of every Compose
 * file gets the rules a single container gets (privileges, capabilities,
 * security options, devices, host mounts, the engine socket, host
 * namespaces and network), plus what only Compose can ask for (host files
 * read by `env_file`, `extends` and `include`, a build context outside the
 * worktree, host environment variables through interpolation). Each refusal
 * names the file, the service, the field and the policy setting that would
 * allow it (or that none does).
 *
 * Settings are allow-listed: a service key the sandbox does not know is
 * refused, not passed on. What passes is described in `ComposeService`, from
 * which the sandbox writes its own Compose file (composeConfig.ts).
 */

/** The policy file's name for each exception, so that a refusal says what to ask for. */
const POLICY_SETTING: Record<keyof DevcontainerAllowances, string> = {
  allowPrivileged: 'lanes.sandbox.devcontainer.allowPrivileged',
  allowHostNetwork: 'lanes.sandbox.devcontainer.allowHostNetwork',
  allowCapAdd: 'lanes.sandbox.devcontainer.allowedCapabilities',
  allowMounts: 'lanes.sandbox.devcontainer.allowedMounts',
  allowFeatures: 'lanes.sandbox.devcontainer.allowedFeatures',
  allowInitializeCommand: 'no policy setting yet (initializeCommand)',
};

interface ComposeWidening {
  /** e.g. `.devcontainer/docker-compose.yml: services.app.privileged`. */
  where: string;
  reason: string;
  allowedBy?: keyof DevcontainerAllowances;
}

/** A mount of a checked service, with paths the sandbox resolves itself. */
export type ComposeMount =
  /** The workspace: a bind of the repository root or a folder above it; the sandbox mounts the worktree instead. */
  | { kind: 'workspace'; levelsUp: number; target: string; readonly: boolean }
  /** A folder inside the repository (repository-relative); its real path must stay in the worktree. */
  | { kind: 'worktree'; source: string; target: string; readonly: boolean }
  /** A volume the Compose file declares for itself (private to the sandbox's project). */
  | { kind: 'projectVolume'; name: string; target: string; readonly: boolean }
  /** A host path or shared volume that policy allows. */
  | { kind: 'allowed'; type: 'bind' | 'volume'; source: string; target: string; readonly: boolean }
  | { kind: 'anonymous'; target: string }
  | { kind: 'tmpfs'; target: string };

interface ComposeService {
  name: string;
  /** Keys passed on unchanged (image, command, environment...). */
  settings: Record<string, unknown>;
  /** Repository-relative build context and Dockerfile (read from the base commit). */
  build?: { context: string; dockerfile: string; args?: unknown; target?: string };
  mounts: ComposeMount[];
  /** Repository-relative env files (read from the base commit). */
  envFiles: string[];
  /** The service asks for the host's network and policy allows it. */
  hostNetwork: boolean;
}

export interface ComposeCheck {
  /** Repository-relative Compose files, in order. */
  files: string[];
  /** devcontainer.json's `service`: the container tasks run in. */
  service: string;
  services: ComposeService[];
  /** Volumes the files declare for themselves (private to the project). */
  projectVolumes: string[];
  refusals: ComposeWidening[];
  allowed: ComposeWidening[];
  notes: string[];
}

/** A Compose file as the base commit has it; `text` undefined when it is not there. */
export interface ComposeSourceFile {
  path: string;
  text: string | undefined;
}

/** The repository-relative Compose file paths devcontainer.json names, or a problem. */
export function composeFilePaths(config: Record<string, unknown>, configPath: string): { paths: string[] } | { problem: string } {
  const value = config.dockerComposeFile;
  const names = typeof value === 'string' ? [value] : Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
  if (!names || names.length === 0) return { problem: 'must be a file name or a list of file names' };
  const folder = posix.dirname(configPath);
  const paths: string[] = [];
  for (const name of names as string[]) {
    if (name.includes('${')) return { problem: `${name} uses a variable; name the file literally` };
    if (posix.isAbsolute(name)) return { problem: `${name} is outside the repository; the Compose files must be in it` };
    const path = posix.normalize(posix.join(folder, name));
    if (path === '..' || path.startsWith('../')) return { problem: `${name} is outside the repository; the Compose files must be in it` };
    paths.push(path);
  }
  return { paths };
}

/** Service keys passed on as they are: they do not reach the host. */
const PASS_THROUGH = new Set([
  'image',
  'command',
  'entrypoint',
  'working_dir',
  'user',
  'healthcheck',
  'depends_on',
  'stop_signal',
  'stop_grace_period',
  'init',
  'tty',
  'stdin_open',
  'read_only',
  'shm_size',
  'tmpfs',
  'cap_drop',
  'ulimits',
  'hostname',
  'domainname',
  'platform',
  'extra_hosts',
  'dns',
  'dns_search',
  'group_add',
  'profiles',
  'cpus',
  'mem_limit',
  'mem_reservation',
  'cpu_shares',
  'cpuset',
  'pids_limit',
]);

/** Keys the sandbox sets itself or does without; dropped with a note. */
const IGNORED: Record<string, string> = {
  container_name: 'the sandbox names its containers itself (two changes would collide on a fixed name)',
  ports: 'the sandbox publishes no ports',
  expose: 'the sandbox publishes no ports',
  networks: 'the sandbox sets the network (none while tasks run, policy’s preparation network before)',
  restart: 'the sandbox starts and stops the services itself',
  logging: 'logs stay with the engine’s default driver',
  version: 'obsolete',
  pull_policy: 'the sandbox pulls only with a preparation network, and never on its own',
};

/** Keys refused whatever their value, with the reason. */
const REFUSED: Record<string, string> = {
  devices: 'gives the container host devices',
  device_cgroup_rules: 'lets the container use host devices',
  gpus: 'gives the container the host GPUs',
  volumes_from: 'mounts another container’s volumes',
  sysctls: 'changes kernel parameters',
  runtime: 'chooses another container runtime',
  isolation: 'chooses another isolation technology',
  cgroup_parent: 'places the container in a host control group',
  storage_opt: 'changes the host’s storage options',
  oom_kill_disable: 'lets the container exhaust the host memory',
  secrets: 'hands files from the host to the container',
  configs: 'hands files from the host to the container',
  credential_spec: 'hands host credentials to the container',
  external_links: 'links containers outside the sandbox',
  links: 'links containers by a legacy mechanism the sandbox does not support',
  annotations: 'passes runtime annotations that can change the confinement',
};

const NAMESPACE_KEYS = ['pid', 'ipc', 'uts', 'userns_mode', 'cgroup'] as const;

const BUILD_KEYS = new Set(['context', 'dockerfile', 'args', 'target', 'labels', 'cache_from', 'network', 'shm_size', 'extra_hosts']);

/** Top-level keys of a Compose file. */
const TOP_LEVEL = new Set(['services', 'volumes', 'networks', 'version', 'name']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function truthy(value: unknown): boolean {
  return value === true || (typeof value === 'string' && /^(?:true|yes|on|1)$/i.test(value.trim())) || value === 1;
}

/** Every `$VAR` / `${VAR}` Compose would fill from the host environment (`$$` is a literal `$`). */
function interpolations(value: unknown, path: string, found: { where: string; name: string }[]): void {
  if (typeof value === 'string') {
    for (const match of value.matchAll(/\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g)) {
      if (match[1] === '$') continue;
      const name = (match[2] ?? match[3] ?? '').split(/[:?-]/)[0]!;
      found.push({ where: path, name });
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => interpolations(item, `${path}[${index}]`, found));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.startsWith('x-')) continue;
      interpolations(item, path ? `${path}.${key}` : key, found);
    }
  }
}

/** Resolves a path of a Compose file against its project folder; returns the repository-relative path. */
function repoPath(projectDir: string, path: string): string {
  return posix.normalize(posix.join(projectDir, path));
}

function isOutside(repoRelative: string): boolean {
  return repoRelative === '..' || repoRelative.startsWith('../');
}

/** `../..` → 2; anything that is not only `..` steps → undefined. */
function levelsAbove(repoRelative: string): number | undefined {
  if (repoRelative === '.') return 0;
  const parts = repoRelative.split('/');
  return parts.every((part) => part === '..') ? parts.length : undefined;
}

class ComposeChecker {
  readonly refusals: ComposeWidening[] = [];
  readonly allowed: ComposeWidening[] = [];
  readonly notes: string[] = [];

  constructor(
    private readonly allow: DevcontainerAllowances,
    private readonly projectDir: string,
    private readonly declaredVolumes: Map<string, boolean>,
  ) {}

  refuse(where: string, reason: string, allowedBy?: keyof DevcontainerAllowances): void {
    this.refusals.push({ where, reason, ...(allowedBy ? { allowedBy } : {}) });
  }

  widen(where: string, reason: string, permitted: boolean, allowedBy: keyof DevcontainerAllowances): boolean {
    (permitted ? this.allowed : this.refusals).push({ where, reason, allowedBy });
    return permitted;
  }

  service(file: string, name: string, value: unknown): ComposeService | undefined {
    const at = `${file}: services.${name}`;
    if (!isRecord(value)) {
      this.refuse(at, 'must be a mapping of service settings');
      return undefined;
    }
    const result: ComposeService = { name, settings: {}, mounts: [], envFiles: [], hostNetwork: false };
    for (const [key, setting] of Object.entries(value)) {
      const where = `${at}.${key}`;
      if (key.startsWith('x-')) continue;
      if (PASS_THROUGH.has(key)) result.settings[key] = setting;
      else if (key in IGNORED) this.notes.push(`${where} is ignored: ${IGNORED[key]}`);
      else if (key in REFUSED) this.refuse(where, REFUSED[key]!);
      else if (key === 'privileged') {
        const permitted =
          truthy(setting) &&
          this.widen(
            where,
            'runs the container with every capability and every host device',
            this.allow.allowPrivileged === true,
            'allowPrivileged',
          );
        if (permitted) result.settings.privileged = true;
      } else if (key === 'labels') this.labels(where, setting, result);
      else if (key === 'environment') {
        if (this.hostVariables(where, setting)) result.settings.environment = setting;
      } else if (key === 'cap_add') this.capabilities(where, setting, result);
      else if (key === 'security_opt') this.securityOptions(where, setting, result);
      else if (key === 'volumes') this.volumes(where, setting, result);
      else if (key === 'network_mode') this.networkMode(where, setting, result);
      else if ((NAMESPACE_KEYS as readonly string[]).includes(key)) this.namespace(where, key, setting);
      else if (key === 'env_file') this.envFiles(where, setting, result);
      else if (key === 'build') this.build(where, setting, result);
      else if (key === 'extends') this.extendsService(where, setting);
      else if (key === 'deploy') this.deploy(where, setting, result);
      else this.refuse(where, 'is not a service setting the sandbox knows; it passes on only settings it has checked');
    }
    if (result.settings.image === undefined && result.build === undefined)
      this.refuse(at, 'has neither "image" nor "build"; the sandbox needs one of them');
    return result;
  }

  /** `environment: [TOKEN]` or `TOKEN:` with no value copies the host's variable: refused; true when none does. */
  hostVariables(where: string, value: unknown): boolean {
    const names = Array.isArray(value)
      ? value.map(String).filter((item) => !item.includes('='))
      : isRecord(value)
        ? Object.entries(value)
            .filter(([, item]) => item === null || item === undefined)
            .map(([name]) => name)
        : undefined;
    if (!names) {
      this.refuse(where, 'must be a list or a mapping of variables');
      return false;
    }
    for (const name of names)
      this.refuse(
        `${where}: ${name}`,
        `copies the host environment variable ${name} into the container (it has no value here); write its value`,
      );
    return names.length === 0;
  }

  /** Labels the dev containers CLI, Compose or the sandbox read (devcontainer.metadata can ask for privileges) are not the file's to set. */
  labels(where: string, value: unknown, result: ComposeService): void {
    const keys = Array.isArray(value) ? value.map((item) => String(item).split('=')[0]!) : isRecord(value) ? Object.keys(value) : undefined;
    if (!keys) return this.refuse(where, 'must be a list or a mapping of labels');
    const reserved = keys.filter(
      (key) =>
        !/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(key) ||
        /^(?:devcontainer\.|dev\.agentlanes\.|com\.docker\.compose\.|io\.podman\.compose\.)/.test(key),
    );
    if (reserved.length === 0) result.settings.labels = value;
    for (const key of reserved)
      this.refuse(
        `${where}: ${key}`,
        'is a label the dev containers CLI, Compose or the sandbox reads (devcontainer.metadata can ask for privileges), or not a label name',
      );
  }

  capabilities(where: string, value: unknown, result: ComposeService): void {
    if (!Array.isArray(value)) return this.refuse(where, 'must be a list of capability names');
    const kept: string[] = [];
    value.forEach((cap, index) => {
      const name = String(cap);
      if (
        this.widen(
          `${where}[${index}]: ${name}`,
          `adds the Linux capability ${name.toUpperCase().replace(/^CAP_/, '')}`,
          isCapabilityAllowed(name, this.allow),
          'allowCapAdd',
        )
      )
        kept.push(name);
    });
    if (kept.length) result.settings.cap_add = kept;
  }

  securityOptions(where: string, value: unknown, result: ComposeService): void {
    const options = Array.isArray(value) ? value.map(String) : [String(value)];
    const kept: string[] = [];
    options.forEach((option, index) => {
      if (/^no-new-privileges(?:[:=]true)?$/.test(option)) kept.push(option);
      else
        this.refuse(
          `${where}[${index}]: ${option}`,
          'weakens the seccomp, AppArmor or SELinux confinement (only no-new-privileges is accepted)',
        );
    });
    if (kept.length) result.settings.security_opt = kept;
  }

  networkMode(where: string, value: unknown, result: ComposeService): void {
    const mode = String(value);
    if (mode === 'host') {
      result.hostNetwork = this.widen(
        `${where}: host`,
        "shares the host's network",
        this.allow.allowHostNetwork === true,
        'allowHostNetwork',
      );
    } else if (mode.startsWith('container:')) {
      this.refuse(`${where}: ${mode}`, 'joins the network of a container outside the Compose project');
    } else {
      this.notes.push(`${where}: ${mode} is ignored: the sandbox sets every service's network (none while tasks run)`);
    }
  }

  namespace(where: string, key: string, value: unknown): void {
    const mode = String(value);
    const name = key === 'userns_mode' ? 'user' : key;
    if (mode === 'host') this.refuse(`${where}: host`, `shares the host's ${name} namespace`);
    else if (mode.startsWith('container:') || mode.startsWith('ns:')) this.refuse(`${where}: ${mode}`, `joins another ${name} namespace`);
    else if (mode !== 'private' && !mode.startsWith('service:') && mode !== '')
      this.refuse(`${where}: ${mode}`, `is a ${name} namespace mode the sandbox does not know`);
  }

  envFiles(where: string, value: unknown, result: ComposeService): void {
    const entries = Array.isArray(value) ? value : [value];
    entries.forEach((entry, index) => {
      const path = typeof entry === 'string' ? entry : isRecord(entry) && typeof entry.path === 'string' ? entry.path : undefined;
      const at = Array.isArray(value) ? `${where}[${index}]` : where;
      if (path === undefined) return this.refuse(at, 'must name a file');
      const resolved = repoPath(this.projectDir, path);
      if (posix.isAbsolute(path) || isOutside(resolved) || path.startsWith('~'))
        return this.refuse(`${at}: ${path}`, 'reads a file on the host, outside the repository, into the container');
      result.envFiles.push(resolved);
    });
  }

  build(where: string, value: unknown, result: ComposeService): void {
    const build = typeof value === 'string' ? { context: value } : value;
    if (!isRecord(build)) return this.refuse(where, 'must be a folder or a mapping with "context"');
    for (const key of Object.keys(build)) {
      if (key === 'secrets' || key === 'ssh') this.refuse(`${where}.${key}`, 'hands host secrets or the SSH agent to the build');
      else if (key === 'network' && build.network === 'host')
        this.widen(`${where}.network: host`, "builds with the host's network", this.allow.allowHostNetwork === true, 'allowHostNetwork');
      else if (key === 'network') this.notes.push(`${where}.network is ignored: the image builds with policy's preparation network`);
      else if (!BUILD_KEYS.has(key) && !key.startsWith('x-'))
        this.refuse(`${where}.${key}`, 'is not a build setting the sandbox knows; it passes on only settings it has checked');
    }
    const contextText = typeof build.context === 'string' ? build.context : '.';
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(contextText) || contextText.startsWith('git@'))
      return this.refuse(
        `${where}.context: ${contextText}`,
        'builds from a remote source; the build context must be a folder of the repository',
      );
    const context = repoPath(this.projectDir, contextText);
    if (posix.isAbsolute(contextText) || isOutside(context) || contextText.startsWith('~'))
      return this.refuse(
        `${where}.context: ${contextText}`,
        'sends a folder outside the repository to the build; the build context must be a folder of the repository',
      );
    const dockerfileText = typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile';
    const dockerfile = repoPath(context, dockerfileText);
    if (posix.isAbsolute(dockerfileText) || isOutside(dockerfile))
      return this.refuse(`${where}.dockerfile: ${dockerfileText}`, 'reads a Dockerfile outside the repository');
    if (build.args !== undefined && !this.hostVariables(`${where}.args`, build.args)) return;
    result.build = {
      context,
      dockerfile,
      ...(build.args !== undefined ? { args: build.args } : {}),
      ...(typeof build.target === 'string' ? { target: build.target } : {}),
    };
  }

  extendsService(where: string, value: unknown): void {
    const file = isRecord(value) && typeof value.file === 'string' ? value.file : undefined;
    if (file && (posix.isAbsolute(file) || isOutside(repoPath(this.projectDir, file))))
      return this.refuse(`${where}.file: ${file}`, 'reads a Compose file outside the repository');
    this.refuse(where, 'is not supported by the sandbox: write the service out in full');
  }

  deploy(where: string, value: unknown, result: ComposeService): void {
    if (!isRecord(value)) return this.refuse(where, 'must be a mapping');
    for (const [key, setting] of Object.entries(value)) {
      if (key !== 'resources' || !isRecord(setting)) {
        this.notes.push(`${where}.${key} is ignored: the sandbox runs one replica of each service`);
        continue;
      }
      if (setting.reservations !== undefined && isRecord(setting.reservations) && setting.reservations.devices !== undefined)
        this.refuse(`${where}.resources.reservations.devices`, 'gives the container host devices (GPUs)');
      if (isRecord(setting.limits)) {
        if (setting.limits.cpus !== undefined) result.settings.cpus ??= setting.limits.cpus;
        if (setting.limits.memory !== undefined) result.settings.mem_limit ??= setting.limits.memory;
        if (setting.limits.pids !== undefined) result.settings.pids_limit ??= setting.limits.pids;
      }
    }
  }

  volumes(where: string, value: unknown, result: ComposeService): void {
    if (!Array.isArray(value)) return this.refuse(where, 'must be a list of mounts');
    value.forEach((entry, index) => {
      const at = `${where}[${index}]`;
      const spec =
        typeof entry === 'string'
          ? parseShortVolume(entry)
          : isRecord(entry)
            ? {
                type: typeof entry.type === 'string' ? entry.type : 'volume',
                source: typeof entry.source === 'string' ? entry.source : '',
                target: typeof entry.target === 'string' ? entry.target : '',
                readonly: entry.read_only === true,
              }
            : undefined;
      if (!spec || !spec.target) return this.refuse(at, 'is neither a mount string nor a mount mapping with a target');
      const label = `${at}: ${typeof entry === 'string' ? entry : `${spec.type} ${spec.source || '(anonymous)'} → ${spec.target}`}`;
      const mount = this.mount(label, spec);
      if (mount) result.mounts.push(mount);
    });
  }

  mount(where: string, spec: { type: string; source: string; target: string; readonly: boolean }): ComposeMount | undefined {
    const { type, source, target, readonly } = spec;
    if (type === 'tmpfs') return { kind: 'tmpfs', target };
    if (type === 'volume' && source === '') return { kind: 'anonymous', target };
    if (type === 'volume') {
      if (this.declaredVolumes.get(source) === true) return { kind: 'projectVolume', name: source, target, readonly };
      const permitted = this.widen(
        where,
        this.declaredVolumes.has(source)
          ? `mounts the volume ${source}, which is external or named, so shared with other containers`
          : `mounts the named volume ${source}, which the Compose file does not declare, so shared with other containers`,
        isMountSourceAllowed(source, this.allow),
        'allowMounts',
      );
      return permitted ? { kind: 'allowed', type: 'volume', source, target, readonly } : undefined;
    }
    if (type !== 'bind') {
      this.refuse(where, `is a ${type} mount, which the sandbox does not pass on (bind, volume and tmpfs only)`);
      return undefined;
    }
    if (source.includes('$')) return undefined; // refused as interpolation
    const hostPath = posix.isAbsolute(source) || source.startsWith('~') || source === '';
    if (!hostPath) {
      const resolved = repoPath(this.projectDir, source);
      const levels = levelsAbove(resolved);
      if (levels !== undefined) {
        this.notes.push(`${where} is the workspace: the sandbox mounts only the change's worktree there`);
        return { kind: 'workspace', levelsUp: levels, target, readonly };
      }
      if (!isOutside(resolved)) return { kind: 'worktree', source: resolved, target, readonly };
    }
    const shown = hostPath ? source || 'a host path' : `${source} (outside the repository)`;
    const socket = isEngineSocket(source);
    const permitted = this.widen(
      where,
      socket ? `mounts the container engine's socket (${source}), which controls the host` : `mounts ${shown} from the host`,
      hostPath && isMountSourceAllowed(source, this.allow),
      'allowMounts',
    );
    return permitted ? { kind: 'allowed', type: 'bind', source, target, readonly } : undefined;
  }
}

/** `src:dst:ro`, `name:dst`, `/dst` as Compose reads them. */
function parseShortVolume(spec: string): { type: string; source: string; target: string; readonly: boolean } {
  const parts = spec.split(':');
  if (parts.length === 1) return { type: 'volume', source: '', target: spec, readonly: false };
  const parsed = parseMountSpec(spec, true);
  const source = parts[0]!;
  const bind = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') || source.startsWith('$');
  return { ...parsed, type: bind ? 'bind' : 'volume' };
}

/**
 * Checks the Compose files of a devcontainer.json that names `dockerComposeFile`.
 * `configPath` is devcontainer.json's repository-relative path; `files` the
 * Compose files it names, as the base commit has them.
 */
export function checkCompose(
  config: Record<string, unknown>,
  configPath: string,
  files: readonly ComposeSourceFile[],
  allow: DevcontainerAllowances = {},
): ComposeCheck {
  const result: ComposeCheck = {
    files: files.map((file) => file.path),
    service: typeof config.service === 'string' ? config.service : '',
    services: [],
    projectVolumes: [],
    refusals: [],
    allowed: [],
    notes: [],
  };
  if (!result.service) result.refusals.push({ where: `${configPath}: service`, reason: 'must name the Compose service to run tasks in' });
  if (files.length === 0) return result;
  // Relative paths in every Compose file resolve against the first file's folder (the project folder).
  const projectDir = posix.dirname(files[0]!.path);
  const parsed: { path: string; doc: Record<string, unknown> }[] = [];
  for (const file of files) {
    if (file.text === undefined) {
      result.refusals.push({
        where: `${configPath}: dockerComposeFile: ${file.path}`,
        reason: 'is not in the base commit; commit the Compose file (the sandbox reads it from the base commit)',
      });
      continue;
    }
    const doc = parseDocument(file.text, { uniqueKeys: true, merge: true });
    if (doc.errors.length > 0) {
      const error = doc.errors[0]!;
      const at = error.linePos?.[0];
      result.refusals.push({
        where: `${file.path}${at ? ` (line ${at.line}, column ${at.col})` : ''}`,
        reason: `is not valid YAML: ${error.message.split('\n')[0]}`,
      });
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (!isRecord(value)) {
      result.refusals.push({ where: file.path, reason: 'must be a YAML mapping with "services"' });
      continue;
    }
    parsed.push({ path: file.path, doc: value });
  }

  const declared = new Map<string, boolean>();
  for (const { path, doc } of parsed) {
    for (const key of Object.keys(doc)) {
      if (key.startsWith('x-') || TOP_LEVEL.has(key)) continue;
      result.refusals.push({
        where: `${path}: ${key}`,
        reason:
          key === 'include'
            ? 'includes other Compose files, which the sandbox does not follow; put the services in the files devcontainer.json names'
            : key === 'secrets' || key === 'configs'
              ? 'hands files from the host to the containers'
              : 'is not a top-level Compose key the sandbox knows',
      });
    }
    if (doc.name !== undefined) result.notes.push(`${path}: name is ignored: the sandbox names the Compose project per change`);
    if (doc.networks !== undefined) result.notes.push(`${path}: networks are ignored: the sandbox sets every service's network`);
    if (isRecord(doc.volumes)) {
      for (const [name, definition] of Object.entries(doc.volumes)) {
        const spec = isRecord(definition) ? definition : {};
        const shared = truthy(spec.external) || isRecord(spec.external) || typeof spec.name === 'string';
        const driverOptions = spec.driver_opts !== undefined || (spec.driver !== undefined && spec.driver !== 'local');
        if (driverOptions) {
          result.refusals.push({
            where: `${path}: volumes.${name}`,
            reason: 'sets a volume driver or driver options, which can mount host paths or remote storage',
          });
        }
        declared.set(name, !shared && !driverOptions);
      }
    }
    const found: { where: string; name: string }[] = [];
    interpolations(doc, '', found);
    for (const read of found)
      result.refusals.push({
        where: `${path}: ${read.where}`,
        reason: `reads the host environment variable ${read.name} (Compose interpolation); write the value, or $$ for a literal $`,
      });
  }
  result.projectVolumes = [...declared].filter(([, own]) => own).map(([name]) => name);

  const byName = new Map<string, ComposeService>();
  for (const { path, doc } of parsed) {
    const checker = new ComposeChecker(allow, projectDir, declared);
    if (doc.services === undefined) continue;
    if (!isRecord(doc.services)) {
      result.refusals.push({ where: `${path}: services`, reason: 'must be a mapping of services' });
      continue;
    }
    for (const [name, definition] of Object.entries(doc.services)) {
      const service = checker.service(path, name, definition);
      if (service) byName.set(name, mergeService(byName.get(name), service));
    }
    result.refusals.push(...checker.refusals);
    result.allowed.push(...checker.allowed);
    result.notes.push(...checker.notes);
  }
  // A later file may complete a service (an image in the override), so "neither image nor build" is judged on the merge;
  // when a file is missing, it may be the one that completes it, and its own refusal is enough.
  const incomplete = (refusal: ComposeWidening): boolean => {
    if (!refusal.reason.startsWith('has neither')) return false;
    if (parsed.length < files.length) return true;
    const service = byName.get(refusal.where.replace(/^.*: services\./, ''));
    return service !== undefined && (service.settings.image !== undefined || service.build !== undefined);
  };
  result.refusals = result.refusals.filter((refusal) => !incomplete(refusal));
  result.services = [...byName.values()];
  if (result.service && parsed.length === files.length && !byName.has(result.service))
    result.refusals.push({
      where: `${configPath}: service: ${result.service}`,
      reason: `is not a service of ${result.files.join(', ')}`,
    });
  const runServices = config.runServices;
  if (Array.isArray(runServices))
    for (const name of runServices)
      if (typeof name !== 'string' || !byName.has(name))
        result.refusals.push({
          where: `${configPath}: runServices: ${String(name)}`,
          reason: `is not a service of ${result.files.join(', ')}`,
        });
  return result;
}

/** A later Compose file overrides scalars, merges mappings and adds to lists (as Compose does). */
function mergeService(before: ComposeService | undefined, after: ComposeService): ComposeService {
  if (!before) return after;
  const settings: Record<string, unknown> = { ...before.settings };
  for (const [key, value] of Object.entries(after.settings)) {
    const previous = settings[key];
    settings[key] =
      Array.isArray(previous) && Array.isArray(value)
        ? [...previous, ...(value as unknown[])]
        : isRecord(previous) && isRecord(value)
          ? { ...previous, ...value }
          : value;
  }
  const targets = new Set(after.mounts.map((mount) => mount.target));
  return {
    name: after.name,
    settings,
    ...((after.build ?? before.build) ? { build: after.build ?? before.build } : {}),
    mounts: [...before.mounts.filter((mount) => !targets.has(mount.target)), ...after.mounts],
    envFiles: [...before.envFiles, ...after.envFiles],
    hostNetwork: before.hostNetwork || after.hostNetwork,
  };
}

/** One message for the user listing every refusal: the field, why, and the policy setting that would allow it. */
export function describeComposeRefusals(fileName: string, check: ComposeCheck): string {
  const lines = check.refusals.map(
    (refusal) =>
      `- ${refusal.where}: ${refusal.reason} (${refusal.allowedBy ? `policy can allow it with ${POLICY_SETTING[refusal.allowedBy]}` : 'no policy setting allows it'})`,
  );
  return `${fileName} uses Docker Compose, and its services ask for more than the sandbox allows, so no container was started:\n${lines.join('\n')}\nRemove these settings from the Compose files in the base commit, or ask the policy owner to allow them.`;
}
