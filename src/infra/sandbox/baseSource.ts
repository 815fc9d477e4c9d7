import { LANES_CONFIG_PATH, type LanesConfig, parseLanesConfig } from '../../core/sandbox/lanesConfig';
import { git } from '../git/gitProcess';
import type { SandboxSource } from './types';

/** Where a repository's dev container configuration may be, in the order the dev containers spec looks. */
const DEVCONTAINER_PATHS = ['.devcontainer/devcontainer.json', '.devcontainer.json'] as const;

/** A file of a commit, or undefined when the commit has no such file. */
async function readCommitFile(repoRoot: string, sha: string, path: string): Promise<string | undefined> {
  const exists = await git(repoRoot, ['cat-file', '-e', `${sha}:${path}`], { okExitCodes: [1, 128] });
  if (exists.exitCode !== 0) return undefined;
  return (await git(repoRoot, ['show', `${sha}:${path}`])).stdout;
}

/** The files of a commit under a folder (a local dev container feature). */
async function listCommitFiles(repoRoot: string, sha: string, folder: string): Promise<string[]> {
  const listed = await git(repoRoot, ['ls-tree', '-r', '-z', '--name-only', sha, '--', `${folder}/`], { okExitCodes: [128] });
  return listed.exitCode === 0 ? listed.stdout.split('\0').filter(Boolean) : [];
}

/**
 * Reads what decides the sandbox from the BASE commit: devcontainer.json
 * and `.lanes/lanes.yaml`. An agent that edits them in its worktree changes
 * nothing about its own sandbox. Throws LanesConfigError for a bad lanes.yaml.
 */
export async function readSandboxSource(repoRoot: string, baseSha: string): Promise<{ source: SandboxSource; lanesConfig: LanesConfig }> {
  const short = baseSha.slice(0, 7);
  let devcontainer: SandboxSource['devcontainer'];
  for (const path of DEVCONTAINER_PATHS) {
    const text = await readCommitFile(repoRoot, baseSha, path);
    if (text !== undefined) {
      devcontainer = { path, text, label: `${path} (base ${short})` };
      break;
    }
  }
  const lanesConfig = parseLanesConfig(await readCommitFile(repoRoot, baseSha, LANES_CONFIG_PATH), `${LANES_CONFIG_PATH} (base ${short})`);
  return {
    source: {
      ...(devcontainer ? { devcontainer } : {}),
      readBaseFile: (path) => readCommitFile(repoRoot, baseSha, path),
      listBaseFiles: (folder) => listCommitFiles(repoRoot, baseSha, folder),
      prepare: lanesConfig.prepare,
    },
    lanesConfig,
  };
}
