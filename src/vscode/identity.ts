import { userInfo } from 'node:os';
import * as vscode from 'vscode';
import { gitUserEmail } from '../infra/git/queries';

/** How long to wait for the GitHub sign-in provider, which can be slow to answer. */
const SIGN_IN_TIMEOUT_MS = 1_500;
/** Who the person is changes rarely; asking the sign-in provider each time can be slow. */
const IDENTITY_CACHE_MS = 60_000;

export interface Identity {
  id: string;
  /** github: the VS Code GitHub session; git: user.email; os: the OS account. */
  source: 'github' | 'git' | 'os';
}

/** The GitHub account VS Code is signed in to, asked silently (never prompting); undefined when none answers in time. */
async function githubAccount(): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const session = await Promise.race([
      vscode.authentication.getSession('github', ['read:user'], { silent: true }),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), SIGN_IN_TIMEOUT_MS))),
    ]);
    return session?.account.label || undefined;
  } catch {
    // No GitHub authentication provider here: the caller falls back to git.
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

async function lookUp(repoRoot: string | undefined): Promise<Identity> {
  const account = await githubAccount();
  if (account) return { id: account, source: 'github' };
  const email = repoRoot ? await gitUserEmail(repoRoot) : undefined;
  if (email) return { id: email, source: 'git' };
  return { id: userInfo().username, source: 'os' };
}

const identities = new Map<string, { at: number; value: Promise<Identity> }>();

/**
 * Who the person at the keyboard is: the GitHub account VS Code is signed in to
 * (asked silently, 1.5 s at most), else git's user.email for the repository,
 * else the OS user. Cached per repository for a minute.
 */
export function identify(repoRoot?: string): Promise<Identity> {
  const key = repoRoot ?? '';
  const cached = identities.get(key);
  if (cached && Date.now() - cached.at < IDENTITY_CACHE_MS) return cached.value;
  const value = lookUp(repoRoot);
  identities.set(key, { at: Date.now(), value });
  value.catch(() => identities.delete(key));
  return value;
}

/** identify() as the id alone, for callers that only record who acted. */
export async function whoAmI(repoRoot?: string): Promise<string> {
  return (await identify(repoRoot)).id;
}
