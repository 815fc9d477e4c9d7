import { hasControlCharacters, isLaneBranch } from '../../core/draft/draft';
import { LaneError } from '../../core/errors';
import { git } from './gitProcess';
import { sparseFolders, symbolicHead } from './worktreeState';

/** @internal Exported for its unit tests; the product calls it inside this module. */
export class LaneCommitError extends LaneError {
  constructor(message: string) {
    super('laneCommit', message);
  }
}

export interface GitIdentity {
  name: string;
  email: string;
}

/** Used for whatever part of the identity the user's git config does not set. */
const FALLBACK_IDENTITY: GitIdentity = { name: 'Agent Lanes', email: 'agent-lanes@localhost' };

export interface CommitLaneWorkOptions {
  worktreePath: string;
  /** The lane branch the worktree must still have checked out. */
  branch: string;
  baseSha: string;
  changeId: string;
  agentId: string;
  /** The prompt's reference id (the prompt itself never goes into the commit). */
  promptRef: string;
  /** First line of the message; the caller redacts it. Default: "Agent Lanes draft <change id>". */
  subject?: string;
  body?: string;
  fallbackIdentity?: GitIdentity;
}

export interface LaneCommitResult {
  /** noChanges: the lane's tree equals the base's (the change stays in Draft, marked "no changes"). */
  outcome: 'committed' | 'noChanges';
  headSha: string;
  /** False when nothing was left to stage (the agent committed itself, or changed nothing). */
  createdCommit: boolean;
  /** Paths git refused to stage (e.g. a path with a .git component); flag them as gitPath. */
  refusedPaths: string[];
  identity: GitIdentity & { fallback: boolean };
  /** Set when the lane squashed base..head into headSha (policy lanes.pullRequests.secretInHistory: squash). */
  squashed?: { commits: number; previousHeadSha: string };
  /** The folders of a sparse worktree (cone mode); absent for a whole one. Files outside them were committed too. */
  sparsePaths?: string[];
}

/** One line, no control characters: a trailer value cannot smuggle another trailer. */
function trailerValue(value: string): string {
  const oneLine = [...value].map((char) => (hasControlCharacters(char) ? ' ' : char)).join('');
  return oneLine.replace(/ {2,}/g, ' ').trim() || '(none)';
}

/** The commit message: subject, optional body, then the trailers as the last paragraph. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function laneCommitMessage(options: Pick<CommitLaneWorkOptions, 'changeId' | 'agentId' | 'promptRef' | 'subject' | 'body'>): string {
  const subject = trailerValue(options.subject ?? `Agent Lanes draft ${options.changeId}`);
  const paragraphs = [subject];
  const body = options.body?.trim();
  if (body) paragraphs.push(body);
  paragraphs.push(
    [
      `Lanes-Change-Id: ${trailerValue(options.changeId)}`,
      `AI-Agent: ${trailerValue(options.agentId)}`,
      `AI-Prompt-Ref: ${trailerValue(options.promptRef)}`,
    ].join('\n'),
  );
  return `${paragraphs.join('\n\n')}\n`;
}

async function resolveIdentity(
  worktreePath: string,
  fallback: GitIdentity,
): Promise<{ env: Record<string, string>; identity: GitIdentity & { fallback: boolean } }> {
  const configured = await git(worktreePath, ['config', '--get-regexp', '^user\\.(name|email)$'], { okExitCodes: [1] });
  const values = new Map<string, string>();
  for (const line of configured.stdout.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) values.set(line.slice(0, space).toLowerCase(), line.slice(space + 1).trim());
  }
  const name = process.env.GIT_AUTHOR_NAME || values.get('user.name') || '';
  const email = process.env.GIT_AUTHOR_EMAIL || values.get('user.email') || '';
  const identity = { name: name || fallback.name, email: email || fallback.email, fallback: !name || !email };
  const env: Record<string, string> = {};
  if (identity.fallback) {
    env.GIT_AUTHOR_NAME = env.GIT_COMMITTER_NAME = identity.name;
    env.GIT_AUTHOR_EMAIL = env.GIT_COMMITTER_EMAIL = identity.email;
  }
  return { env, identity };
}

/** Parses the paths `git add --ignore-errors` could not stage. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function parseRefusedPaths(stderr: string): string[] {
  const paths = new Set<string>();
  for (const line of stderr.split('\n')) {
    const match =
      /^error: (?:invalid path|unable to add|unable to index file|unable to stat) '(.*)'/.exec(line) ?? /^error: open\("(.*)"\)/.exec(line);
    if (match?.[1]) paths.add(match[1]);
  }
  return [...paths];
}

/**
 * Replaces the lane branch's commits base..head with one commit of head's tree
 * on the base, with the lane's own message and identity (so no message, author
 * or intermediate version of the agent's commits stays in what is pushed). The
 * branch moves only if it is still at headSha; the worktree's files and index
 * already match the tree, so nothing in it changes.
 */
