import * as vscode from 'vscode';
import type { Actor, Change } from '../core/change';
import { LaneError } from '../core/errors';
import type { Logger } from '../core/logger';
import { PolicyDeniedError } from '../infra/policy/policyService';
import { BuiltInCommands, Commands, type ContextKeys } from './constants';
import { whoAmI } from './identity';
import type { LanesNode } from './lanesTree';
import type { RepoContext, RepositoryRegistry } from './repositories';

/** A change addressed by a tree node or by ids (palette, tests, other commands). */
export type ChangeTarget = LanesNode | { repoRoot?: string; changeId: string } | undefined;

/** A button beside an error message that runs code rather than a command (for example a retry). */
export interface ErrorButton {
  readonly title: string;
  readonly run: () => unknown;
}

/** What the person was shown about a failure, for a command's result. */
export interface ShownError {
  readonly kind: string;
  readonly message: string;
}

const SHOW_LOG = 'Show Log';

/**
 * Shows a failure the one way every command does, without waiting for the
 * person to dismiss it (a command must finish): a PolicyDeniedError shows the
 * policy's explanation; any other LaneError its message, with its actions as
 * buttons; anything else is logged with its details and shown with "Show Log".
 */
export function showError(
  logger: Logger,
  error: unknown,
  doing: string,
  buttons: readonly ErrorButton[] = [],
  options: { warning?: boolean } = {},
): ShownError {
  let kind: string;
  let message: string;
  let choices: ErrorButton[];
  if (error instanceof PolicyDeniedError) {
    logger.warn(`${doing}: blocked by policy (${error.decision.decisionId})`);
    kind = 'policy';
    message = `Policy blocked this: ${error.decision.explanation}`;
    choices = [...buttons, { title: SHOW_LOG, run: () => vscode.commands.executeCommand(Commands.showLog) }];
  } else if (error instanceof LaneError) {
    // The cause of a lane error (an I/O failure, say) keeps its details in the log.
    logger.warn(`${doing}: ${error.message}`, ...(error.cause instanceof Error ? [error.cause.stack ?? error.cause.message] : []));
    kind = error.kind;
    message = error.message;
    choices = [
      ...error.actions.map((action) => ({
        title: action.title,
        run: () => vscode.commands.executeCommand(action.command, ...(action.args ?? [])),
      })),
      ...buttons,
    ];
  } else {
    kind = 'unexpected';
    message = `${doing} failed: ${(error as Error)?.message ?? String(error)}`;
    logger.error(message, error instanceof Error ? (error.stack ?? error.message) : String(error));
    choices = [...buttons, { title: SHOW_LOG, run: () => vscode.commands.executeCommand(Commands.showLog) }];
  }
  const show = options.warning ? vscode.window.showWarningMessage : vscode.window.showErrorMessage;
  void show(message, ...choices.map((choice) => choice.title)).then((picked) => {
    const chosen = choices.find((choice) => choice.title === picked);
    if (chosen) void Promise.resolve(chosen.run()).catch((failure: unknown) => logger.error(`${chosen.title} failed`, failure));
  });
  return { kind, message };
}

/** Progress as a command reports it: a line of text, and optionally how far along (percent). */
export type ReportProgress = (message: string, increment?: number) => void;

/**
 * What every command needs: the chosen change (a tree node, ids, or a
 * picker), Workspace Trust, the actor, progress with cancel, and the error presenter.
 */
export class CommandKit {
  constructor(
    private readonly deps: {
      logger: Logger;
      registry: RepositoryRegistry;
      trusted: () => boolean;
    },
  ) {}

