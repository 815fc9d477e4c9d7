/**
 * Reads container engine arguments (`docker run` / `podman run` / `build`
 * flags in a devcontainer.json's `runArgs` or `build.options`, or a Compose
 * service's equivalents) the way the engines do: both are cobra programs, so
 * their flags are parsed by pflag. Every spelling pflag accepts is read here:
 * `--x=y`, `--x y`, `-x y`, `-xy`, `-x=y`, grouped short flags (`-itv/:/h`),
 * boolean flags with an explicit value (`--privileged=1`), and repeats.
 *
 * The table of flags decides arity; a checker then looks at the canonical
 * (long) name and the value. Where the engines' arity could differ from the
 * table (a value flag given a value that starts with `-`, an optional-value
 * flag), the token carries a problem so the checker refuses it instead of
 * guessing.
 */

/** How a flag takes its value: `bool` never takes the next argument; `value` does; `equals` takes one only after `=`. */
type FlagArity = 'bool' | 'value' | 'equals';

export interface FlagTable {
  /** Long flags (with their `--`) and how they take a value. */
  long: Readonly<Record<string, FlagArity>>;
  /** Short flags (one letter, no dash) and the long flag each stands for. */
  short: Readonly<Record<string, string>>;
}

export interface EngineArg {
  /** Index of the first argument this flag came from. */
  index: number;
  /** The arguments as written, e.g. `["-v", "/a:/b"]` or `["-itv/:/h"]`. */
  raw: string[];
  /** The canonical long name (`--volume` for `-v`), or the argument itself when it is not a flag. */
  flag: string;
  /** The value: the flag's argument, or a boolean flag's `true`/`false`. Undefined for `equals` flags given without `=`. */
  value?: string;
  /** The table does not know the flag (its arity is unknown; nothing after it is trusted to be a value). */
  unknown?: boolean;
  /** Why the engines could read this differently from the table, or it is not a flag at all: the checker must refuse it. */
  problem?: string;
}

const TRUE_VALUES = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_VALUES = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** A boolean flag's value as Go's strconv.ParseBool reads it; undefined when it would be an error. */
function parseBoolValue(value: string): boolean | undefined {
  if (TRUE_VALUES.has(value)) return true;
  if (FALSE_VALUES.has(value)) return false;
  return undefined;
}

function withValue(arg: EngineArg, arity: FlagArity, value: string | undefined): EngineArg {
  if (arity === 'bool') {
    if (value === undefined) return { ...arg, value: 'true' };
    const parsed = parseBoolValue(value);
    return parsed === undefined
      ? { ...arg, value, problem: `is a true/false flag; "${value}" is neither` }
      : { ...arg, value: String(parsed) };
  }
  return value === undefined ? arg : { ...arg, value };
}

/** Splits engine arguments into flags, as pflag does; every argument ends up in exactly one token. */
export function parseEngineArgs(args: readonly string[], table: FlagTable): EngineArg[] {
  const tokens: EngineArg[] = [];
  let index = 0;
  while (index < args.length) {
    const start = index;
    const arg = args[index]!;
    index++;
    if (arg === '--') {
      tokens.push({ index: start, raw: [arg], flag: arg, problem: 'ends the flags: what follows would become the image and its command' });
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      tokens.push({ index: start, raw: [arg], flag: arg, problem: 'is not a flag (a value without its flag, or a stray word)' });
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(0, eq) : arg;
      const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      const arity = table.long[name];
      if (arity === undefined) {
        tokens.push({ index: start, raw: [arg], flag: name, unknown: true, ...(inline === undefined ? {} : { value: inline }) });
        continue;
      }
      if (arity !== 'value' || inline !== undefined) {
        tokens.push(withValue({ index: start, raw: [arg], flag: name }, arity, inline));
        continue;
      }
      tokens.push(valueFromNext(args, start, name, [arg]));
      if (args[index] !== undefined) index++;
      continue;
    }
    // One or more short flags: -i, -it, -v/a:/b, -v=/a:/b, -itv/a:/b, -v /a:/b.
    let rest = arg.slice(1);
    while (rest.length > 0) {
      const letter = rest[0]!;
      const name = table.short[letter];
      const arity = name === undefined ? undefined : table.long[name];
      if (name === undefined || arity === undefined) {
        tokens.push({ index: start, raw: [arg], flag: `-${letter}`, unknown: true });
        break;
      }
      const attached = rest.length > 1 ? (rest[1] === '=' ? rest.slice(2) : arity === 'bool' ? undefined : rest.slice(1)) : undefined;
      if (arity === 'bool') {
        if (rest[1] === '=') {
          tokens.push(withValue({ index: start, raw: [arg], flag: name }, arity, attached));
          break;
        }
        tokens.push(withValue({ index: start, raw: [arg], flag: name }, arity, undefined));
        rest = rest.slice(1);
        continue;
      }
      if (attached !== undefined) {
        tokens.push({ index: start, raw: [arg], flag: name, value: attached });
      } else if (arity === 'equals') {
        tokens.push({ index: start, raw: [arg], flag: name });
      } else {
        tokens.push(valueFromNext(args, start, name, [arg]));
        if (args[index] !== undefined) index++;
      }
      break;
    }
  }
  return tokens;
}

