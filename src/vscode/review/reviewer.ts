import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import { git } from '../../infra/git/gitProcess';

const SIGN_IN_TIMEOUT_MS = 1_500;
/** Who the reviewer is changes rarely; asking the sign-in provider each time can be slow. */
const IDENTITY_CACHE_MS = 60_000;

/** The GitHub account VS Code is signed in to, without prompting; undefined when none (or no GitHub provider). */
async function githubAccount(logger: Logger): Promise<string | undefined> {
  try {
    const session = await Promise.race([
      vscode.authentication.getSession('github', ['read:user'], { silent: true }),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), SIGN_IN_TIMEOUT_MS)),
    ]);
    return session?.account.label;
  } catch (error) {
    logger.debug(`No GitHub session: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * Who the reviewer of a repository is: the GitHub account when signed in to VS
 * Code, else git's user.email there; undefined when neither is known. Answers
 * are kept for a minute per repository.
 */
export function reviewerLookup(logger: Logger): (repoRoot: string) => Promise<string | undefined> {
  const known = new Map<string, { at: number; value: Promise<string | undefined> }>();
  const lookUp = async (repoRoot: string): Promise<string | undefined> => {
    const account = await githubAccount(logger);
    if (account) return account;
    const email = await git(repoRoot, ['config', '--get', 'user.email'], { okExitCodes: [1] });
    return email.stdout.trim() || undefined;
  };
  return (repoRoot) => {
    const cached = known.get(repoRoot);
    if (cached && Date.now() - cached.at < IDENTITY_CACHE_MS) return cached.value;
    const value = lookUp(repoRoot);
    known.set(repoRoot, { at: Date.now(), value });
    value.catch(() => known.delete(repoRoot));
    return value;
  };
}
