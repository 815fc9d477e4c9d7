import * as vscode from 'vscode';
import { Commands } from './constants';

/** What the status bar says about policy; mirrors the policy service's state. */
export type PolicyStatus =
  | { kind: 'local'; warning?: string }
  | { kind: 'org'; policyRef: string; source: 'network' | 'cache'; warning?: string }
  | { kind: 'failClosed'; reason: string }
  | { kind: 'pending' };

export class PolicyStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('agentLanes.policy', vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'Agent Lanes Policy';
    this.item.command = Commands.showPolicyState;
    this.show({ kind: 'pending' });
    this.item.show();
  }

  show(status: PolicyStatus): void {
    const item = this.item;
    item.backgroundColor = undefined;
    switch (status.kind) {
      case 'pending':
        item.text = '$(shield) Lanes: policy…';
        item.tooltip = 'Agent Lanes reads the policy when the Lanes view opens or a lane command runs.';
        break;
      case 'local':
        item.text = '$(shield) Lanes: local policy';
        item.tooltip = `No org policy endpoint is set (agentLanes.policy.endpoint): the built-in conservative policy applies.${status.warning ? ` ${status.warning}` : ''} Click for details.`;
        if (status.warning) item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      case 'org':
        item.text = `$(shield) Lanes: ${status.policyRef}${status.source === 'cache' ? ' (cached)' : ''}`;
        item.tooltip = `Org policy ${status.policyRef}${status.source === 'cache' ? ', from the local cache' : ''}.${status.warning ? ` ${status.warning}` : ''} Click for details.`;
        if (status.warning) item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
        break;
      case 'failClosed':
        item.text = '$(shield) Lanes: policy unavailable';
        item.tooltip = `${status.reason} Until a valid policy is available, only drafts are allowed: no sandbox runs, pushes or pull requests. Click for details.`;
        item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
    }
  }

  get text(): string {
    return this.item.text;
  }

  dispose(): void {
    this.item.dispose();
  }
}
