import * as vscode from 'vscode';
import { Commands, GIT_CONTENT_SCHEME, LANES_VIEW_ID, LM_TOOLS, REVIEW_CONTENT_SCHEME, REVIEW_VIEW_TYPE } from './constants';
import { DeferredTree } from './deferredTree';
import type { LanesApi } from './lanes';
import type { LanesNode } from './lanesTree';
import { createLogger } from './logger';
import { PolicyStatusBar } from './statusBar';

/**
 * The start-up shell: what VS Code loads and activates. It holds only the
 * Lanes view, the status bar and stand-ins for the commands, chat tools,
 * review serializer and documents; the lanes themselves (git, policy,
 * sandbox, GitHub, the review host) are in `lanes.js` and load on first use.
 * Activation stays in the tens of milliseconds, reading the bundle included.
 */
export interface LanesShellApi {
  /** Time spent in activate(). */
  readonly activationMs: number;
  /**
   * Date.now() at the end of activate(): the clock of the extension host's
   * performance marks, so the benchmark can measure from the moment the host
   * began loading this file (its `code/extHost/willLoadExtensionCode/…` mark).
   */
  readonly activatedAt: number;
  /** The lanes, loaded on the first call (the integration tests and the benchmark use it). */
  lanes(): LanesApi;
}

type LanesModule = typeof import('./lanes');

export function activate(context: vscode.ExtensionContext): LanesShellApi {
  const started = performance.now();
  const { logger, channel } = createLogger();
  const statusBar = new PolicyStatusBar();
  const standIns: vscode.Disposable[] = [];
  let loaded: LanesApi | undefined;

  const load = (): LanesApi => {
    if (loaded) return loaded;
    const began = performance.now();
    // The stand-ins go and the real commands come in the same turn of the event loop.
    for (const standIn of standIns.splice(0)) standIn.dispose();
    // esbuild leaves this require alone (external): lanes.js is a bundle of its own beside this one,
    // read only now; a static import would put it back into the start-up bundle.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lanes = require('./lanes.js') as LanesModule;
    loaded = lanes.activateLanes(context, { logger, channel, statusBar, view, tree });
    logger.info(`Agent Lanes loaded its lanes in ${(performance.now() - began).toFixed(0)} ms`);
    return loaded;
  };

  const tree = new DeferredTree<LanesNode>(() => void load());
  const view = vscode.window.createTreeView(LANES_VIEW_ID, { treeDataProvider: tree, showCollapseAll: true });
  context.subscriptions.push(channel, statusBar, tree, view);

  for (const id of Object.values(Commands)) {
    standIns.push(
      vscode.commands.registerCommand(id, (...args: unknown[]) => {
        load();
        return vscode.commands.executeCommand(id, ...args);
      }),
    );
  }
  for (const name of Object.values(LM_TOOLS)) {
    context.subscriptions.push(
      vscode.lm.registerTool<never>(name, {
        invoke: (options, token) => toolOf(load(), name).invoke(options, token),
        prepareInvocation: (options, token) => toolOf(load(), name).prepareInvocation?.(options, token),
      }),
    );
  }
  context.subscriptions.push(
    vscode.window.registerWebviewPanelSerializer(REVIEW_VIEW_TYPE, {
      deserializeWebviewPanel: (panel, state) => load().review.restore(panel, state),
    }),
    vscode.workspace.registerTextDocumentContentProvider(GIT_CONTENT_SCHEME, {
      provideTextDocumentContent: (uri) => load().gitContent.provideTextDocumentContent(uri),
    }),
    vscode.workspace.registerTextDocumentContentProvider(REVIEW_CONTENT_SCHEME, {
      provideTextDocumentContent: (uri) => load().review.contentProvider.provideTextDocumentContent(uri),
    }),
    { dispose: () => standIns.forEach((standIn) => standIn.dispose()) },
  );

  const activationMs = performance.now() - started;
  logger.info(`Agent Lanes activated in ${activationMs.toFixed(1)} ms`);
  return { activationMs, activatedAt: Date.now(), lanes: load };
}

function toolOf(lanes: LanesApi, name: string): vscode.LanguageModelTool<never> {
  const tool = lanes.languageModelTools.get(name);
  if (!tool) throw new Error(`Agent Lanes has no chat tool ${name}.`);
  return tool;
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions.
}
