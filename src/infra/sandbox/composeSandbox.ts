import { chmod, mkdir, realpath, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { stringify } from 'yaml';
import { checkCompose, composeFilePaths, describeComposeRefusals, type ComposeCheck } from '../../core/sandbox/composeCheck';
import { buildComposeProject, composeProjectName } from '../../core/sandbox/composeConfig';
import type { DevcontainerAllowances, DevcontainerCheck } from '../../core/sandbox/devcontainerCheck';
import type { SandboxLimits } from '../../core/sandbox/sandboxPolicy';
import { findOnPath, runEngine, type ContainerEngine } from './engine';
import { SandboxError, type SandboxSource } from './types';

/**
 * Docker Compose dev containers in the sandbox. The repository's Compose
 * files (from the base commit) are checked service by service
 * (core/sandbox/composeCheck.ts); the sandbox then writes a Compose file of
 * its own (core/sandbox/composeConfig.ts) into its private folder and runs
 * it through the dev containers CLI (`--docker-compose-path`).
 *
 * With podman the Compose implementation is `podman-compose` (Debian's
 * package). Version 1.0.3 (Debian 12) lacks what the dev containers CLI
 * calls (`version --short`, `config`, `--profile`) and ignores
 * `network_mode` (it always adds the project network) and `pids_limit`, so
 * the sandbox puts two small shell adapters in front of it: one answers the
 * CLI's questions from the sandbox's own file, one in front of podman gives
 * every container the network its `network_mode` names (none, unless policy
 * opens one) and policy's process limit, and builds with the preparation
 * network. Every container of the project is inspected after `up`.
 */

/** The Compose check of a devcontainer.json, with the Compose files read from the base commit. */
export async function checkComposeSource(
  source: SandboxSource,
  check: DevcontainerCheck,
  allow: DevcontainerAllowances,
): Promise<ComposeCheck> {
  const devcontainer = source.devcontainer!;
  const paths = composeFilePaths(check.config, devcontainer.path);
  if ('problem' in paths) throw new SandboxError('refused', `${check.fileName}: dockerComposeFile ${paths.problem}.`);
  const files = await Promise.all(
    paths.paths.map(async (path) => ({ path, text: source.readBaseFile ? await source.readBaseFile(path) : undefined })),
  );
  const compose = checkCompose(check.config, devcontainer.path, files, allow);
  if (compose.refusals.length > 0) throw new SandboxError('refused', describeComposeRefusals(check.fileName, compose));
  return compose;
}

/** What the sandbox wrote for a Compose dev container. */
export interface ComposeFiles {
  project: string;
  composeFile: string;
  /** Given to the dev containers CLI as `--docker-compose-path`; undefined: the CLI finds docker compose itself. */
  composeCommand?: string;
  builtImages: string[];
}

const COMPOSE_ADAPTER = `#!/bin/sh
# Written by Agent Lanes: podman-compose for the dev containers CLI.
# Answers what podman-compose 1.0.3 lacks; everything else goes to podman-compose
# with the podman adapter in front of podman.
if [ "$1" = version ] && [ "$2" = --short ]; then echo 2.20.0; exit 0; fi
n=$#
files=''
while [ "$n" -gt 0 ]; do
  a=$1; shift; n=$((n - 1))
  case "$a" in
    --profile) shift; n=$((n - 1)); continue ;;
    -f) files="$files
$1" ;;
    config) printf '%s\\n' "$files" | while IFS= read -r f; do [ -n "$f" ] && cat "$f"; done; exit 0 ;;
  esac
  set -- "$@" "$a"
done
exec __COMPOSE__ --podman-path __PODMAN_ADAPTER__ "$@"
`;

const PODMAN_ADAPTER = `#!/bin/sh
# Written by Agent Lanes: podman for podman-compose. podman-compose 1.0.3 puts a service's
# network_mode first (--network MODE) and then adds the project network and an alias anyway
# (--net NAME --network-alias SERVICE), before the image: a container whose service names its
# network gets only that one. Only these first occurrences are touched, never the command's
# arguments after the image. Builds use the preparation network; containers get policy's
# process limit.
if [ "$1" = build ]; then shift; exec __PODMAN__ build __BUILD_NETWORK__ "$@"; fi
if [ "$1" != run ] && [ "$1" != create ]; then exec __PODMAN__ "$@"; fi
sub=$1; shift
mode=''
prev=''
for a in "$@"; do
  if [ "$prev" = --network ]; then mode=$a; break; fi
  prev=$a
done
n=$#
drop=0
seen=' '
while [ "$n" -gt 0 ]; do
  a=$1; shift; n=$((n - 1))
  if [ "$drop" = 1 ]; then drop=0; continue; fi
  if [ -n "$mode" ]; then
    case "$a" in
      --net|--network|--network-alias)
        case "$seen" in *" $a "*) ;; *) seen="$seen$a "; drop=1; continue ;; esac ;;
    esac
  fi
  set -- "$@" "$a"
done
if [ -n "$mode" ]; then set -- "--network=$mode" "$@"; fi
exec __PODMAN__ "$sub" __LIMITS__ "$@"
`;

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The real path of a repository-relative folder of the worktree; refused when a symlink leads it outside. */
async function insideWorktree(worktreeReal: string, repoRelative: string, what: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(join(worktreeReal, repoRelative));
  } catch {
    throw new SandboxError('refused', `${what} (${repoRelative}) does not exist in the change's worktree.`);
  }
  const rel = relative(worktreeReal, real);
  if (rel === '..' || rel.startsWith(`..${sep}`) || rel.startsWith(sep))
    throw new SandboxError(
      'refused',
      `${what} (${repoRelative}) leads outside the change's worktree (a symbolic link to ${real}); no container was started.`,
    );
  return real;
}

