import * as vscode from 'vscode';
import type { Change } from '../../core/change';
import type { Logger } from '../../core/logger';
import type { ProductionAction } from '../../core/policy/schema';
import type { GitHubAccess } from '../../infra/lanes/pullRequest/pullRequestLane';
import type { CommandKit, ChangeTarget } from '../commandKit';
import { Commands } from '../constants';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';

// "Agent Lanes: Run Production Action…", "Roll Back…" and "Close Release" (docs/actions.md). The lane decides; this
// file asks the person which action, which inputs, and shows exactly what they authorize before anything runs.

export interface ReleaseDeps {
  logger: Logger;
  kit: CommandKit;
  policy: PolicyController;
  /** GitHub access (signing in when needed; never asking when not interactive); undefined without it. */
  access(repo: RepoContext, interactive?: boolean): Promise<GitHubAccess | undefined>;
  registry: RepositoryRegistry;
  /** Following resumes once the Lanes view is shown (no network work before). */
  view: vscode.TreeView<unknown>;
}

/** For scripts and tests: the action and inputs, and confirmed to skip the dialog (as Discard's `confirmed`). */
interface ReleasePreset {
  actionId?: string;
  inputs?: Record<string, string>;
  confirmed?: boolean;
}

export interface ReleaseCommandResult {
  ok: boolean;
  message: string;
  change?: Change;
}

/** How often running actions are read from GitHub while the window is open. */
const FOLLOW_MS = 15_000;

const KIND_WORDS: Record<ProductionAction['kind'], string> = {
  workflowDispatch: 'workflow run',
  deployment: 'deployment',
  revert: 'revert pull request',
};

function describeAction(action: ProductionAction): string {
  if (action.kind === 'workflowDispatch') return `runs ${action.workflow}${action.environment ? ` (${action.environment})` : ''}`;
  if (action.kind === 'deployment') return `deploys to ${action.environment}`;
  return 'opens a revert pull request';
}

function preconditions(action: ProductionAction): string[] {
  const lines = [`Who may authorize it: ${action.authorizers.join(', ')} (never the change's author or its agent).`];
  if (action.requires?.checksGreen ?? true) lines.push("The merged commit's checks must all have passed.");
  if (action.requires?.after?.length) lines.push(`Only after ${action.requires.after.join(', ')} succeeded for this commit.`);
  const window = action.requires?.window;
  if (window)
    lines.push(`Only ${window.days ? `on ${window.days.join(', ')}` : ''}${window.hours ? ` between ${window.hours}` : ''} (UTC).`);
  if (action.escalation?.timeLimitMinutes)
    lines.push(`Needs a person if still running after ${action.escalation.timeLimitMinutes} minutes.`);
  return lines;
}

export class ReleaseCommands implements vscode.Disposable {
  /** Messages shown to the person, newest last: scripts and tests read what was said. */
  readonly shown: { kind: 'info' | 'warning' | 'error'; message: string }[] = [];
  private readonly following = new Map<string, NodeJS.Timeout>();

  constructor(private readonly deps: ReleaseDeps) {}

