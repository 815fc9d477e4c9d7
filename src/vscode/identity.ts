import { userInfo } from 'node:os';
import * as vscode from 'vscode';
import { simpleGit } from 'simple-git';

/**
 * Who the person at the keyboard is: the GitHub account when signed in to VS
 * Code (asked silently, never prompting), else git's user.email, else the OS user.
 */
export async function whoAmI(repoRoot?: string): Promise<string> {
  try {
    const session = await vscode.authentication.getSession('github', ['read:user'], { silent: true });
    if (session?.account.label) return session.account.label;
  } catch {
    // No GitHub authentication provider here: fall back to git.
  }
  if (repoRoot) {
    const email = await simpleGit({ baseDir: repoRoot, timeout: { block: 5_000 } })
      .raw(['config', '--get', 'user.email'])
      .then((out) => out.trim())
      .catch(() => '');
    if (email) return email;
  }
  return userInfo().username;
}
