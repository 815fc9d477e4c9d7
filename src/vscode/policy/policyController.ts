import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import { type KillSwitchChange, PolicyService, type PolicyState } from '../../infra/policy/policyService';
import { readConfig } from '../config';
import type { RepositoryRegistry } from '../repositories';
import type { PolicyStatus, PolicyStatusBar } from '../statusBar';
import { SETTINGS_SECTION } from '../settingKeys';

function settingsFromConfig() {
  const { config } = readConfig();
  return {
    endpoint: config.policyEndpoint,
    publicKey: config.policyPublicKey,
    refreshIntervalMinutes: config.policyRefreshIntervalMinutes,
    ...(config.policyUser ? { user: config.policyUser } : {}),
  };
}

function toStatus(state: PolicyState): PolicyStatus {
  switch (state.kind) {
    case 'local':
      return { kind: 'local', ...(state.warning ? { warning: state.warning } : {}) };
    case 'org':
      return { kind: 'org', policyRef: state.policyRef, source: state.source, ...(state.warning ? { warning: state.warning } : {}) };
    case 'failClosed':
      return { kind: 'failClosed', reason: state.reason };
  }
}

/**
 * Owns the policy service for the window: starts it lazily (no network during
 * activation), follows the settings, shows its state, and reacts to the kill switch.
 */
export class PolicyController implements vscode.Disposable {
  readonly service: PolicyService;
  private started: Promise<PolicyState> | undefined;
  private registry: RepositoryRegistry | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    globalStorage: string,
    private readonly logger: Logger,
    private readonly statusBar: PolicyStatusBar,
  ) {
    this.service = new PolicyService(settingsFromConfig(), { cacheFile: join(globalStorage, 'policy-cache.json'), logger });
    this.service.onDidChangeState((state) => {
      this.statusBar.show(toStatus(state));
      void this.auditAll('policy.refresh', {
        state: state.kind,
        ...(state.kind === 'failClosed' ? { reason: state.reason } : { policy: state.policyRef }),
      });
    });
    this.service.onDidChangeKillSwitch((change) => void this.onKillSwitch(change));
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (!event.affectsConfiguration(`${SETTINGS_SECTION}.policy`)) return;
        void this.service
          .updateSettings(settingsFromConfig())
          .catch((error: unknown) => logger.error('Applying the policy settings failed', error));
      }),
    );
  }

  attach(registry: RepositoryRegistry): void {
    this.registry = registry;
  }

  /** Fetches once and starts the refresh interval; later calls share the first. */
  ensureStarted(): Promise<PolicyState> {
    this.started ??= this.service.start().then((state) => {
      this.statusBar.show(toStatus(state));
      return state;
    });
    return this.started;
  }

  async refresh(): Promise<PolicyState> {
    await this.ensureStarted();
    const state = await this.service.refresh();
    this.statusBar.show(toStatus(state));
    return state;
  }

  private async onKillSwitch(change: KillSwitchChange): Promise<void> {
    this.logger.warn(
      `Kill switch changed (${change.policyRef}): engaged ${change.engaged.join(', ') || 'none'}, released ${change.released.join(', ') || 'none'}`,
    );
    await this.auditAll('killSwitch.change', {
      policy: change.policyRef,
      engaged: change.engaged,
      released: change.released,
      message: change.current.message,
    });
    if (change.current.cancelRunning) {
      for (const repo of this.registry?.repositories() ?? []) repo.lanes.draft.stopAll();
    }
    if (change.engaged.length) {
      const message = change.current.message ? ` ${change.current.message}` : '';
      void vscode.window.showWarningMessage(
        `Agent Lanes: your organisation turned on the kill switch (${change.engaged.join(', ')}).${message}`,
      );
    }
  }

  private async auditAll(action: 'policy.refresh' | 'killSwitch.change', details: Record<string, unknown>): Promise<void> {
    for (const repo of this.registry?.repositories() ?? []) {
      await repo.lanes.context.audit
        .append({ actor: { type: 'extension', id: 'agent-lanes' }, action, details })
        .catch((error: unknown) => this.logger.error(`Recording ${action} in the audit log of ${repo.root}`, error));
    }
  }

  dispose(): void {
    this.service.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
