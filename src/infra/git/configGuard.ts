import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';

/**
 * An agent can write the repository's config (`.git/config`, `config.worktree`
 * and any file they include) but not the user's global or system config. Every
 * repository key that makes git run a program is overridden for the lanes' git
 * calls with the user's own (global/system) value or a value that runs nothing;
 * `git config --list` reads config without running any of it.
 */

/** Set on every call, whatever any config says. */
const ALWAYS: readonly (readonly [string, string])[] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
  ['protocol.ext.allow', 'never'],
  ['commit.gpgSign', 'false'],
  ['tag.gpgSign', 'false'],
];

/**
 * Single-valued keys that name a program, with what replaces a repository's
 * value when the user has none. An empty command makes git fail loudly ("cannot
 * run") or do nothing (filters), never run something else.
 */
const PROGRAM_KEYS: readonly { pattern: RegExp; fallback: (key: string, env: Environment) => string }[] = [
  { pattern: /^core\.sshcommand$/, fallback: (_key, env) => (env.GIT_SSH ? shellQuote(env.GIT_SSH) : 'ssh') },
  { pattern: /^ssh\.variant$/, fallback: () => 'auto' },
  { pattern: /^core\.askpass$/, fallback: (_key, env) => env.SSH_ASKPASS ?? '' },
  { pattern: /^core\.alternaterefscommand$/, fallback: () => '' },
  { pattern: /^diff\.external$/, fallback: () => '' },
  { pattern: /^diff\..+\.(command|textconv)$/, fallback: () => '' },
  { pattern: /^filter\..+\.(clean|smudge|process)$/, fallback: () => '' },
  // A required filter without a command would make every add fail.
  { pattern: /^filter\..+\.required$/, fallback: () => 'false' },
  { pattern: /^merge\..+\.driver$/, fallback: () => '' },
  // git takes these from the first file that sets one, so pushes also pass --receive-pack (see userConfigValue).
  { pattern: /^remote\..+\.receivepack$/, fallback: () => 'git-receive-pack' },
  { pattern: /^remote\..+\.uploadpack$/, fallback: () => 'git-upload-pack' },
  { pattern: /^gpg\.program$/, fallback: () => 'gpg' },
  { pattern: /^gpg\.openpgp\.program$/, fallback: () => 'gpg' },
  { pattern: /^gpg\.x509\.program$/, fallback: () => 'gpgsm' },
  { pattern: /^gpg\.ssh\.program$/, fallback: () => 'ssh-keygen' },
  { pattern: /^gpg\..+\.(program|defaultkeycommand)$/, fallback: () => '' },
];

/** Credential helpers add up across config files; an empty value clears the list. */
const CREDENTIAL_HELPER = /^credential\.(.+\.)?helper$/;
/** The first matching core.gitProxy wins, so a later override cannot beat a repository's; the variable can. */
const GIT_PROXY = 'core.gitproxy';
/** Scopes the user controls; the agent can write only the repository's (local, worktree). */
const USER_SCOPES = new Set(['system', 'global', 'command']);

type Environment = Record<string, string | undefined>;

interface ConfigEntry {
  scope: string;
  /** The file it came from, when it came from a file. */
  file?: string;
  key: string;
  value: string;
}

