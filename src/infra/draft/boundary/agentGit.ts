import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { git } from '../../git/gitProcess';
import { sparseFolders } from '../../git/worktreeState';

/**
 * The agent's own git repository. Inside the boundary the worktree's `.git`
 * file points here instead of into the user's repository, so `git status`,
 * `diff`, `log` and `commit` work while nothing the agent does with git can
 * reach the user's config, hooks, refs or `info/` files: this repository
 * borrows the user's objects read-only (objects/info/alternates, mounted
 * read-only in the boundary) and keeps everything it writes to itself. It is
 * made afresh for every run, and the lane never reads anything from it: only
 * the files the agent left in the worktree are committed.
 */
export interface AgentGit {
  /** The repository the agent's git uses (bound read-write in the boundary). */
  gitDir: string;
  /** A file holding `gitdir: <gitDir>`, bound read-only over the worktree's `.git`. */
  gitFile: string;
  /** The user's object store, bound read-only in the boundary. */
  objectsDir: string;
}

export interface PrepareAgentGitOptions {
  repoRoot: string;
  worktreePath: string;
  /** A private folder of this run, outside the worktree. */
  dir: string;
  /** The lane branch's name and commit: the agent starts on it. */
  branch: string;
  headSha: string;
}

const AGENT_IDENTITY = { name: 'Agent (in Agent Lanes)', email: 'agent@agent-lanes.invalid' };

export async function prepareAgentGit(options: PrepareAgentGitOptions): Promise<AgentGit> {
  const commonDir = (await git(options.repoRoot, ['rev-parse', '--path-format=absolute', '--git-common-dir'])).stdout.trim();
  const objectsDir = join(commonDir, 'objects');
  const gitDir = join(options.dir, 'repository');
  await rm(options.dir, { recursive: true, force: true });
  const branchRef = `refs/heads/${options.branch}`;
  await mkdir(join(gitDir, 'objects', 'info'), { recursive: true, mode: 0o700 });
  await mkdir(join(gitDir, 'objects', 'pack'), { recursive: true });
  await mkdir(join(gitDir, 'refs', 'tags'), { recursive: true });
  await mkdir(dirname(join(gitDir, branchRef)), { recursive: true });
  await writeFile(join(gitDir, 'objects', 'info', 'alternates'), `${objectsDir}\n`);
  await writeFile(join(gitDir, 'HEAD'), `ref: ${branchRef}\n`);
  await writeFile(join(gitDir, branchRef), `${options.headSha}\n`);
  await writeFile(
    join(gitDir, 'config'),
    [
      '[core]',
      '\trepositoryformatversion = 0',
      '\tfilemode = true',
      '\tbare = false',
      '\tlogallrefupdates = true',
      '[user]',
      `\tname = ${AGENT_IDENTITY.name}`,
      `\temail = ${AGENT_IDENTITY.email}`,
      '',
    ].join('\n'),
  );
  // A shallow repository's history ends where its `shallow` file says.
  await copyFile(join(commonDir, 'shallow'), join(gitDir, 'shallow')).catch(() => undefined);
  const gitFile = join(options.dir, 'dot-git');
  await writeFile(gitFile, `gitdir: ${gitDir}\n`);
  // The index, so that `git status` in the boundary starts clean. A sparse worktree's own index is copied: its
  // skip-worktree bits keep the folders outside the cone from showing as deleted.
  const own = ['--git-dir', gitDir, '--work-tree', options.worktreePath];
  if (await sparseFolders(options.worktreePath)) {
    const index = await git(options.worktreePath, ['rev-parse', '--path-format=absolute', '--git-path', 'index']);
    await copyFile(index.stdout.trim(), join(gitDir, 'index'));
  } else await git(options.worktreePath, [...own, 'read-tree', options.headSha]);
  await git(options.worktreePath, [...own, 'update-index', '-q', '--refresh'], { okExitCodes: [1] });
  return { gitDir, gitFile, objectsDir };
}