  async runAction(target: ChangeTarget, preset?: ReleasePreset): Promise<ReleaseCommandResult> {
    if (!this.deps.kit.requireTrust('run a production action')) return { ok: false, message: 'The workspace is not trusted.' };
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => c.lane === 'release',
      'Run a production action for which merged change?',
    );
    if (!found) return { ok: false, message: 'No change was chosen.' };
    const { repo, change } = found;
    const doing = `Running a production action for change ${change.id}`;
    try {
      await this.deps.policy.ensureStarted();
      const actions = await repo.lanes.release.actions(change.id);
      if (!actions.length)
        return this.say(
          'warning',
          `Policy lists no production action for ${change.release?.repository} ${change.release?.branch} now (or the kill switch stops them). Nothing was run.`,
        );
      const action = preset?.actionId
        ? actions.find((candidate) => candidate.id === preset.actionId)
        : (
            await vscode.window.showQuickPick(
              actions.map((candidate) => ({
                label: candidate.id,
                description: `${KIND_WORDS[candidate.kind]} · ${describeAction(candidate)}`,
                detail: preconditions(candidate).join(' '),
                action: candidate,
              })),
              { placeHolder: `Which action for ${change.release!.mergedSha.slice(0, 12)} of "${change.title}"?`, matchOnDetail: true },
            )
          )?.action;
      if (!action)
        return { ok: false, message: preset?.actionId ? `Policy has no action "${preset.actionId}" here.` : 'No action was chosen.' };
      const inputs: Record<string, string> = {};
      for (const [name, input] of Object.entries(action.inputs ?? {})) {
        if ('fixed' in input) continue;
        const value =
          preset?.inputs?.[name] ??
          (await vscode.window.showQuickPick(input.oneOf, { placeHolder: `Input "${name}" of ${action.id} (policy allows these)` }));
        if (value === undefined) return { ok: false, message: 'No input was chosen.' };
        inputs[name] = value;
      }
      const shown = Object.entries({
        ...Object.fromEntries(
          Object.entries(action.inputs ?? {}).flatMap(([name, input]) => ('fixed' in input ? [[name, input.fixed]] : [])),
        ),
        ...inputs,
      })
        .map(([name, value]) => `${name}=${value}`)
        .join(', ');
      const detail = [
        `${action.id} ${describeAction(action)} for commit ${change.release!.mergedSha} of ${change.release!.repository} (${change.release!.branch}).`,
        shown ? `Inputs: ${shown}.` : 'No inputs.',
        ...preconditions(action),
        'Your GitHub account authorizes it, for exactly this commit and these inputs; everything is checked again against the policy in force right before GitHub is called.',
      ].join('\n');
      const confirmed =
        preset?.confirmed === true ||
        (await vscode.window.showWarningMessage(`Run "${action.id}" for "${change.title}"?`, { modal: true, detail }, 'Run Action')) ===
          'Run Action';
      if (!confirmed) return { ok: false, message: 'Not confirmed; nothing was run.' };
      const access = await this.deps.access(repo);
      if (!access)
        return this.say(
          'error',
          'A production action needs your GitHub sign-in: sign in from the Accounts menu, or with "Agent Lanes: Sign In to GitHub with a Token".',
        );
      const actor = await this.deps.kit.actor(repo.root);
      const outcome = await this.deps.kit.withProgress(`Agent Lanes: ${action.id}`, () =>
        repo.lanes.release.run(change.id, { ...access, actionId: action.id, inputs }, actor),
      );
      this.follow(repo, change.id);
      const where = outcome.run.url ? ` (${outcome.run.url})` : '';
      return {
        ...this.say(
          'info',
          outcome.existing
            ? `"${action.id}" already ran for ${outcome.run.sha.slice(0, 12)}: it is ${outcome.run.state}${where}. Nothing new was started.`
            : action.kind === 'revert'
              ? `"${action.id}": ${outcome.run.message ?? 'a revert draft was opened'}. Run its sandbox tasks, review it and open its pull request like any change.`
              : `"${action.id}" started for ${outcome.run.sha.slice(0, 12)} of "${change.title}"${where}.`,
        ),
        change: outcome.change,
      };
    } catch (error) {
      const shown = this.deps.kit.showError(error, doing);
      this.shown.push({ kind: 'error', message: shown.message });
      return { ok: false, message: shown.message };
    }
  }

  /** Runs the rollback policy names for the failed action; without one, opens a revert draft that goes through the lanes. */
  async rollBack(target: ChangeTarget, preset?: { confirmed?: boolean }): Promise<ReleaseCommandResult> {
    if (!this.deps.kit.requireTrust('roll back')) return { ok: false, message: 'The workspace is not trusted.' };
    const found = await this.deps.kit.resolveTarget(
      target,
      (c) => c.lane === 'release' && !!c.release?.needsRollback,
      'Roll back which change?',
    );
    if (!found) return { ok: false, message: 'No change was chosen.' };
    const { repo, change } = found;
    const needs = change.release?.needsRollback;
    if (!needs) return this.say('info', `Change ${change.id} does not need a rollback.`);
    if (needs.rollback) return this.runAction({ repoRoot: repo.root, changeId: change.id }, { actionId: needs.rollback });
    const sha = change.release!.mergedSha;
    const confirmed =
      preset?.confirmed === true ||
      (await vscode.window.showWarningMessage(
        `Open a revert of "${change.title}"?`,
        {
          modal: true,
          detail: [
            `Policy names no rollback action for this one (${needs.reason}).`,
            `A new change reverts ${sha} on ${change.release!.branch}: it goes through Sandbox, Review and a pull request like any change. Nothing is pushed now.`,
          ].join('\n'),
        },
        'Open Revert Draft',
      )) === 'Open Revert Draft';
    if (!confirmed) return { ok: false, message: 'Not confirmed; nothing was done.' };
    try {
      const actor = await this.deps.kit.actor(repo.root);
      const outcome = await this.deps.kit.withProgress(`Agent Lanes: reverting ${sha.slice(0, 12)}`, () =>
        repo.lanes.release.rollBack(change.id, actor),
      );
      const revert = outcome.revert!;
      return {
        ...this.say(
          'info',
          `Revert draft ${revert.id} of ${sha.slice(0, 12)} is in Draft: run its sandbox tasks, review it and open its pull request like any change.`,
        ),
        change: outcome.change,
      };
    } catch (error) {
      const shown = this.deps.kit.showError(error, `Rolling back change ${change.id}`);
      this.shown.push({ kind: 'error', message: shown.message });
      return { ok: false, message: shown.message };
    }
  }

  async closeRelease(target: ChangeTarget): Promise<ReleaseCommandResult> {
    const found = await this.deps.kit.resolveTarget(target, (c) => c.lane === 'release', 'Close which change in Release?');
    if (!found) return { ok: false, message: 'No change was chosen.' };
    const { repo, change } = found;
    try {
      const closed = await repo.lanes.release.close(change.id, await this.deps.kit.actor(repo.root));
      this.stopFollowing(change.id);
      return { ...this.say('info', `"${change.title}" is closed; its actions and their audit stay.`), change: closed };
    } catch (error) {
      const shown = this.deps.kit.showError(error, `Closing change ${change.id}`);
      return { ok: false, message: shown.message };
    }
  }

  /** Reads running actions from GitHub every FOLLOW_MS until none runs; a failure or a late run shows at once. */
  private follow(repo: RepoContext, changeId: string): void {
    if (this.following.has(changeId)) return;
    const timer = setInterval(() => {
      void (async () => {
        const change = repo.store.get(changeId);
        const running = change?.release?.runs.some((run) => run.state === 'running');
        if (!change || change.lane !== 'release' || !running) return this.stopFollowing(changeId);
        // Never a sign-in prompt for following: only a session or token that is already there.
        const access = await this.deps.access(repo, false);
        if (!access) return;
        const updated = await repo.lanes.release.refresh(changeId, access);
        if (updated.release?.needsRollback && !change.release?.needsRollback)
          this.say(
            'warning',
            `"${updated.title}" needs a rollback: ${updated.release.needsRollback.reason}. Use "Agent Lanes: Roll Back…".`,
          );
      })().catch((error: unknown) => this.deps.logger.warn(`Following the actions of change ${changeId}: ${(error as Error).message}`));
    }, FOLLOW_MS);
    timer.unref?.();
    this.following.set(changeId, timer);
  }

  /** After a reload: follows again every change in Release with an action still running. */
  resumeFollowing(): void {
    void this.deps.registry
      .ensureDiscovered()
      .then(() => {
        for (const repo of this.deps.registry.repositories())
          for (const change of repo.store.all())
            if (change.lane === 'release' && change.release?.runs.some((run) => run.state === 'running')) this.follow(repo, change.id);
      })
      .catch((error: unknown) => this.deps.logger.warn(`Following production actions: ${(error as Error).message}`));
  }

  private stopFollowing(changeId: string): void {
    clearInterval(this.following.get(changeId));
    this.following.delete(changeId);
  }

  private say(kind: 'info' | 'warning' | 'error', message: string): ReleaseCommandResult {
    this.shown.push({ kind, message });
    if (this.shown.length > 50) this.shown.shift();
    if (kind === 'info') void vscode.window.showInformationMessage(message);
    else if (kind === 'warning') void vscode.window.showWarningMessage(message);
    else void vscode.window.showErrorMessage(message);
    return { ok: kind === 'info', message };
  }

  dispose(): void {
    for (const changeId of [...this.following.keys()]) this.stopFollowing(changeId);
  }
}

export function registerRelease(context: vscode.ExtensionContext, deps: ReleaseDeps): ReleaseCommands {
  const commands = new ReleaseCommands(deps);
  const register = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));
  register(Commands.runProductionAction, (target?: ChangeTarget, preset?: ReleasePreset) =>
    commands.runAction(target, preset && typeof preset === 'object' ? preset : undefined),
  );
  register(Commands.rollBack, (target?: ChangeTarget, preset?: { confirmed?: boolean }) => commands.rollBack(target, preset));
  register(Commands.closeRelease, (target?: ChangeTarget) => commands.closeRelease(target));
  context.subscriptions.push(commands);
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    commands.resumeFollowing();
  };
  context.subscriptions.push(deps.view.onDidChangeVisibility((event) => event.visible && resume()));
  if (deps.view.visible) resume();
  return commands;
}