  /** Resolves a command argument to a repository and change, asking with a picker when none was given. */
  async resolveTarget(
    target: ChangeTarget,
    filter: (change: Change) => boolean,
    placeHolder: string,
  ): Promise<{ repo: RepoContext; change: Change } | undefined> {
    const { registry } = this.deps;
    await registry.ensureDiscovered();
    if (target && 'kind' in target) {
      if (target.kind === 'change') return { repo: target.repo, change: target.repo.store.get(target.change.id) ?? target.change };
    } else if (target?.changeId) {
      const found = registry.findChange(target.changeId);
      if (!found) {
        void vscode.window.showErrorMessage(`There is no change ${target.changeId} in the open repositories.`);
        return undefined;
      }
      return found;
    }
    const items = registry.repositories().flatMap((repo) =>
      repo.store
        .all()
        .filter(filter)
        .map((change) => ({
          label: change.title,
          description: `${change.id} · ${change.lane}`,
          detail: registry.repositories().length > 1 ? repo.name : undefined,
          repo,
          change,
        })),
    );
    if (!items.length) {
      void vscode.window.showInformationMessage(`No change fits: ${placeHolder.toLowerCase()}`);
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(items, { placeHolder, matchOnDescription: true });
    return picked ? { repo: picked.repo, change: picked.change } : undefined;
  }

  /** The repository a command is for: the hint (a root), the only one, or the person's pick. */
  async pickRepository(rootHint?: string, placeHolder = 'Which repository is the draft for?'): Promise<RepoContext | undefined> {
    const { registry } = this.deps;
    await registry.ensureDiscovered();
    const repos = registry.repositories();
    if (rootHint) {
      const repo = repos.find((r) => r.root === rootHint);
      if (!repo) void vscode.window.showErrorMessage(`${rootHint} is not one of the open repositories.`);
      return repo;
    }
    if (repos.length === 0) {
      const problem = registry.folderProblems()[0];
      void vscode.window.showErrorMessage(problem?.message ?? 'Open a folder that is a git repository to start a draft.');
      return undefined;
    }
    if (repos.length === 1) return repos[0];
    const picked = await vscode.window.showQuickPick(
      repos.map((repo) => ({ label: repo.name, description: repo.root, repo })),
      { placeHolder },
    );
    return picked?.repo;
  }

  /** False (and says why) in an untrusted workspace, where no agent, task or push runs. */
  requireTrust(what: string): boolean {
    if (this.deps.trusted()) return true;
    void vscode.window
      .showWarningMessage(
        `This workspace is not trusted, so Agent Lanes runs no agent, task or push (${what}). Trust the workspace to continue.`,
        'Manage Workspace Trust',
      )
      .then((choice) => {
        if (choice) void vscode.commands.executeCommand(BuiltInCommands.manageWorkspaceTrust);
      });
    return false;
  }

  /** The person who runs the command, as the audit trail names them. */
  async actor(repoRoot?: string): Promise<Actor> {
    return { type: 'user', id: await whoAmI(repoRoot) };
  }

  /** Runs a task under a notification; with cancellable, its Cancel button aborts the signal. */
  withProgress<T>(
    title: string,
    task: (report: ReportProgress, signal: AbortSignal) => Promise<T>,
    options: { cancellable?: boolean } = {},
  ): Promise<T> {
    return Promise.resolve(
      vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: options.cancellable ?? false },
        (progress, token) => {
          const controller = new AbortController();
          const cancelled = token.onCancellationRequested(() => controller.abort());
          const report: ReportProgress = (message, increment) => progress.report({ message, ...(increment ? { increment } : {}) });
          return task(report, controller.signal).finally(() => cancelled.dispose());
        },
      ),
    );
  }

  /** The one error presenter (see showError), with this kit's logger. */
  showError(error: unknown, doing: string, buttons: readonly ErrorButton[] = [], options: { warning?: boolean } = {}): ShownError {
    return showError(this.deps.logger, error, doing, buttons, options);
  }
}

/** Marks a walkthrough step done. */
export function markSetupStep(key: (typeof ContextKeys)['setupAgentReady' | 'setupEngineReady' | 'setupSignedIn' | 'setupDrafted']): void {
  void vscode.commands.executeCommand('setContext', key, true);
}
