import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { Commands } from './constants';
import type { LanesTreeProvider } from './lanesTree';
import type { RepositoryRegistry } from './repositories';
import type { PolicyStatusBar } from './statusBar';
import { readConfig } from './config';

export interface CommandServices {
  logger: Logger;
  channel: vscode.LogOutputChannel;
  registry: RepositoryRegistry;
  tree: LanesTreeProvider;
  statusBar: PolicyStatusBar;
}

export function registerCommands(context: vscode.ExtensionContext, services: CommandServices): void {
  const { registry, tree, channel } = services;
  const register = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));

  register(Commands.refresh, async () => {
    await registry.rediscover();
    tree.refresh();
  });
  register(Commands.showLog, () => channel.show(true));
  register(Commands.openSettings, () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:agent-lanes.agent-lanes'));
  register(Commands.showPolicyState, async () => {
    const { config } = readConfig();
    const message = config.policyEndpoint
      ? `Agent Lanes policy endpoint: ${config.policyEndpoint}. ${services.statusBar.text.replace(/^\$\([^)]+\)\s*/, '')}`
      : 'Agent Lanes uses its built-in local policy: no org policy endpoint is set (agentLanes.policy.endpoint).';
    const choice = await vscode.window.showInformationMessage(message, 'Open Settings');
    if (choice === 'Open Settings') await vscode.commands.executeCommand(Commands.openSettings);
  });
}