export interface ConfigOverrides {
  /** Variables to add to git's environment (GIT_CONFIG_COUNT entries, GIT_PROXY_COMMAND). */
  env: Record<string, string>;
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Parses `git config --list --show-scope --show-origin -z`. */
function parseConfigListing(output: string, cwd: string): ConfigEntry[] {
  const fields = output.split('\0');
  const entries: ConfigEntry[] = [];
  for (let i = 0; i + 2 < fields.length; i += 3) {
    const [scope = '', origin = '', keyValue = ''] = fields.slice(i, i + 3);
    const newline = keyValue.indexOf('\n');
    const key = newline < 0 ? keyValue : keyValue.slice(0, newline);
    const value = newline < 0 ? 'true' : keyValue.slice(newline + 1);
    const file = origin.startsWith('file:') ? resolve(cwd, origin.slice('file:'.length)) : undefined;
    entries.push({ scope, ...(file ? { file } : {}), key, value });
  }
  return entries;
}

/** The config overrides that neutralise the repository's program-running keys, from a config listing. */
function overridesFor(entries: readonly ConfigEntry[], env: Environment): ConfigOverrides {
  // git lists section and variable names in lower case and keeps the subsection's case, which matters (filter.A is not filter.a).
  const repositoryKeys = new Set(entries.filter((entry) => !USER_SCOPES.has(entry.scope)).map((entry) => entry.key));
  const userValue = (key: string) => entries.filter((entry) => USER_SCOPES.has(entry.scope) && entry.key === key).at(-1)?.value;
  const pairs: [string, string][] = ALWAYS.map(([key, value]) => [key, value]);
  let credentialsReset = false;
  const overrides: Record<string, string> = {};
  for (const key of repositoryKeys) {
    const program = PROGRAM_KEYS.find((candidate) => candidate.pattern.test(key));
    if (program) pairs.push([key, userValue(key) ?? program.fallback(key, env)]);
    else if (CREDENTIAL_HELPER.test(key)) credentialsReset = true;
    else if (key === GIT_PROXY && env.GIT_PROXY_COMMAND === undefined) overrides.GIT_PROXY_COMMAND = '';
  }
  if (credentialsReset) {
    pairs.push(['credential.helper', '']);
    for (const entry of entries)
      if (USER_SCOPES.has(entry.scope) && CREDENTIAL_HELPER.test(entry.key)) pairs.push([entry.key, entry.value]);
  }
  // After whatever GIT_CONFIG_COUNT entries the user's environment already has.
  const first = Number(env.GIT_CONFIG_COUNT) || 0;
  pairs.forEach(([key, value], index) => {
    overrides[`GIT_CONFIG_KEY_${first + index}`] = key;
    overrides[`GIT_CONFIG_VALUE_${first + index}`] = value;
  });
  overrides.GIT_CONFIG_COUNT = String(first + pairs.length);
  return { env: overrides };
}

/** Where include.path / includeIf.*.path entries point (they may not exist yet). */
function includedFiles(entries: readonly ConfigEntry[], env: Environment): string[] {
  const home = env.HOME ?? homedir();
  return entries
    .filter((entry) => /^include(if\..+)?\.path$/i.test(entry.key) && entry.file)
    .map((entry) => {
      const path = entry.value.startsWith('~/') ? join(home, entry.value.slice(2)) : entry.value;
      return isAbsolute(path) ? path : resolve(dirname(entry.file!), path);
    });
}

/**
 * A fingerprint of files: changing, creating or deleting any of them changes it
 * (a program can set mtime back, not ctime). `newest` is the latest change time.
 */
async function fingerprint(files: readonly string[]): Promise<{ print: string; newest: number; coarse: boolean }> {
  let newest = 0;
  let coarse = true;
  const parts = await Promise.all(
    files.map((file) =>
      stat(file).then(
        (info) => {
          newest = Math.max(newest, info.mtimeMs, info.ctimeMs);
          if (info.mtimeMs % 1000 !== 0) coarse = false;
          return `${file}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
        },
        () => `${file}:-`,
      ),
    ),
  );
  return { print: parts.join('\n'), newest, coarse };
}

interface CachedOverrides {
  files: string[];
  fingerprint: string;
  overrides: ConfigOverrides;
}

const MAX_CACHED = 256;
/**
 * A file changed this close to the listing may change again after it without
 * a new time stamp, so such a listing is not cached. File systems with whole-
 * second time stamps need seconds; with finer ones (ext4, overlayfs, APFS) a
 * later change always shows, and a just-created worktree's HEAD must not make
 * every git call in it list the configuration again.
 */
const RACY_MS_COARSE = 2_000;
const RACY_MS_FINE = 50;
const cache = new Map<string, CachedOverrides>();

/** Variables that change which config files git reads. */
const CONFIG_LOCATING_VARIABLES = [
  'HOME',
  'XDG_CONFIG_HOME',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_CONFIG_COUNT',
];

async function runQuietly(
  cwd: string,
  args: readonly string[],
  env: Environment,
): Promise<{ ok: boolean; started: boolean; stdout: string; stderr: string }> {
  const result = await execa('git', args, { cwd, reject: false, extendEnv: false, env, timeout: 30_000 });
  return {
    ok: result.exitCode === 0,
    started: result.exitCode !== undefined,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

/**
 * The overrides for git run in `cwd` with `env`. Cached per folder and
 * environment, and listed again as soon as any config file git reads there (or
 * could start reading: config.worktree, an include's target, HEAD for
 * `includeIf onbranch:`) changes, so repeated calls cost a few stats.
 *
 * Calls that arrive while the same folder's configuration is being listed
 * (New Draft starts five git calls at once) wait for that listing instead of
 * starting their own, and take its result only if no config file changed after
 * the listing began and none has changed since (as the first caller, which
 * uses its listing at once, they would have listed at about the same time).
 * Otherwise they list it themselves.
 */
export async function configOverrides(cwd: string, env: Environment): Promise<ConfigOverrides> {
  const cacheKey = [cwd, ...CONFIG_LOCATING_VARIABLES.map((name) => env[name] ?? '')].join('\0');
  const cached = cache.get(cacheKey);
  if (cached && (await fingerprint(cached.files)).print === cached.fingerprint) return cached.overrides;
  const running = listings.get(cacheKey);
  if (running) {
    const shared = await running.catch(() => undefined);
    if (shared?.seen && shared.seen.newest < shared.listedAt && (await fingerprint(shared.seen.files)).print === shared.seen.print)
      return shared.overrides;
    return (await listOverrides(cwd, env, cacheKey)).overrides;
  }
  const own = listOverrides(cwd, env, cacheKey);
  listings.set(cacheKey, own);
  void own.catch(() => undefined).finally(() => listings.delete(cacheKey));
  return (await own).overrides;
}

interface Listing {
  overrides: ConfigOverrides;
  listedAt: number;
  /**
   * The config files and their fingerprint right after the listing (none outside a repository); `newest`, their
   * last change, moved on by a coarse clock's step on a file system that keeps whole seconds.
   */
  seen?: { files: string[]; print: string; newest: number };
}

/** Listings of a folder's configuration under way, by cache key (see configOverrides). */
const listings = new Map<string, Promise<Listing>>();

async function listOverrides(cwd: string, env: Environment, cacheKey: string): Promise<Listing> {
  const listedAt = Date.now();
  const [dirs, listing] = await Promise.all([
    runQuietly(cwd, ['rev-parse', '--absolute-git-dir', '--git-common-dir'], env),
    runQuietly(cwd, ['config', '--list', '--show-scope', '--show-origin', '--includes', '-z'], env),
  ]);
  // git could not start (not installed, no such folder): the command itself fails the same way, and says why.
  if (!listing.started) return { overrides: overridesFor([], env), listedAt };
  if (!listing.ok) throw new Error(`git could not read the configuration in ${cwd}: ${listing.stderr.trim()}`);
  const entries = parseConfigListing(listing.stdout, cwd);
  const overrides = overridesFor(entries, env);
  // Outside a repository nothing is cached: the folder may become one.
  if (!dirs.ok) return { overrides, listedAt };
  const [gitDir = '', commonDir = ''] = dirs.stdout.trim().split('\n');
  const common = resolve(cwd, commonDir);
  const files = [
    ...new Set([
      join(common, 'config'),
      join(gitDir, 'config.worktree'),
      join(gitDir, 'HEAD'),
      ...entries.flatMap((entry) => (entry.file ? [entry.file] : [])),
      ...includedFiles(entries, env),
    ]),
  ];
  const { print, newest, coarse } = await fingerprint(files);
  if (newest < listedAt - (coarse ? RACY_MS_COARSE : RACY_MS_FINE)) {
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(cacheKey, { files, fingerprint: print, overrides });
  }
  return { overrides, listedAt, seen: { files, print, newest: coarse ? newest + RACY_MS_COARSE : newest } };
}

/**
 * The user's own (system, global) value of a key, ignoring the repository's.
 * For the keys git takes from the first file that sets them rather than the
 * last (remote.<name>.receivepack, uploadpack), where an override cannot win and
 * the caller passes the value as an option instead.
 */
export async function userConfigValue(cwd: string, key: string, env: Environment = process.env): Promise<string | undefined> {
  const listing = await runQuietly(cwd, ['config', '--list', '--show-scope', '--show-origin', '--includes', '-z'], env);
  if (!listing.ok) return undefined;
  return parseConfigListing(listing.stdout, cwd)
    .filter((entry) => USER_SCOPES.has(entry.scope) && entry.key === key)
    .at(-1)?.value;
}
