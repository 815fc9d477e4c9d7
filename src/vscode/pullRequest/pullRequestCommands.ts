import * as vscode from 'vscode';
import type { Change } from '../../core/change';
import type { Logger } from '../../core/logger';
import { LaneError } from '../../core/errors';
import { hasValidApproval, pullRequestGlance } from '../../core/pullRequest/glance';
import type { PollScheduleOptions } from '../../core/pullRequest/polling';
import { GitHubError, type RateLimitNotice } from '../../infra/github/client';
import { PullRequestError, type PullRequestStep } from '../../infra/github/pullRequests';
import { type GitHubAccess, type OpenOptions, type OpenOutcome, PullRequestLaneError } from '../../infra/lanes/pullRequest/pullRequestLane';
import { type ChangeTarget, type CommandKit, type ErrorButton, markSetupStep, type ReportProgress } from '../commandKit';
import { BuiltInCommands, Commands, ContextKeys } from '../constants';
import { SETTINGS_SECTION } from '../settingKeys';
import { type PullRequestSettings, readApiBaseUrl, readPullRequestSettings } from '../config';
import { type GitHubToken, GitHubSignIn, SignInError } from './githubSignIn';
import { PullRequestFollowing } from './pullRequestFollowing';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';

/** The Review → Pull request gate as the editor sees it (see PullRequestCommands.gate). */
export interface PullRequestGate {
  /** Asked by the lane when the change reaches the gate: settings, sign-in, and progress hooks. */
  options(report: ReportProgress): Promise<OpenOptions>;
  opened(outcome: OpenOutcome): PullRequestCommandResult;
  failed(error: unknown): PullRequestCommandResult;
}

/** What a command did, for scripts and tests: the message the person was shown. */
export type PullRequestCommandResult =
  | { ok: true; message: string; number?: number; url?: string; action?: 'created' | 'updated'; change?: Change }
  | { ok: false; kind: string; message: string };

export interface PullRequestDeps {
  logger: Logger;
  registry: RepositoryRegistry;
  policy: PolicyController;
  kit: CommandKit;
  /** The Lanes view: pull requests are followed once it has been shown. */
  view: vscode.TreeView<unknown>;
  secrets: vscode.SecretStorage;
}

const STEP_WORDS: Record<PullRequestStep['name'], string> = {
  push: 'push',
  'pr.create': 'pull request',
  'pr.update': 'pull request',
  labels: 'labels',
  reviewers: 'reviewers',
};

/**
 * "Agent Lanes: Open Pull Request", "Agent Lanes: Mark Ready for Review", "Agent Lanes: Open
 * Pull Request in Browser" and their helpers; follows the pull requests of
 * changes in the Pull request lane once the Lanes view has been shown.
 */
export class PullRequestCommands implements vscode.Disposable {
  /** Messages shown to the person, newest last (the last 50): scripts and tests read what was said. */
  readonly shown: { kind: 'info' | 'warning' | 'error'; message: string }[] = [];
  /** Retries, back-off and polling schedule; tests shorten them. */
  tuning: { clientOptions?: GitHubAccess['clientOptions']; schedule?: Partial<PollScheduleOptions> } = {};
  private readonly signIn: GitHubSignIn;
  private readonly following: PullRequestFollowing;

  constructor(private readonly deps: PullRequestDeps) {
    this.signIn = new GitHubSignIn(deps.secrets, deps.logger);
    this.following = new PullRequestFollowing({
      registry: deps.registry,
      logger: deps.logger,
      view: deps.view,
      signIn: this.signIn,
      access: (token, settings) => this.access(token, settings),
      schedule: () => this.tuning.schedule,
      show: (kind, message, buttons, onChoice) => this.show(kind, message, buttons, onChoice),
    });
  }

  isTracking(changeId: string): boolean {
    return this.following.isTracking(changeId);
  }

  /** Follows every change in the Pull request lane (once the view has been shown; again after sign-in). */
  startTracking(): void {
    this.following.start();
  }

  // ---- commands ----

