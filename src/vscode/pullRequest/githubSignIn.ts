import * as vscode from 'vscode';
import { LaneError } from '../../core/errors';
import type { Logger } from '../../core/logger';
import { API_BASE_URL_SETTING, DEFAULT_API_BASE_URL } from '../../infra/github/client';
import { Commands } from '../constants';

const REPO_SCOPE = 'repo';
const TOKEN_KEY_PREFIX = 'agentLanes.github.token:';

/** A token for GitHub and where it came from (a stored one is asked for again differently). */
export interface GitHubToken {
  token: string;
  source: 'session' | 'stored';
}

/** Sign-in could not give a token; the message says what to do, and the button signs in with a token. */
export class SignInError extends LaneError {
  constructor(message: string) {
    super('signIn', message, { actions: [{ title: 'Sign In with a Token', command: Commands.signInWithToken }] });
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return url;
  }
}

/**
 * Tokens for GitHub: VS Code's GitHub session (github.com) or GitHub
 * Enterprise session (any other API), or a token the person stored for that
 * API with "Agent Lanes: Sign In to GitHub with a Token" (in SecretStorage). The
 * token is handed to the GitHub client in memory and nowhere else.
 */
export class GitHubSignIn {
  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly logger: Logger,
  ) {}

  provider(apiBaseUrl: string): 'github' | 'github-enterprise' {
    return apiBaseUrl === DEFAULT_API_BASE_URL ? 'github' : 'github-enterprise';
  }

  private key(apiBaseUrl: string): string {
    return `${TOKEN_KEY_PREFIX}${apiBaseUrl}`;
  }

  /** A stored token first (the person chose it for this API), then the session: silently, then (interactive) asking. */
  async access(apiBaseUrl: string, interactive: boolean): Promise<GitHubToken | undefined> {
    const stored = await this.secrets.get(this.key(apiBaseUrl));
    if (stored) return { token: stored, source: 'stored' };
    const provider = this.provider(apiBaseUrl);
    this.checkEnterpriseServer(apiBaseUrl, provider);
    try {
      const session = await vscode.authentication.getSession(provider, [REPO_SCOPE], { silent: true });
      if (session) return { token: session.accessToken, source: 'session' };
    } catch (error) {
      this.logger.debug(`No ${provider} session: ${(error as Error).message}`);
    }
    if (!interactive) return undefined;
    try {
      const session = await vscode.authentication.getSession(provider, [REPO_SCOPE], {
        createIfNone: { detail: 'Agent Lanes pushes the approved lane branch and opens its pull request with your account.' },
      });
      return { token: session.accessToken, source: 'session' };
    } catch (error) {
      throw this.signInFailed(apiBaseUrl, provider, error);
    }
  }

  /** After a 401: a new session (or, for a stored token, a new token). */
  async again(apiBaseUrl: string, previous: GitHubToken['source'] | undefined): Promise<boolean> {
    if (previous === 'stored' || (await this.secrets.get(this.key(apiBaseUrl)))) {
      await this.secrets.delete(this.key(apiBaseUrl));
      return this.askForToken(apiBaseUrl);
    }
    const provider = this.provider(apiBaseUrl);
    try {
      await vscode.authentication.getSession(provider, [REPO_SCOPE], {
        forceNewSession: { detail: 'GitHub did not accept the last sign-in; sign in again to continue.' },
      });
      return true;
    } catch (error) {
      throw this.signInFailed(apiBaseUrl, provider, error);
    }
  }

  async askForToken(apiBaseUrl: string, given?: string): Promise<boolean> {
    const host = new URL(apiBaseUrl).host;
    const token =
      given ??
      (await vscode.window.showInputBox({
        title: `Sign in to GitHub (${host}) with a token`,
        prompt: `A personal access token for ${host} with the "repo" scope (fine-grained: Contents and Pull requests, read and write). It is kept in VS Code's secret storage, never in settings or logs.`,
        password: true,
        ignoreFocusOut: true,
        validateInput: (value) => (!value.trim() ? 'Paste the token.' : /\s/.test(value.trim()) ? 'A token has no spaces.' : undefined),
      }));
    if (token === undefined) return false;
    const clean = token.trim();
    if (!clean || /\s/.test(clean))
      throw new SignInError('That is not a token: it is empty or has spaces. Paste a GitHub personal access token.');
    await this.secrets.store(this.key(apiBaseUrl), clean);
    this.logger.info(`A GitHub token for ${host} was stored in VS Code's secret storage.`);
    return true;
  }

  async forget(apiBaseUrl: string): Promise<boolean> {
    const had = (await this.secrets.get(this.key(apiBaseUrl))) !== undefined;
    await this.secrets.delete(this.key(apiBaseUrl));
    return had;
  }

  /**
   * The built-in GitHub Enterprise sign-in is for the server in
   * `github-enterprise.uri`; its token must never be sent to another server.
   */
  private checkEnterpriseServer(apiBaseUrl: string, provider: string): void {
    if (provider !== 'github-enterprise') return;
    const uri = vscode.workspace.getConfiguration('github-enterprise').get<string>('uri')?.trim();
    if (!uri) return;
    const signInHost = hostOf(uri);
    const apiHost = hostOf(apiBaseUrl);
    if (signInHost !== apiHost && `api.${signInHost}` !== apiHost) {
      throw new SignInError(
        `The GitHub Enterprise sign-in is for ${signInHost} (github-enterprise.uri), but ${API_BASE_URL_SETTING} points at ${apiHost}; Agent Lanes does not send a token to another server. Set both to the same server, or use "Agent Lanes: Sign In to GitHub with a Token".`,
      );
    }
  }

  private signInFailed(apiBaseUrl: string, provider: string, error: unknown): SignInError {
    const detail = (error as Error)?.message ?? String(error);
    this.logger.warn(`Signing in with ${provider} failed: ${detail}`);
    const where = provider === 'github' ? 'GitHub' : `GitHub Enterprise (${new URL(apiBaseUrl).host})`;
    const hint =
      provider === 'github-enterprise'
        ? ` For GitHub Enterprise Server, set github-enterprise.uri to the server, or use "Agent Lanes: Sign In to GitHub with a Token".`
        : ' Sign in from the Accounts menu, or use "Agent Lanes: Sign In to GitHub with a Token".';
    return new SignInError(`Agent Lanes could not sign in to ${where}: ${detail}.${hint}`);
  }
}