/**
 * Writes the sandbox's Compose file, the base commit's Dockerfiles and env
 * files, and (for podman) the adapters, into `dir` (private, outside every
 * worktree).
 */
export async function writeComposeProject(options: {
  dir: string;
  changeId: string;
  role: string;
  compose: ComposeCheck;
  source: SandboxSource;
  worktreeReal: string;
  engine: ContainerEngine;
  creationNetwork: 'none' | 'bridge' | 'host';
  limits: SandboxLimits;
  labels: Record<string, string>;
}): Promise<ComposeFiles> {
  const { dir, compose, source, worktreeReal, engine } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const readBase = async (path: string, what: string): Promise<string> => {
    const text = source.readBaseFile ? await source.readBaseFile(path) : undefined;
    if (text === undefined)
      throw new SandboxError('refused', `${what} ${path} could not be read from the base commit; commit it, then run the tasks again.`);
    return text;
  };
  const dockerfiles: Record<string, string> = {};
  const envFiles: Record<string, string> = {};
  let index = 0;
  for (const service of compose.services) {
    for (const mount of service.mounts)
      if (mount.kind === 'worktree') await insideWorktree(worktreeReal, mount.source, `The mount source of service ${service.name}`);
    if (service.build) {
      await insideWorktree(worktreeReal, service.build.context, `The build context of service ${service.name}`);
      const file = join(dir, `Dockerfile.${index++}`);
      await writeFile(file, await readBase(service.build.dockerfile, `The Dockerfile of service ${service.name},`), { mode: 0o600 });
      dockerfiles[service.name] = file;
    }
    for (const envFile of service.envFiles) {
      if (envFiles[envFile]) continue;
      const file = join(dir, `env.${index++}`);
      await writeFile(file, await readBase(envFile, `The env file of service ${service.name},`), { mode: 0o600 });
      envFiles[envFile] = file;
    }
  }
  const project = composeProjectName(options.changeId, options.role);
  const built = buildComposeProject(compose, {
    project,
    worktreePath: worktreeReal,
    creationNetwork: options.creationNetwork,
    limits: options.limits,
    labels: options.labels,
    dockerfiles,
    envFiles,
  });
  const composeFile = join(dir, 'compose.yml');
  await writeFile(composeFile, stringify(built.compose), { mode: 0o600 });
  if (engine.kind !== 'podman') return { project, composeFile, builtImages: built.builtImages };

  const podmanCompose = await findOnPath('podman-compose');
  if (!podmanCompose)
    throw new SandboxError(
      'engine',
      'This devcontainer.json uses Docker Compose, and podman-compose was not found. Install it (`sudo apt-get install -y podman-compose`, or `pip install podman-compose`), then run the tasks again.',
    );
  const podmanAdapter = join(dir, 'podman-adapter.sh');
  const composeAdapter = join(dir, 'compose-adapter.sh');
  const buildNetwork = options.creationNetwork === 'bridge' ? '' : `--network=${options.creationNetwork}`;
  const limits = options.limits.pids !== undefined ? `--pids-limit=${options.limits.pids}` : '';
  await writeFile(
    podmanAdapter,
    PODMAN_ADAPTER.replaceAll('__PODMAN__', shellQuote(engine.path))
      .replace('__BUILD_NETWORK__', buildNetwork)
      .replace('__LIMITS__', limits),
    { mode: 0o700 },
  );
  await writeFile(
    composeAdapter,
    COMPOSE_ADAPTER.replace('__COMPOSE__', shellQuote(podmanCompose)).replace('__PODMAN_ADAPTER__', shellQuote(podmanAdapter)),
    { mode: 0o700 },
  );
  await chmod(podmanAdapter, 0o700);
  await chmod(composeAdapter, 0o700);
  return { project, composeFile, composeCommand: composeAdapter, builtImages: built.builtImages };
}

/** The ids of every container of a Compose project (podman-compose and docker compose both label them). */
export async function composeContainerIds(engine: ContainerEngine, project: string, timeoutMs: number): Promise<string[]> {
  const result = await runEngine(engine, ['ps', '-a', '-q', '--no-trunc', '--filter', `label=com.docker.compose.project=${project}`], {
    timeoutMs,
  });
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

/** Removes what a Compose project leaves besides its containers: its networks, volumes and built images. */
export async function removeComposeLeftovers(engine: ContainerEngine, project: string, builtImages: readonly string[], timeoutMs: number) {
  const ids = await composeContainerIds(engine, project, timeoutMs);
  if (ids.length) await runEngine(engine, ['rm', '-f', '-v', '-t', '0', ...ids], { timeoutMs, okExitCodes: [1] });
  for (const kind of ['network', 'volume'] as const) {
    const listed = await runEngine(engine, [kind, 'ls', '--format', '{{.Name}}'], { timeoutMs, okExitCodes: [1, 125] });
    const names = listed.stdout.split('\n').filter((name) => name.startsWith(`${project}_`));
    if (names.length) await runEngine(engine, [kind, 'rm', ...names], { timeoutMs, okExitCodes: [1, 2, 125] });
  }
  for (const image of builtImages) await runEngine(engine, ['rmi', image], { timeoutMs, okExitCodes: [1, 2, 125] }).catch(() => undefined);
}
