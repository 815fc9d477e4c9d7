import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { LANES_VIEW_ID } from './constants';
import { createLogger } from './logger';
import { LanesTreeProvider } from './lanesTree';
import { RepositoryRegistry } from './repositories';
import { PolicyStatusBar } from './statusBar';
import { registerCommands } from './commands';
import { readConfig } from './config';

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
}

export function activate(context: vscode.ExtensionContext): LanesApi {
  const started = performance.now();
  const { logger, channel } = createLogger();
  context.subscriptions.push(channel);

  const registry = new RepositoryRegistry(context.globalStorageUri.fsPath, logger);
  const tree = new LanesTreeProvider(registry, logger);
  const view = vscode.window.createTreeView(LANES_VIEW_ID, { treeDataProvider: tree, showCollapseAll: true });
  const statusBar = new PolicyStatusBar();
  context.subscriptions.push(registry, tree, view, statusBar);

  // Git and network work waits until the view is shown or a command runs.
  const showPolicy = () => statusBar.show(readConfig().config.policyEndpoint ? { kind: 'failClosed', reason: 'The org policy has not been fetched yet.' } : { kind: 'local' });
  context.subscriptions.push(
    view.onDidChangeVisibility((event) => {
      tree.setVisible(event.visible);
      if (event.visible) showPolicy();
    }),
  );
  if (view.visible) {
    tree.setVisible(true);
    showPolicy();
  }

  registerCommands(context, { logger, channel, registry, tree, statusBar });

  const finished = performance.now();
  const activationMs = finished - started;
  const loadAndActivateMs = typeof __lanesBundleStart === 'number' ? finished - __lanesBundleStart : undefined;
  logger.info(`Agent Lanes activated in ${activationMs.toFixed(1)} ms (${loadAndActivateMs?.toFixed(1) ?? '?'} ms with module loading)`);
  return { activationMs, loadAndActivateMs, registry, tree, statusBar };
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
