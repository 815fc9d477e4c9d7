import { GitCommandError, git } from '../git/gitProcess';
import { parsePolicy, type PolicyDocument } from '../../core/policy/schema';

/** Where a repository keeps its own (restrict-only) policy. */
const REPOSITORY_POLICY_PATH = '.lanes/policy.yaml';

const MAX_REPOSITORY_POLICY_BYTES = 1024 * 1024;

export type RepositoryPolicyResult =
  | { kind: 'none'; baseSha: string }
  | { kind: 'ok'; baseSha: string; document: PolicyDocument; source: string }
  | { kind: 'invalid'; baseSha: string; errors: string[] };

/**
 * Reads `.lanes/policy.yaml` as it is in the change's base commit, from git's
 * object store; never from a worktree, where an agent could have edited it.
 */
export async function readRepositoryPolicy(repoRoot: string, baseSha: string): Promise<RepositoryPolicyResult> {
  const short = baseSha.slice(0, 12);
  const source = `${REPOSITORY_POLICY_PATH} at ${short}`;
  const invalid = (message: string): RepositoryPolicyResult => ({ kind: 'invalid', baseSha, errors: [`${source}: ${message}`] });
  if (!/^[0-9a-f]{7,64}$/i.test(baseSha))
    return invalid(`"${baseSha}" is not a commit id; the repository policy is read from the change's base commit.`);
  const options = { timeoutMs: 15_000 };
  let listing: string;
  try {
    await git(repoRoot, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${baseSha}^{commit}`], options);
    listing = (await git(repoRoot, ['ls-tree', '-z', '--full-tree', baseSha, '--', REPOSITORY_POLICY_PATH], options)).stdout;
  } catch (error) {
    const text = error instanceof GitCommandError ? error.stderr : (error as Error).message;
    const detail = text.trim().split('\n')[0] || 'it is not in this repository';
    return invalid(`cannot read the base commit ${short} (${detail}); fetch it, or start the change again from an existing commit.`);
  }
  const entry = listing.split('\0').find(Boolean);
  if (!entry) return { kind: 'none', baseSha };
  const match = /^(\d+) (\w+) ([0-9a-f]+)\t/.exec(entry);
  if (!match) return invalid(`git listed it in an unexpected form (${JSON.stringify(entry)}).`);
  const [, mode, type, objectId] = match as unknown as [string, string, string, string];
  if (mode === '120000') return invalid('is a symbolic link in the base commit; the repository policy must be a regular file.');
  if (type !== 'blob') return invalid(`is a ${type} in the base commit, not a file.`);
  const size = Number((await git(repoRoot, ['cat-file', '-s', objectId], options)).stdout.trim());
  if (size > MAX_REPOSITORY_POLICY_BYTES)
    return invalid(`is ${size} bytes; a repository policy may have at most ${MAX_REPOSITORY_POLICY_BYTES}.`);
  const text = (await git(repoRoot, ['cat-file', 'blob', objectId], options)).stdout;
  const parsed = parsePolicy(text, source, { defaultMetadata: { id: 'repository', version: short } });
  if (!parsed.ok) return { kind: 'invalid', baseSha, errors: parsed.errors };
  return { kind: 'ok', baseSha, document: parsed.policy, source };
}
