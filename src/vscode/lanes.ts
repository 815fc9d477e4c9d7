import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { readDraftSettings, readSandboxSettings } from './config';
import { SETTINGS_SECTION } from './settingKeys';
import type { DeferredTree } from './deferredTree';
import { type LanesNode, LanesTreeProvider } from './lanesTree';
import { RepositoryRegistry } from './repositories';
import type { PolicyStatusBar } from './statusBar';
import { registerCommands, registerPromote } from './commands';
import { CommandKit } from './commandKit';
import { PolicyController } from './policy/policyController';
import { DraftCommands } from './draft/draftCommands';
import { GitContentProvider } from './gitContent';
import { createLanguageModelTools } from './draft/lmTools';
import { type ReviewController, registerReview } from './review';
import { identify } from './identity';
import { type SandboxCommands, registerSandbox } from './sandbox/sandboxCommands';
import { type PullRequestCommands, registerPullRequests } from './pullRequest/pullRequestCommands';
import { type ReleaseCommands, registerRelease } from './release/releaseCommands';
import { registerMetrics } from './metrics/metricsView';
import { registerPolicyCommands } from './policy/policyCommands';
import { registerAuditCommands } from './audit/auditCommands';

/** What the start-up shell made before the lanes loaded, and hands them. */
export interface LanesShell {
  readonly logger: Logger;
  readonly channel: vscode.LogOutputChannel;
  readonly statusBar: PolicyStatusBar;
  readonly view: vscode.TreeView<LanesNode>;
  readonly tree: DeferredTree<LanesNode>;
}

/** The loaded lanes: what the shell forwards to, and what the integration tests and the benchmark use. */
export interface LanesApi {
  readonly registry: RepositoryRegistry;
  readonly tree: LanesTreeProvider;
  readonly statusBar: PolicyStatusBar;
  readonly policy: PolicyController;
  readonly drafts: DraftCommands;
  readonly review: ReviewController;
  /** The Pull request lane's commands and the pull requests it follows. */
  readonly pullRequests: PullRequestCommands;
  /** The Lanes tree view (its message says when policy stops work). */
  readonly view: vscode.TreeView<LanesNode>;
  /** The Sandbox lane's commands; each repository's SandboxLane is repo.lanes.sandbox. */
  readonly sandbox: SandboxCommands;
  /** The Release lane's commands (production actions); each repository's ReleaseLane is repo.lanes.release. */
  readonly release: ReleaseCommands;
  /** The chat tools by name; the shell registered them at start-up and forwards to these. */
  readonly languageModelTools: ReadonlyMap<string, vscode.LanguageModelTool<never>>;
  /** Serves `agent-lanes-git:` documents (a file at a commit), registered by the shell. */
  readonly gitContent: GitContentProvider;
}

/**
 * Builds the lanes on first use: the repositories, policy, commands and the
 * review. Registers every command synchronously, so the shell's stand-ins can
 * be swapped for the real commands in one turn of the event loop.
 */
export function activateLanes(context: vscode.ExtensionContext, shell: LanesShell): LanesApi {
  const { logger, channel, statusBar, view } = shell;
  const policy = new PolicyController(context.globalStorageUri.fsPath, logger, statusBar);
  const registry = new RepositoryRegistry(
    context.globalStorageUri.fsPath,
    logger,
    policy.service,
    () => readSandboxSettings(context.extensionPath),
    readDraftSettings,
  );
  policy.attach(registry);
  const tree = new LanesTreeProvider(registry, logger);
  shell.tree.attach(tree);
  context.subscriptions.push(policy, registry, tree);

  // A changed pool size or sparse folders: the pool drops what no longer fits and fills again (or empties when off).
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(`${SETTINGS_SECTION}.draft`)) return;
      for (const repo of registry.repositories())
        void repo.lanes.draft
          .warmPool()
          .catch((error: unknown) => logger.warn(`Worktree pool of ${repo.root}: ${(error as Error).message}`));
    }),
  );
  const trusted = () => vscode.workspace.isTrusted;
  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      for (const repo of registry.repositories()) {
        void repo.lanes.context.audit
          .append({ actor: { type: 'user', id: 'workspace-trust' }, action: 'workspaceTrust.change', details: { trusted: true } })
          .catch((error: unknown) => logger.error('Auditing the trust change', error));
      }
    }),
  );
  const kit = new CommandKit({ logger, registry, trusted });
  const drafts = new DraftCommands({
    logger,
    registry,
    policy,
    kit,
    secrets: context.secrets,
    agentCliCache: join(context.globalStorageUri.fsPath, 'agent-clis'),
  });
  const languageModelTools = createLanguageModelTools({ registry, logger, trusted });

  // Git and network work waits until the view is shown or a command runs.
  let reconciled = false;
  const onShown = () => {
    tree.setVisible(true);
    void policy.ensureStarted().catch((error: unknown) => logger.error('Starting the policy service failed', error));
    if (!reconciled) {
      reconciled = true;
      void drafts.reconcile({ quietWhenClean: true }).catch((error: unknown) => logger.error('Reconciling worktrees failed', error));
    }
  };
  context.subscriptions.push(view.onDidChangeVisibility((event) => (event.visible ? onShown() : tree.setVisible(false))));
  if (view.visible) onShown();

  registerCommands(context, { logger, channel, registry, tree, statusBar, policy, drafts });
  registerPolicyCommands(context, { logger, registry, policy, kit, view });
  registerAuditCommands(context, { logger, registry, policy, kit });
  registerMetrics(context, { logger, kit });
  const review = registerReview(context, {
    logger,
    registry,
    laneFor: (repo) => repo.lanes.review,
    // A reviewer known only by the OS account is unknown: an approval needs a GitHub account or a git user.email.
    reviewer: (repo) => identify(repo.root).then((who) => (who.source === 'os' ? undefined : who.id)),
  });
  tree.setReviewGlance((repo, change) => review.glance(repo, change));
  context.subscriptions.push({ dispose: review.onDidChangeGlance(() => tree.refresh()).dispose });
  const pullRequests = registerPullRequests(context, { logger, registry, policy, kit, view });
  const sandbox = registerSandbox(context, { logger, registry, policy, kit, view });
  const release = registerRelease(context, {
    logger,
    kit,
    policy,
    registry,
    view,
    access: (repo, interactive) => pullRequests.accessFor(repo, interactive),
  });
  registerPromote(context, { kit, policy, sandbox, pullRequests });

  return {
    registry,
    tree,
    statusBar,
    policy,
    drafts,
    review,
    view,
    pullRequests,
    sandbox,
    release,
    languageModelTools,
    gitContent: new GitContentProvider(),
  };
}
