import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { Commands } from './constants';
import type { ChangeTarget, DraftCommands, NewDraftArgs } from './draft/draftCommands';
import type { LanesTreeProvider } from './lanesTree';
import type { PolicyController } from './policy/policyController';
import type { RepositoryRegistry } from './repositories';
import type { PolicyStatusBar } from './statusBar';

export interface CommandServices {
  logger: Logger;
  channel: vscode.LogOutputChannel;
  registry: RepositoryRegistry;
  tree: LanesTreeProvider;
  statusBar: PolicyStatusBar;
  policy: PolicyController;
  drafts: DraftCommands;
}

export function registerCommands(context: vscode.ExtensionContext, services: CommandServices): void {
  const { registry, tree, channel, drafts, policy } = services;
  const register = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));

  register(Commands.refresh, async () => {
    await registry.rediscover();
    tree.refresh();
  });
  register(Commands.showLog, () => channel.show(true));
  register(Commands.openSettings, () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:agent-lanes.agent-lanes'));
  register(Commands.showPolicyState, async () => {
    const state = await policy.ensureStarted();
    const message =
      state.kind === 'local'
        ? 'Agent Lanes uses its built-in local policy: no org policy endpoint is set (agentLanes.policy.endpoint).'
        : state.kind === 'org'
          ? `Agent Lanes follows the org policy ${state.policyRef}${state.source === 'cache' ? ' (from the local cache)' : ''}, fetched ${new Date(state.fetchedAt).toLocaleString()}.${state.warning ? ` ${state.warning}` : ''}`
          : `The org policy is unavailable, so only drafts are allowed: ${state.reason}`;
    const choice = await vscode.window.showInformationMessage(message, 'Refresh Policy', 'Open Settings');
    if (choice === 'Refresh Policy') await vscode.commands.executeCommand(Commands.refreshPolicy);
    if (choice === 'Open Settings') await vscode.commands.executeCommand(Commands.openSettings);
  });
  register(Commands.refreshPolicy, async () => {
    const state = await policy.refresh();
    if (state.kind === 'failClosed') void vscode.window.showWarningMessage(`Agent Lanes: the org policy is unavailable: ${state.reason}`);
  });

  register(Commands.newDraft, (args?: NewDraftArgs) => drafts.newDraft(args && typeof args === 'object' && !('kind' in args) ? args : {}));
  register(Commands.runAgent, (target?: ChangeTarget) => drafts.runAgentCommand(target));
  register(Commands.stopAgent, (target?: ChangeTarget) => drafts.stopAgent(target));
  register(Commands.finishDraft, (target?: ChangeTarget) => drafts.finishDraft(target));
  register(Commands.showAgentLog, (target?: ChangeTarget) => drafts.showAgentLog(target));
  register(Commands.openChanges, (target?: ChangeTarget) => drafts.openChanges(target));
  register(Commands.openWorktree, (target?: ChangeTarget) => drafts.openWorktree(target));
  register(Commands.discard, (target?: ChangeTarget, options?: { confirmed?: boolean }) => drafts.discard(target, options ?? {}));
  register(Commands.reconcile, () => drafts.reconcile());
}
