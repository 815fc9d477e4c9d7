import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { LANES_VIEW_ID } from './constants';
import { readSandboxSettings } from './config';
import { createLogger } from './logger';
import { type LanesNode, LanesTreeProvider } from './lanesTree';
import { RepositoryRegistry } from './repositories';
import { PolicyStatusBar } from './statusBar';
import { registerCommands, registerPromote } from './commands';
import { CommandKit } from './commandKit';
import { PolicyController } from './policy/policyController';
import { DraftCommands } from './draft/draftCommands';
import { GIT_CONTENT_SCHEME, GitContentProvider } from './gitContent';
import { registerLanguageModelTools } from './draft/lmTools';
import { type ReviewController, registerReview } from './review';
import { reviewerLookup } from './review/reviewer';
import { type SandboxCommands, registerSandbox } from './sandbox/sandboxCommands';
import { type PullRequestCommands, registerPullRequests } from './pullRequest/pullRequestCommands';
import { registerPolicyCommands } from './policy/policyCommands';
import { registerAuditCommands } from './audit/auditCommands';

declare const __lanesBundleStart: number | undefined;

/** What activate() returns: used by the integration tests and the benchmark. */
export interface LanesApi {
  /** Time spent in activate(). */
  readonly activationMs: number;
  /** From the first line of the bundle to the end of activate(): module loading included. */
  readonly loadAndActivateMs: number | undefined;
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
}

export function activate(context: vscode.ExtensionContext): LanesApi {
  const started = performance.now();
  const { logger, channel } = createLogger();
  context.subscriptions.push(channel);

  const statusBar = new PolicyStatusBar();
  const policy = new PolicyController(context.globalStorageUri.fsPath, logger, statusBar);
  const registry = new RepositoryRegistry(context.globalStorageUri.fsPath, logger, policy.service, () =>
    readSandboxSettings(context.extensionPath),
  );
  policy.attach(registry);
  const tree = new LanesTreeProvider(registry, logger);
  const view = vscode.window.createTreeView(LANES_VIEW_ID, { treeDataProvider: tree, showCollapseAll: true });
  context.subscriptions.push(statusBar, policy, registry, tree, view);

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
  const drafts = new DraftCommands({ logger, registry, policy, kit });
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(GIT_CONTENT_SCHEME, new GitContentProvider()));
  registerLanguageModelTools(context, { registry, logger, trusted });

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
  const reviewer = reviewerLookup(logger);
  const review = registerReview(context, {
    logger,
    registry,
    laneFor: (repo) => repo.lanes.review,
    reviewer: (repo) => reviewer(repo.root),
  });
  tree.setReviewGlance((repo, change) => review.glance(repo, change).text);
  context.subscriptions.push({ dispose: review.onDidChangeGlance(() => tree.refresh()).dispose });
  const pullRequests = registerPullRequests(context, { logger, registry, policy, kit, view });
  const sandbox = registerSandbox(context, { logger, registry, policy, kit, view });
  registerPromote(context, { kit, policy, sandbox, pullRequests });

  const finished = performance.now();
  const activationMs = finished - started;
  const loadAndActivateMs = typeof __lanesBundleStart === 'number' ? finished - __lanesBundleStart : undefined;
  logger.info(`Agent Lanes activated in ${activationMs.toFixed(1)} ms (${loadAndActivateMs?.toFixed(1) ?? '?'} ms with module loading)`);
  return { activationMs, loadAndActivateMs, registry, tree, statusBar, policy, drafts, review, view, pullRequests, sandbox };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
