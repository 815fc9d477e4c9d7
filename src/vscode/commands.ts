import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { BuiltInCommands, Commands, EXTENSION_ID } from './constants';
import type { Change } from '../core/change';
import { hasValidApproval } from '../core/pullRequest/glance';
import type { SandboxRunOutcome } from '../infra/lanes/sandbox/sandboxLane';
import type { ChangeTarget, CommandKit } from './commandKit';
import type { DraftCommands, NewDraftArgs } from './draft/draftCommands';
import type { SetAgentSecretArgs } from './draft/agentSecrets';
import type { LanesTreeProvider } from './lanesTree';
import type { PolicyController } from './policy/policyController';
import type { PullRequestCommandResult, PullRequestCommands } from './pullRequest/pullRequestCommands';
import type { RepositoryRegistry } from './repositories';
import type { SandboxCommands } from './sandbox/sandboxCommands';
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
  register(Commands.openSettings, () => vscode.commands.executeCommand(BuiltInCommands.openSettings, `@ext:${EXTENSION_ID}`));
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
  register(Commands.setUpAgent, (presetId?: unknown) => drafts.setUpAgent(typeof presetId === 'string' ? presetId : undefined));
  register(Commands.setAgentSecret, (args?: SetAgentSecretArgs) => drafts.setAgentSecret(args && typeof args === 'object' ? args : {}));
  register(Commands.finishDraft, (target?: ChangeTarget) => drafts.finishDraft(target));
  register(Commands.showAgentLog, (target?: ChangeTarget) => drafts.showAgentLog(target));
  register(Commands.openChanges, (target?: ChangeTarget) => drafts.openChanges(target));
  register(Commands.openWorktree, (target?: ChangeTarget) => drafts.openWorktree(target));
  register(Commands.discard, (target?: ChangeTarget, options?: { confirmed?: boolean }) => drafts.discard(target, options ?? {}));
  register(Commands.reconcile, () => drafts.reconcile());
}

/**
 * "Agent Lanes: Promote": the change's RepositoryLanes decides the next gate from
 * its lane (Draft and Sandbox: the sandbox; Review: the pull request); the
 * gate's own commands supply what it needs and say what came of it.
 */
export function registerPromote(
  context: vscode.ExtensionContext,
  deps: { kit: CommandKit; policy: PolicyController; sandbox: SandboxCommands; pullRequests: PullRequestCommands },
): void {
  const { kit } = deps;
  const promotable = (change: Change) =>
    ((change.lane === 'draft' || change.lane === 'sandbox') && change.agentRun?.state !== 'running') ||
    (change.lane === 'review' && hasValidApproval(change));
  const promote = async (target?: ChangeTarget): Promise<SandboxRunOutcome | PullRequestCommandResult | undefined> => {
    if (!kit.requireTrust('promotion')) return undefined;
    const found = await kit.resolveTarget(target, promotable, 'Promote which change?');
    if (!found) return undefined;
    const { repo, change } = found;
    const sandboxGate = deps.sandbox.gate(repo, change, 'promoting');
    const pullRequestGate = deps.pullRequests.gate(repo, change);
    let reached: 'sandbox' | 'pullRequest' | undefined;
    try {
      await deps.policy.ensureStarted();
      const actor = await kit.actor(repo.root);
      const promoted = await kit.withProgress(
        `Agent Lanes: promoting "${change.title}"`,
        (report, signal) =>
          repo.lanes.promote(change.id, actor, {
            sandbox: () => {
              reached = 'sandbox';
              return sandboxGate.hooks(report, signal);
            },
            pullRequest: () => {
              reached = 'pullRequest';
              return pullRequestGate.options(report);
            },
          }),
        { cancellable: true },
      );
      return promoted.gate === 'sandbox' ? sandboxGate.finished(promoted.outcome) : pullRequestGate.opened(promoted.outcome);
    } catch (error) {
      if (reached === 'pullRequest') return pullRequestGate.failed(error);
      if (reached === 'sandbox') sandboxGate.failed(error);
      else kit.showError(error, `Promoting change ${change.id}`);
      return undefined;
    }
  };
  context.subscriptions.push(vscode.commands.registerCommand(Commands.promote, promote));
}
