import { execFile } from 'node:child_process';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type AgentPreset, presetProgram } from '../../core/draft/agentPresets';

const run = promisify(execFile);

export interface InstalledAgentCli {
  /** The program to run (inside the install prefix). */
  program: string;
  /** The install prefix: bound read-only into the boundary. */
  prefix: string;
  version: string;
}

export class AgentCliInstallError extends Error {}

/**
 * Where a preset's CLI is installed: one folder per package and version, never shared with another version.
 * @internal Exported for the end-to-end test, which places a cached CLI where the extension looks.
 */
export function agentCliPrefix(cacheRoot: string, preset: AgentPreset): string {
  return join(cacheRoot, `${preset.id}-${preset.version}`);
}

/** The installed CLI when it is there at the pinned version, else undefined (nothing is installed). */
export async function findAgentCli(cacheRoot: string, preset: AgentPreset): Promise<InstalledAgentCli | undefined> {
  const prefix = agentCliPrefix(cacheRoot, preset);
  const manifest = join(prefix, 'node_modules', ...preset.npmPackage.split('/'), 'package.json');
  const version = await readFile(manifest, 'utf8')
    .then((text) => (JSON.parse(text) as { version?: string }).version)
    .catch(() => undefined);
  if (version !== preset.version) return undefined;
  const program = join(prefix, presetProgram(preset, process.platform, process.arch));
  if (!(await stat(program).catch(() => undefined))?.isFile()) return undefined;
  return { program, prefix, version };
}

/**
 * Installs the preset's CLI once, at its pinned version, into the cache
 * (`npm install --prefix`, no install scripts: native CLIs are run from
 * their platform package). The install goes to a scratch folder renamed into
 * place, so a cut-off install is never taken for a finished one.
 */
export async function installAgentCli(
  cacheRoot: string,
  preset: AgentPreset,
  options: { npm?: string; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<InstalledAgentCli> {
  const found = await findAgentCli(cacheRoot, preset);
  if (found) return found;
  const prefix = agentCliPrefix(cacheRoot, preset);
  const scratch = `${prefix}.partial-${process.pid}`;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const spec = `${preset.npmPackage}@${preset.version}`;
  try {
    await run(
      options.npm ?? 'npm',
      ['install', '--prefix', scratch, '--no-audit', '--no-fund', '--no-save', '--ignore-scripts', '--loglevel=error', spec],
      { timeout: options.timeoutMs ?? 10 * 60_000, maxBuffer: 16 * 1024 * 1024, ...(options.signal ? { signal: options.signal } : {}) },
    );
    await rm(prefix, { recursive: true, force: true });
    await rename(scratch, prefix);
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-3).join(' ') || (error as Error).message;
    throw new AgentCliInstallError(
      `Could not install ${preset.label} (${spec}): ${detail}. Install it by hand with "npm install -g ${spec}" and add it to agentLanes.agents, or check the npm registry can be reached.`,
    );
  }
  const installed = await findAgentCli(cacheRoot, preset);
  if (!installed)
    throw new AgentCliInstallError(
      `${preset.label} (${spec}) was installed, but its program for ${process.platform}-${process.arch} is not there: this platform is not supported by the preset.`,
    );
  return installed;
}
