import { git } from './gitProcess';

/** Small read-only questions the editor asks git; src/vscode never runs git itself. */

/** The short name of the branch checked out in the repository, or "HEAD" when detached or unreadable. */
export async function currentBranchName(repoRoot: string): Promise<string> {
  return git(repoRoot, ['rev-parse', '--abbrev-ref', 'HEAD'])
    .then((result) => result.stdout.trim() || 'HEAD')
    .catch(() => 'HEAD');
}

export interface RecentRef {
  /** Short ref name (branch or tag). */
  name: string;
  shortSha: string;
}

/** Branches and tags, most recently committed first; none when git cannot list them. */
export async function recentRefs(repoRoot: string, count = 200): Promise<RecentRef[]> {
  const listed = await git(repoRoot, [
    'for-each-ref',
    '--sort=-committerdate',
    `--count=${count}`,
    '--format=%(refname:short)\t%(objectname:short)',
    'refs/heads',
    'refs/tags',
  ]).catch(() => undefined);
  return (listed?.stdout.trim().split('\n') ?? []).filter(Boolean).map((line) => {
    const [name = '', shortSha = ''] = line.split('\t');
    return { name, shortSha };
  });
}

/** The paths base..head changes (renames as a deletion and an addition). */
export async function changedPaths(repoRoot: string, baseSha: string, head: string): Promise<string[]> {
  const out = await git(repoRoot, ['diff', '--name-status', '-z', '--no-renames', '--no-ext-diff', baseSha, head, '--']);
  const fields = out.stdout.split('\0').filter(Boolean);
  const paths: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) paths.push(fields[i + 1]!);
  return paths;
}

/** The commit HEAD points at, or undefined in a repository without commits (or when git cannot tell). */
export async function headCommit(repoRoot: string): Promise<string | undefined> {
  const found = await git(repoRoot, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] }).catch(() => undefined);
  return found?.stdout.trim() || undefined;
}

/** A file's text at a commit; empty when the path does not exist there (an added or deleted file). */
export async function fileAtRevision(repoRoot: string, ref: string, path: string): Promise<string> {
  return git(repoRoot, ['show', `${ref}:${path}`])
    .then((result) => result.stdout)
    .catch(() => '');
}

/** git's user.email as the repository sees it (its own config, else the user's global one); undefined when unset. */
export async function gitUserEmail(repoRoot: string): Promise<string | undefined> {
  const found = await git(repoRoot, ['config', '--get', 'user.email'], { okExitCodes: [1], timeoutMs: 5_000 }).catch(() => undefined);
  return found?.stdout.trim() || undefined;
}