export async function squashLaneCommits(
  options: Pick<
    CommitLaneWorkOptions,
    'worktreePath' | 'branch' | 'baseSha' | 'changeId' | 'agentId' | 'promptRef' | 'subject' | 'body' | 'fallbackIdentity'
  > & {
    headSha: string;
  },
): Promise<{ headSha: string; commits: number }> {
  const { worktreePath, branch, baseSha, headSha } = options;
  if (!isLaneBranch(branch)) throw new LaneCommitError(`"${branch}" is not a lane branch; only lanes/… branches are squashed.`);
  const counted = await git(worktreePath, ['rev-list', '--count', `${baseSha}..${headSha}`, '--']);
  const { env } = await resolveIdentity(worktreePath, options.fallbackIdentity ?? FALLBACK_IDENTITY);
  const made = await git(worktreePath, ['commit-tree', `${headSha}^{tree}`, '-p', baseSha, '-F', '-'], {
    input: laneCommitMessage(options),
    env,
  });
  const squashed = made.stdout.trim();
  await git(worktreePath, ['update-ref', '-m', 'Agent Lanes: squash the lane commits', `refs/heads/${branch}`, squashed, headSha]);
  return { headSha: squashed, commits: Number(counted.stdout.trim()) };
}

/**
 * Commits everything the agent left in the worktree (additions, edits and
 * deletions; ignored files stay out) on the lane branch, with the Lanes trailers.
 * Paths git refuses to store are reported, not fatal. Hooks never run.
 */
export async function commitLaneWork(options: CommitLaneWorkOptions): Promise<LaneCommitResult> {
  const { worktreePath, branch, baseSha } = options;
  if (!isLaneBranch(branch))
    throw new LaneCommitError(`"${branch}" is not a lane branch; lane work is committed only on lanes/… branches.`);
  // Independent reads at once: which branch the worktree is on, who commits, and whether the worktree is sparse
  // (then what the agent wrote outside its folders is staged too, with --sparse, and flagged by the caller; an older
  // git without sparse-checkout answers 1 or 128: not sparse either).
  const identityRead = resolveIdentity(worktreePath, options.fallbackIdentity ?? FALLBACK_IDENTITY);
  identityRead.catch(() => undefined);
  const sparseRead = sparseFolders(worktreePath);
  sparseRead.catch(() => undefined);
  const onBranch = await symbolicHead(worktreePath);
  if (onBranch !== `refs/heads/${branch}`) {
    const now = onBranch ? onBranch.replace('refs/heads/', '') : 'a detached HEAD';
    throw new LaneCommitError(
      `The worktree at ${worktreePath} is on ${now}, not on its lane branch ${branch} (did the agent switch branches?). Nothing was committed; check out ${branch} in the worktree and try again.`,
    );
  }
  const sparsePaths = await sparseRead;
  const added = await git(worktreePath, ['add', '--all', ...(sparsePaths ? ['--sparse'] : []), '--ignore-errors', '--', '.'], {
    okExitCodes: [1],
  });
  const refusedPaths = parseRefusedPaths(added.stderr);
  if (added.exitCode !== 0 && refusedPaths.length === 0) {
    throw new LaneCommitError(
      `Could not stage the agent's changes in ${worktreePath}: ${added.stderr.trim() || `git add exited with ${added.exitCode}`}`,
    );
  }
  const { env, identity } = await identityRead;
  // The commit is tried at once; git exits 1 when nothing is staged, and only then is the index asked whether that
  // was why (one git process less in the common case, where the agent changed something).
  // No automatic gc or maintenance in the user's repository because a lane committed (it would repack their refs).
  const committed = await git(
    worktreePath,
    ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', 'commit', '--quiet', '--no-verify', '--cleanup=whitespace', '-F', '-'],
    { input: laneCommitMessage(options), env, okExitCodes: [1] },
  );
  const createdCommit = committed.exitCode === 0;
  if (!createdCommit) {
    const staged = await git(worktreePath, ['diff', '--cached', '--quiet', '--no-ext-diff'], { okExitCodes: [1] });
    if (staged.exitCode === 1)
      throw new LaneCommitError(
        `Could not commit the agent's changes in ${worktreePath}: ${(committed.stderr || committed.stdout).trim() || 'git commit exited with 1'}`,
      );
  }
  const revs = await git(worktreePath, ['rev-parse', 'HEAD', 'HEAD^{tree}', `${baseSha}^{tree}`]);
  const [headSha = '', headTree, baseTree] = revs.stdout.trim().split('\n');
  return {
    outcome: headTree === baseTree ? 'noChanges' : 'committed',
    headSha,
    createdCommit,
    refusedPaths,
    identity,
    ...(sparsePaths?.length ? { sparsePaths } : {}),
  };
}
