import { posix } from 'node:path';
import picomatch from 'picomatch';
import type { DevcontainerAllowances } from './devcontainerCheck';

/**
 * Mounts as the engines read them, and whether one widens the sandbox.
 * Used for `mounts`, `-v`/`--volume` and `--mount` in a devcontainer.json
 * and in feature metadata (and meant for Compose services' volumes too).
 */

export interface MountSpec {
  type: string;
  source: string;
  target: string;
  readonly: boolean;
  /** Something in the spec the sandbox cannot vouch for (an unknown key, volume driver options): refused. */
  problem?: string;
}

/** What a mount means for the sandbox. */
export type MountVerdict =
  { kind: 'harmless' } | { kind: 'widens'; reason: string; permitted: boolean } | { kind: 'refused'; reason: string };

const DOCKER_SOCKET = /(?:^|\/)(?:docker|podman)\.sock$|^\/run\/podman(?:\/|$)|^\/var\/run\/docker(?:\/|$)|^npipe:|docker_engine/;

export function isEngineSocket(source: string): boolean {
  return DOCKER_SOCKET.test(source);
}

/** Whether policy's `allowMounts` lets a mount use this host path or volume name as its source. */
export function isMountSourceAllowed(source: string, allow: DevcontainerAllowances): boolean {
  const patterns = (allow.allowMounts ?? []).filter((pattern) => pattern.trim() !== '');
  if (source === '' || patterns.length === 0) return false;
  if (patterns.includes(source)) return true;
  // A glob never reaches the engine socket: that one must be listed exactly.
  return !isEngineSocket(source) && patterns.some((pattern) => picomatch.isMatch(source, pattern, { dot: true }));
}

/** `-v`/`--volume`: `src:dst[:options]`, or `dst` alone (an anonymous volume). Never the key=value syntax. */
export function parseVolumeFlag(spec: string): MountSpec {
  const parts = spec.split(':');
  if (parts.length > 3)
    return { type: 'bind', source: parts[0]!, target: parts[1]!, readonly: false, problem: `has ${parts.length} ":" fields` };
  const [source = '', target = '', options = ''] = parts;
  // podman's overlay options name host folders the engine writes (upperdir=, workdir=).
  if (options.includes('='))
    return { type: 'bind', source, target, readonly: false, problem: `has the volume options ${options}, which name host folders` };
  // `-v /path` alone is an anonymous volume at /path.
  if (parts.length === 1) return { type: 'volume', source: '', target: source, readonly: false };
  return {
    type:
      source === ''
        ? 'volume'
        : source.startsWith('/') || source.startsWith('.') || source.includes('/') || source.includes('$')
          ? 'bind'
          : 'volume',
    source,
    target,
    readonly: /(^|,)ro(,|$)/.test(options),
  };
}

/** The keys each engine accepts in `--mount`, by what they do; anything else is refused rather than guessed. */
const MOUNT_KEYS = new Set([
  'type',
  'source',
  'src',
  'target',
  'destination',
  'dst',
  'readonly',
  'ro',
  'rw',
  'readwrite',
  'consistency',
  'bind-propagation',
  'bind-nonrecursive',
  'bind-recursive',
  'relabel',
  'z',
  'Z',
  'U',
  'idmap',
  'chown',
  'volume-nocopy',
  'nocopy',
  'volume-label',
  'volume-subpath',
  'subpath',
  'tmpfs-size',
  'tmpfs-mode',
  'tmpcopyup',
  'notmpcopyup',
  'size',
  'mode',
  'uid',
  'gid',
  'max',
]);
/** Keys that let a volume be anything its driver makes of it (`device=/,o=bind` is a bind of the host root). */
const DRIVER_KEYS = new Set(['volume-driver', 'volume-opt']);

/** `--mount` and devcontainer.json `mounts` strings: `type=bind,source=/a,target=/b,readonly`, as docker's CSV reads it. */
export function parseMountFlag(spec: string): MountSpec {
  let type = 'volume';
  let source = '';
  let target = '';
  let readonly = false;
  let problem: string | undefined;
  // Like the engines, a key given twice takes its last value, whichever of its names it uses.
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq >= 0 ? part.slice(0, eq) : part).trim().toLowerCase();
    const value = eq >= 0 ? part.slice(eq + 1).trim() : undefined;
    if (DRIVER_KEYS.has(key)) problem ??= `sets ${key}, which lets the volume driver mount anything from the host (device=/,o=bind)`;
    else if (!MOUNT_KEYS.has(key)) problem ??= `has "${part}", which the sandbox does not know`;
    if (key === 'type') type = (value ?? '').toLowerCase();
    else if (key === 'source' || key === 'src') source = value ?? '';
    else if (key === 'target' || key === 'destination' || key === 'dst') target = value ?? '';
    else if (key === 'readonly' || key === 'ro') readonly = value === undefined || ['true', '1'].includes(value);
  }
  return { type, source, target, readonly, ...(problem ? { problem } : {}) };
}

/**
 * A mount object (`{ "type", "source", "target" }`) as the dev containers CLI
 * passes it on: `--mount type=<type>,src=<source>,dst=<target>`, with no
 * escaping, so it is checked in that form (a comma in a field adds keys).
 */
export function mountObjectToFlag(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  return `type=${String(record.type)},${record.source ? `src=${String(record.source)},` : ''}dst=${String(record.target)}`;
}

/** A host path the sandbox can match against policy: absolute and normalised (no `..`, no variables). */
function isPlainHostPath(source: string): boolean {
  return source.startsWith('/') && !source.includes('$') && posix.normalize(source) === source.replace(/(.)\/+$/, '$1');
}

/** Whether a mount widens the sandbox, and whether policy's `allowMounts` allows it. */
export function checkMount(mount: MountSpec, allow: DevcontainerAllowances): MountVerdict {
  if (mount.problem) return { kind: 'refused', reason: mount.problem };
  switch (mount.type) {
    case 'tmpfs':
    case 'ramfs':
    case 'devpts':
    case 'image':
      // Memory, a pseudo-terminal instance, or an image's files: nothing of the host.
      return { kind: 'harmless' };
    case 'volume':
      if (mount.source === '') return { kind: 'harmless' };
      if (isEngineSocket(mount.source))
        return {
          kind: 'widens',
          reason: `mounts the container engine's socket (${mount.source}), which controls the host`,
          permitted: isMountSourceAllowed(mount.source, allow),
        };
      return {
        kind: 'widens',
        reason: mount.source.startsWith('/')
          ? `mounts ${mount.source} from the host`
          : `mounts the named volume ${mount.source}, shared with other containers`,
        permitted: isMountSourceAllowed(mount.source, allow),
      };
    case 'bind':
    case 'glob': {
      // The engine refuses a bind without a source; nothing of the host is mounted.
      if (mount.source === '') return { kind: 'harmless' };
      if (isEngineSocket(mount.source))
        return {
          kind: 'widens',
          reason: `mounts the container engine's socket (${mount.source}), which controls the host`,
          permitted: isPlainHostPath(mount.source) && isMountSourceAllowed(mount.source, allow),
        };
      if (!isPlainHostPath(mount.source))
        return {
          kind: 'refused',
          reason: `mounts ${mount.source} from the host, a path the sandbox cannot match against policy (it is relative, has "..", or a variable); name an absolute host path`,
        };
      return { kind: 'widens', reason: `mounts ${mount.source} from the host`, permitted: isMountSourceAllowed(mount.source, allow) };
    }
    default:
      return { kind: 'refused', reason: `is a ${mount.type || 'typeless'} mount, which the sandbox does not know` };
  }
}