function valueFromNext(args: readonly string[], start: number, name: string, raw: string[]): EngineArg {
  const next = args[start + 1];
  if (next === undefined) return { index: start, raw, flag: name, problem: 'needs a value' };
  const token: EngineArg = { index: start, raw: [...raw, next], flag: name, value: next };
  // pflag would take it as the value; a table that is wrong about the flag would not. Either way, say it with "=".
  if (next.startsWith('-') && next !== '-')
    return { ...token, problem: `has a value that looks like a flag; write ${name}=${next} if that is meant` };
  return token;
}

/** `runArgs[3]: -v /a:/b`: where a token is, for messages. */
export function describeArg(field: string, token: EngineArg): string {
  return `${field}[${token.index}]: ${token.raw.join(' ')}`;
}

/** `docker run` / `podman run` flags the sandbox knows the arity of (the union of both engines' common flags). */
export const RUN_FLAGS: FlagTable = {
  long: {
    // true/false flags
    '--init': 'bool',
    '--rm': 'bool',
    '--tty': 'bool',
    '--interactive': 'bool',
    '--detach': 'bool',
    '--read-only': 'bool',
    '--read-only-tmpfs': 'bool',
    '--privileged': 'bool',
    '--publish-all': 'bool',
    '--oom-kill-disable': 'bool',
    '--env-host': 'bool',
    '--rootfs': 'bool',
    '--no-healthcheck': 'bool',
    '--no-hosts': 'bool',
    '--quiet': 'bool',
    '--http-proxy': 'bool',
    '--replace': 'bool',
    '--sig-proxy': 'bool',
    '--unsetenv-all': 'bool',
    // a value only after "=" (podman's and docker's --pull differ on a bare --pull)
    '--pull': 'equals',
    // flags with a value
    '--env': 'value',
    '--label': 'value',
    '--hostname': 'value',
    '--user': 'value',
    '--workdir': 'value',
    '--tmpfs': 'value',
    '--shm-size': 'value',
    '--ulimit': 'value',
    '--add-host': 'value',
    '--cap-drop': 'value',
    '--cap-add': 'value',
    '--dns': 'value',
    '--dns-search': 'value',
    '--dns-option': 'value',
    '--entrypoint': 'value',
    '--stop-signal': 'value',
    '--stop-timeout': 'value',
    '--platform': 'value',
    '--group-add': 'value',
    '--memory-swap': 'value',
    '--memory-reservation': 'value',
    '--cpu-shares': 'value',
    '--cpuset-cpus': 'value',
    '--cpus': 'value',
    '--memory': 'value',
    '--pids-limit': 'value',
    '--network': 'value',
    '--net': 'value',
    '--pid': 'value',
    '--ipc': 'value',
    '--uts': 'value',
    '--cgroupns': 'value',
    '--userns': 'value',
    '--volume': 'value',
    '--mount': 'value',
    '--device': 'value',
    '--gpus': 'value',
    '--device-cgroup-rule': 'value',
    '--security-opt': 'value',
    '--volumes-from': 'value',
    '--env-file': 'value',
    '--label-file': 'value',
    '--cidfile': 'value',
    '--publish': 'value',
    '--expose': 'value',
    '--runtime': 'value',
    '--name': 'value',
    '--sysctl': 'value',
    '--attach': 'value',
    '--cgroup-parent': 'value',
    '--init-path': 'value',
    '--secret': 'value',
    '--pod': 'value',
    '--uidmap': 'value',
    '--gidmap': 'value',
    '--annotation': 'value',
    '--log-driver': 'value',
    '--log-opt': 'value',
  },
  short: {
    a: '--attach',
    c: '--cpu-shares',
    d: '--detach',
    e: '--env',
    h: '--hostname',
    i: '--interactive',
    l: '--label',
    m: '--memory',
    p: '--publish',
    P: '--publish-all',
    q: '--quiet',
    t: '--tty',
    u: '--user',
    v: '--volume',
    w: '--workdir',
  },
};

/** `docker build` / `podman build` flags the sandbox knows the arity of. */
export const BUILD_FLAGS: FlagTable = {
  long: {
    '--no-cache': 'bool',
    '--quiet': 'bool',
    '--pull': 'equals',
    '--build-arg': 'value',
    '--label': 'value',
    '--target': 'value',
    '--platform': 'value',
    '--progress': 'value',
    '--add-host': 'value',
    '--network': 'value',
    '--net': 'value',
    '--secret': 'value',
    '--ssh': 'value',
    '--file': 'value',
    '--volume': 'value',
    '--build-context': 'value',
    '--cache-from': 'value',
    '--cache-to': 'value',
    '--iidfile': 'value',
    '--tag': 'value',
    '--output': 'value',
    '--env': 'value',
    '--cap-add': 'value',
    '--security-opt': 'value',
    '--device': 'value',
  },
  short: { q: '--quiet', f: '--file', v: '--volume', t: '--tag', o: '--output' },
};