  async open(target: ChangeTarget, options: { draft?: boolean } = {}): Promise<PullRequestCommandResult> {
    if (!this.deps.kit.requireTrust('open a pull request'))
      return { ok: false, kind: 'untrusted', message: 'The workspace is not trusted.' };
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => (c.lane === 'review' && hasValidApproval(c)) || c.lane === 'pullRequest',
      'Open a pull request for which approved change?',
    );
    if (!found) return { ok: false, kind: 'cancelled', message: 'No change was chosen.' };
    const { repo, change } = found;
    const gate = this.gate(repo, change, options);
    try {
      const actor = await this.deps.kit.actor(repo.root);
      const outcome = await this.deps.kit.withProgress(`Agent Lanes: pull request for "${change.title}"`, async (report) =>
        repo.lanes.pullRequest.open(change.id, actor, await gate.options(report)),
      );
      return gate.opened(outcome);
    } catch (error) {
      return gate.failed(error);
    }
  }

  /**
   * One pass of a change through the Review → Pull request gate: signs in
   * when the gate asks for GitHub access, then says what came of it.
   */
  gate(repo: RepoContext, change: Change, options: { draft?: boolean } = {}): PullRequestGate {
    let settings: PullRequestSettings | undefined;
    let access: GitHubToken | undefined;
    return {
      options: async (report) => {
        await this.deps.policy.ensureStarted();
        settings = readPullRequestSettings(repo.root);
        // A remote that is not GitHub ends here, before anyone is asked to sign in.
        await repo.lanes.pullRequest.repositoryFor(settings.remote, settings.apiBaseUrl, change.branch);
        access = await this.signIn.access(settings.apiBaseUrl, true);
        if (!access)
          throw new SignInError(
            'Agent Lanes needs a GitHub sign-in to open the pull request. Sign in from the Accounts menu, or use "Agent Lanes: Sign In to GitHub with a Token".',
          );
        report('checking the approval and policy…');
        return {
          ...this.access(access, settings),
          remote: settings.remote,
          ...(options.draft !== undefined ? { draft: options.draft } : {}),
          onStep: (step) => report(`${STEP_WORDS[step.name]}: ${step.outcome === 'done' ? 'done' : 'already there'}`),
          onRateLimit: (notice) => {
            const message = this.rateLimitMessage(notice);
            if (message) report(message);
          },
        };
      },
      opened: ({ result, change: updated }) => {
        const message = `Pull request #${result.number} ${result.action === 'created' ? 'opened' : 'brought up to date'}${result.draft ? ' as a draft' : ''} for "${change.title}": ${result.url}`;
        this.show('info', message, ['Open in Browser'], () => void this.openInBrowser({ repoRoot: repo.root, changeId: change.id }));
        if (access && settings) this.following.follow(repo, change.id, access, settings);
        return { ok: true, message, number: result.number, url: result.url, action: result.action, change: updated };
      },
      failed: (error) =>
        this.failure(error, `Opening the pull request of change ${change.id}`, {
          repo,
          change,
          // Once signed in, a failure can be retried (or signed in again).
          ...(access && settings
            ? { settings, access, retry: () => this.open({ repoRoot: repo.root, changeId: change.id }, options) }
            : {}),
        }),
    };
  }

  async markReady(target: ChangeTarget): Promise<PullRequestCommandResult> {
    if (!this.deps.kit.requireTrust('mark a pull request ready'))
      return { ok: false, kind: 'untrusted', message: 'The workspace is not trusted.' };
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => c.lane === 'pullRequest' && c.pullRequest?.state === 'draft',
      'Mark which draft pull request ready for review?',
    );
    if (!found) return { ok: false, kind: 'cancelled', message: 'No change was chosen.' };
    const { repo, change } = found;
    const doing = `Marking the pull request of change ${change.id} ready for review`;
    try {
      await this.deps.policy.ensureStarted();
      const settings = readPullRequestSettings(repo.root);
      const access = await this.signIn.access(settings.apiBaseUrl, true);
      if (!access)
        return this.failure(
          new SignInError(
            'Agent Lanes needs a GitHub sign-in for this. Sign in from the Accounts menu, or use "Agent Lanes: Sign In to GitHub with a Token".',
          ),
          doing,
          { repo, change },
        );
      try {
        const updated = await repo.lanes.pullRequest.markReady(
          change.id,
          await this.deps.kit.actor(repo.root),
          this.access(access, settings),
        );
        const message = `Pull request #${updated.pullRequest?.number} of "${change.title}" is ready for review.`;
        this.show('info', message, ['Open in Browser'], () => void this.openInBrowser({ repoRoot: repo.root, changeId: change.id }));
        return {
          ok: true,
          message,
          change: updated,
          ...(updated.pullRequest ? { number: updated.pullRequest.number, url: updated.pullRequest.url } : {}),
        };
      } catch (error) {
        return this.failure(error, doing, {
          repo,
          change,
          settings,
          access,
          retry: () => this.markReady({ repoRoot: repo.root, changeId: change.id }),
        });
      }
    } catch (error) {
      return this.failure(error, doing, { repo, change });
    }
  }

  async openInBrowser(target: ChangeTarget): Promise<PullRequestCommandResult> {
    const found = await this.deps.kit.resolveTarget(target, (c) => !!c.pullRequest, 'Open the pull request of which change?');
    if (!found) return { ok: false, kind: 'cancelled', message: 'No change was chosen.' };
    const url = found.change.pullRequest?.url;
    if (!url) {
      const message = `Change ${found.change.id} has no pull request yet; open one with "Agent Lanes: Open Pull Request".`;
      this.show('info', message);
      return { ok: false, kind: 'noPullRequest', message };
    }
    void vscode.env
      .openExternal(vscode.Uri.parse(url))
      .then(undefined, (error: unknown) => this.deps.logger.warn(`Opening ${url}: ${(error as Error).message}`));
    return { ok: true, message: url, url };
  }

  /** "Agent Lanes: Refresh Pull Request Status": reads state and checks now (a merged or closed one ends the change). */
  async refresh(target: ChangeTarget): Promise<PullRequestCommandResult> {
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => c.lane === 'pullRequest' && !!c.pullRequest,
      'Refresh the pull request of which change?',
    );
    if (!found) return { ok: false, kind: 'cancelled', message: 'No change was chosen.' };
    const { repo, change } = found;
    const doing = `Reading the pull request of change ${change.id}`;
    try {
      const settings = readPullRequestSettings(repo.root);
      const access = await this.signIn.access(settings.apiBaseUrl, true);
      if (!access)
        return this.failure(
          new SignInError(
            'Agent Lanes needs a GitHub sign-in to read the pull request. Sign in from the Accounts menu, or use "Agent Lanes: Sign In to GitHub with a Token".',
          ),
          doing,
          { repo, change },
        );
      try {
        const updated = await repo.lanes.pullRequest.refresh(change.id, this.access(access, settings));
        if (updated.lane === 'pullRequest') this.following.follow(repo, change.id, access, settings);
        return { ok: true, message: pullRequestGlance(updated) ?? '', change: updated };
      } catch (error) {
        return this.failure(error, doing, {
          repo,
          change,
          settings,
          access,
          retry: () => this.refresh({ repoRoot: repo.root, changeId: change.id }),
        });
      }
    } catch (error) {
      return this.failure(error, doing, { repo, change });
    }
  }

  /** "Agent Lanes: Push Lane Branch": the approved branch only, for a remote that is not GitHub. */
  async pushBranch(target: ChangeTarget): Promise<PullRequestCommandResult> {
    if (!this.deps.kit.requireTrust('push')) return { ok: false, kind: 'untrusted', message: 'The workspace is not trusted.' };
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => (c.lane === 'review' && hasValidApproval(c)) || c.lane === 'pullRequest',
      'Push the branch of which approved change?',
    );
    if (!found) return { ok: false, kind: 'cancelled', message: 'No change was chosen.' };
    const { repo, change } = found;
    const doing = `Pushing the branch of change ${change.id}`;
    try {
      await this.deps.policy.ensureStarted();
      const settings = readPullRequestSettings(repo.root);
      const actor = await this.deps.kit.actor(repo.root);
      const { step } = await this.deps.kit.withProgress(`Agent Lanes: pushing ${change.branch} to ${settings.remote}`, () =>
        repo.lanes.pullRequest.pushOnly(change.id, actor, { remote: settings.remote }),
      );
      const message =
        step.outcome === 'done'
          ? `Pushed ${change.branch} to ${settings.remote}. Open the pull request (or merge request) there by hand.`
          : `${settings.remote} already has ${change.branch} at the approved commit.`;
      this.show('info', message);
      return { ok: true, message };
    } catch (error) {
      return this.failure(error, doing, { repo, change });
    }
  }

  /** "Agent Lanes: Sign In to GitHub" (a walkthrough step): VS Code's GitHub sign-in, asked now rather than at the first push. */
  async signInToGitHub(): Promise<PullRequestCommandResult> {
    try {
      const apiBaseUrl = readApiBaseUrl();
      const access = await this.signIn.access(apiBaseUrl, true);
      if (!access) return { ok: false, kind: 'cancelled', message: 'Sign-in was cancelled.' };
      this.following.retryAfterSignIn();
      markSetupStep(ContextKeys.setupSignedIn);
      const message = `Signed in to GitHub (${new URL(apiBaseUrl).host}): Agent Lanes pushes approved lane branches and opens their pull requests with this account.`;
      this.show('info', message);
      return { ok: true, message };
    } catch (error) {
      return this.failure(error, 'Signing in to GitHub', {});
    }
  }

  /** "Agent Lanes: Sign In to GitHub with a Token": for GitHub Enterprise without VS Code's sign-in, or a chosen token. */
  async signInWithToken(args?: { token?: string }): Promise<PullRequestCommandResult> {
    try {
      const apiBaseUrl = readApiBaseUrl();
      const stored = await this.signIn.askForToken(apiBaseUrl, typeof args?.token === 'string' ? args.token : undefined);
      if (!stored) return { ok: false, kind: 'cancelled', message: 'No token was entered.' };
      this.following.retryAfterSignIn();
      const message = `Agent Lanes will use this token for ${new URL(apiBaseUrl).host}. It is kept in VS Code's secret storage; "Agent Lanes: Forget GitHub Token" removes it.`;
      this.show('info', message);
      return { ok: true, message };
    } catch (error) {
      return this.failure(error, 'Storing the GitHub token', {});
    }
  }

  async forgetToken(): Promise<PullRequestCommandResult> {
    try {
      const apiBaseUrl = readApiBaseUrl();
      const had = await this.signIn.forget(apiBaseUrl);
      const message = had
        ? `The stored GitHub token for ${new URL(apiBaseUrl).host} was removed; VS Code's GitHub sign-in is used again.`
        : `No GitHub token is stored for ${new URL(apiBaseUrl).host}.`;
      this.show('info', message);
      return { ok: true, message };
    } catch (error) {
      return this.failure(error, 'Removing the GitHub token', {});
    }
  }

  /**
   * GitHub access for another lane's call (the Release lane): signs in when asked (`interactive`, the default);
   * undefined when the person does not, or when not interactive and no session or token is there.
   */
  async accessFor(repo: RepoContext, interactive = true): Promise<GitHubAccess | undefined> {
    const settings = readPullRequestSettings(repo.root);
    const token = await this.signIn.access(settings.apiBaseUrl, interactive);
    return token ? this.access(token, settings) : undefined;
  }

  // ---- helpers ----

  access(access: GitHubToken, settings: PullRequestSettings): GitHubAccess {
    return {
      token: access.token,
      apiBaseUrl: settings.apiBaseUrl,
      onRateLimit: (notice) => void this.rateLimitMessage(notice),
      ...(this.tuning.clientOptions ? { clientOptions: this.tuning.clientOptions } : {}),
    };
  }

  /** Says how long GitHub asked us to wait (shown once per wait); returns the words for the progress. */
  private rateLimitMessage(notice: RateLimitNotice): string | undefined {
    if (!notice.willRetry) return undefined;
    const what = `${notice.method} ${notice.url.replace(/^https?:\/\/[^/]+/, '')}`;
    const message =
      notice.kind === 'secondary'
        ? `GitHub asked Agent Lanes to slow down (secondary rate limit): waiting ${notice.waitSeconds} s before retrying ${what}.`
        : `GitHub's hourly API limit is used up: waiting ${notice.waitSeconds} s for it to reset before retrying ${what}.`;
    const last = this.shown.at(-1);
    if (last?.message !== message) this.show('warning', message);
    return `waiting ${notice.waitSeconds} s (GitHub rate limit)`;
  }

  private remember(kind: 'info' | 'warning' | 'error', message: string): void {
    this.shown.push({ kind, message });
    if (this.shown.length > 50) this.shown.splice(0, this.shown.length - 50);
  }

  /** Shows a message without waiting for it (a command must finish); a button runs its action. */
  show(kind: 'info' | 'warning' | 'error', message: string, buttons: string[] = [], onChoice?: (choice: string) => void): void {
    this.remember(kind, message);
    const show =
      kind === 'info'
        ? vscode.window.showInformationMessage
        : kind === 'warning'
          ? vscode.window.showWarningMessage
          : vscode.window.showErrorMessage;
    void show(message, ...buttons).then((choice) => {
      if (choice && onChoice) onChoice(choice);
    });
  }

  /**
   * Every failure becomes one message (through the one error presenter) that
   * says what to do, with the buttons that do it here: sign in again and
   * retry, push the branch only, open the settings, the browser or the review.
   */
  private failure(
    error: unknown,
    doing: string,
    context: {
      repo?: RepoContext;
      change?: Change;
      settings?: PullRequestSettings;
      access?: GitHubToken;
      retry?: () => Promise<unknown>;
    },
  ): PullRequestCommandResult {
    const { repo, change, settings, access } = context;
    const target = repo && change ? { repoRoot: repo.root, changeId: change.id } : undefined;
    const buttons: ErrorButton[] = [];
    const button = (title: string, run: () => unknown) => buttons.push({ title, run });
    let shownError = error;
    let warning = false;
    if (error instanceof PullRequestError && error.kind === 'refused') {
      shownError = new LaneError(error.kind, `Policy blocked this: ${error.message}`);
    } else if (error instanceof PullRequestLaneError) {
      if (target && (error.kind === 'approvalMismatch' || error.kind === 'notApproved'))
        button('Open Review', () => vscode.commands.executeCommand(Commands.openReview, target));
    } else if (error instanceof PullRequestError || error instanceof GitHubError) {
      const github = error instanceof GitHubError ? error : error.github;
      const githubKind = github?.kind ?? error.kind;
      if (githubKind === 'unauthorized' || githubKind === 'forbidden') {
        if (settings)
          button('Sign In Again', () =>
            this.signIn.again(settings.apiBaseUrl, access?.source).then(
              (signedIn) => {
                if (signedIn && context.retry) void context.retry();
              },
              (failure: unknown) => this.show('error', (failure as Error).message),
            ),
          );
      } else if (githubKind === 'notGitHub' && target) {
        button('Push Branch Only', () => this.pushBranch(target));
      } else if (githubKind === 'badSetting') {
        button('Open Settings', () => vscode.commands.executeCommand(BuiltInCommands.openSettings, `${SETTINGS_SECTION}.github`));
      } else if (error instanceof PullRequestError && error.kind === 'checksNotPassing') {
        warning = true;
        if (target) button('Open in Browser', () => this.openInBrowser(target));
      } else if (context.retry && (githubKind === 'network' || githubKind === 'server' || githubKind === 'rateLimited')) {
        const retry = context.retry;
        button('Try Again', retry);
      }
    }
    const shown = this.deps.kit.showError(shownError, doing, buttons, { warning });
    this.remember(warning ? 'warning' : 'error', shown.message);
    return { ok: false, kind: shown.kind, message: shown.message };
  }

  dispose(): void {
    this.following.dispose();
  }
}

/** Registers the Pull request lane's commands; returns the controller (LanesApi.pullRequests). */
export function registerPullRequests(context: vscode.ExtensionContext, deps: Omit<PullRequestDeps, 'secrets'>): PullRequestCommands {
  const commands = new PullRequestCommands({ ...deps, secrets: context.secrets });
  const register = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));
  register(Commands.openPullRequest, (target?: ChangeTarget, options?: { draft?: boolean }) =>
    commands.open(target, options && typeof options === 'object' ? options : {}),
  );
  register(Commands.markReadyForReview, (target?: ChangeTarget) => commands.markReady(target));
  register(Commands.openPullRequestInBrowser, (target?: ChangeTarget) => commands.openInBrowser(target));
  register(Commands.refreshPullRequest, (target?: ChangeTarget) => commands.refresh(target));
  register(Commands.pushLaneBranch, (target?: ChangeTarget) => commands.pushBranch(target));
  register(Commands.signInWithToken, (args?: { token?: string }) =>
    commands.signInWithToken(args && typeof args === 'object' ? args : undefined),
  );
  register(Commands.forgetGitHubToken, () => commands.forgetToken());
  register(Commands.signInToGitHub, () => commands.signInToGitHub());
  context.subscriptions.push(commands);
  return commands;
}
