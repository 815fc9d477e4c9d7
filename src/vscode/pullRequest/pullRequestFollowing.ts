import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import type { PollScheduleOptions } from '../../core/pullRequest/polling';
import { GitHubError } from '../../infra/github/client';
import type { GitHubAccess } from '../../infra/lanes/pullRequest/pullRequestLane';
import { type PullRequestSettings, readPullRequestSettings } from '../config';
import { Commands } from '../constants';
import type { RepoContext, RepositoryRegistry } from '../repositories';
import type { GitHubSignIn, GitHubToken } from './githubSignIn';

export interface PullRequestFollowingDeps {
  registry: RepositoryRegistry;
  logger: Logger;
  /** The Lanes view: pull requests are followed once it has been shown. */
  view: vscode.TreeView<unknown>;
  signIn: GitHubSignIn;
  access(token: GitHubToken, settings: PullRequestSettings): GitHubAccess;
  /** The polling schedule (tests shorten it). */
  schedule(): Partial<PollScheduleOptions> | undefined;
  show(kind: 'info' | 'warning' | 'error', message: string, buttons?: string[], onChoice?: (choice: string) => void): void;
}

/**
 * Follows the pull requests of changes in the Pull request lane, once the
 * Lanes view has been shown: their state and checks, until merged or closed.
 * It never asks to sign in: a change waits for a sign-in and is tried again after one.
 */
export class PullRequestFollowing implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private trackingStarted = false;
  /** Changes that could not be followed without asking to sign in; tried again after a sign-in. */
  private readonly waitingForSignIn = new Set<string>();
  private trackQueue: Promise<void> = Promise.resolve();
  private readonly lastChecks = new Map<string, string>();

  constructor(private readonly deps: PullRequestFollowingDeps) {
    const registryChanges = deps.registry.onDidChange(() => {
      if (this.trackingStarted) this.trackAll();
    });
    this.disposables.push(
      { dispose: () => registryChanges.dispose() },
      deps.view.onDidChangeVisibility((event) => {
        if (event.visible) this.start();
      }),
      vscode.authentication.onDidChangeSessions(() => this.retryAfterSignIn()),
    );
    if (deps.view.visible) this.start();
  }

  isTracking(changeId: string): boolean {
    return this.deps.registry.repositories().some((repo) => repo.lanes.pullRequest.isTracking(changeId));
  }

  /** Follows every change in the Pull request lane. */
  start(): void {
    this.trackingStarted = true;
    this.trackAll();
  }

  /** After a sign-in: the changes that waited for one are tried again. */
  retryAfterSignIn(): void {
    this.waitingForSignIn.clear();
    if (this.trackingStarted) this.trackAll();
  }

  private trackAll(): void {
    this.trackQueue = this.trackQueue
      .then(async () => {
        await this.deps.registry.ensureDiscovered();
        for (const repo of this.deps.registry.repositories()) {
          for (const change of repo.store.all()) {
            const key = `${repo.root}\0${change.id}`;
            if (
              change.lane !== 'pullRequest' ||
              !change.pullRequest ||
              repo.lanes.pullRequest.isTracking(change.id) ||
              this.waitingForSignIn.has(key)
            )
              continue;
            let settings: PullRequestSettings;
            try {
              settings = readPullRequestSettings(repo.root);
            } catch (error) {
              this.deps.logger.warn(`Not following pull request #${change.pullRequest.number}: ${(error as Error).message}`);
              this.waitingForSignIn.add(key);
              continue;
            }
            // Never a sign-in prompt for following: only a session or token that is already there.
            const access = await this.deps.signIn.access(settings.apiBaseUrl, false).catch((error: unknown) => {
              this.deps.logger.warn(`Not following pull request #${change.pullRequest?.number}: ${(error as Error).message}`);
              return undefined;
            });
            if (!access) {
              this.waitingForSignIn.add(key);
              this.deps.logger.info(
                `Pull request #${change.pullRequest.number} of change ${change.id} is followed after you sign in to GitHub.`,
              );
              continue;
            }
            this.follow(repo, change.id, access, settings);
          }
        }
      })
      .catch((error: unknown) => this.deps.logger.error('Following pull requests failed', error));
  }

  /** Follows one change's pull request until it is merged or closed, telling the person what changed. */
  follow(repo: RepoContext, changeId: string, access: GitHubToken, settings: PullRequestSettings): void {
    const lane = repo.lanes.pullRequest;
    const current = repo.store.get(changeId);
    if (!current || current.lane !== 'pullRequest' || lane.isTracking(changeId)) return;
    lane.track(changeId, {
      ...this.deps.access(access, settings),
      ...(this.deps.schedule() ? { schedule: this.deps.schedule() } : {}),
      onUpdate: (change) => {
        const pr = change.pullRequest;
        if (!pr) return;
        const key = `${repo.root}\0${changeId}`;
        const before = this.lastChecks.get(key);
        this.lastChecks.set(key, pr.checks);
        if (before === undefined || before === pr.checks || change.lane !== 'pullRequest') return;
        if (pr.checks === 'passing' && pr.draft) {
          this.deps.show(
            'info',
            `Checks pass on pull request #${pr.number} of "${change.title}": it can be marked ready for review.`,
            ['Mark Ready for Review'],
            () => void vscode.commands.executeCommand(Commands.markReadyForReview, { repoRoot: repo.root, changeId }),
          );
        } else if (pr.checks === 'failing') {
          this.deps.show(
            'warning',
            `Checks fail on pull request #${pr.number} of "${change.title}".`,
            ['Open in Browser'],
            () => void vscode.commands.executeCommand(Commands.openPullRequestInBrowser, { repoRoot: repo.root, changeId }),
          );
        }
      },
      onEnd: ({ reason, error }) => {
        const change = repo.store.get(changeId);
        const pr = change?.pullRequest;
        if ((reason === 'merged' || reason === 'closed') && change && pr) {
          const kept = change.alerts?.at(-1)?.includes(change.worktreePath)
            ? ` ${change.alerts.at(-1)}`
            : ' Its worktree and local branch were removed.';
          const next =
            change.lane === 'release'
              ? 'the change is in Release: run its production actions ("Agent Lanes: Run Production Action…") or close it.'
              : 'the change is closed.';
          this.deps.show('info', `Pull request #${pr.number} of "${change.title}" was ${reason}; ${next}${kept}`);
        } else if (reason === 'error') {
          const github = error instanceof GitHubError ? error : undefined;
          if (github?.kind === 'unauthorized' || github?.kind === 'forbidden') {
            this.waitingForSignIn.add(`${repo.root}\0${changeId}`);
            this.deps.show(
              'warning',
              `Stopped following pull request #${pr?.number ?? '?'}: ${github.message}`,
              ['Sign In Again'],
              () =>
                void this.deps.signIn.again(settings.apiBaseUrl, access.source).then(
                  () => {
                    this.waitingForSignIn.clear();
                    this.trackAll();
                  },
                  (failure: unknown) => this.deps.show('error', (failure as Error).message),
                ),
            );
          } else if (error) {
            this.deps.show(
              'warning',
              `Stopped following pull request #${pr?.number ?? '?'}: ${(error as Error).message} Run "Agent Lanes: Refresh Pull Request Status" to look again.`,
            );
          }
        }
      },
    });
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
