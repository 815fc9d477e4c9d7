import { join } from 'node:path';
import * as vscode from 'vscode';
import type { AgentConfig } from '../../core/draft/agentConfig';
import { CHAT_AGENT_ID } from '../../core/constants';
import type { Change } from '../../core/change';
import type { ReconcileFinding } from '../../core/draft/draft';
import type { Logger } from '../../core/logger';
import type { DraftAgent } from '../../infra/lanes/draft/draftLane';
import { UncommittedWorkError } from '../../infra/git/worktrees';
import { changedPaths, currentBranchName, recentRefs } from '../../infra/git/queries';
import { readConfig } from '../config';
import { BuiltInCommands, Commands, ContextKeys } from '../constants';
import { readAgentSecrets, type SetAgentSecretArgs, setAgentSecret } from './agentSecrets';
import { installedPresetConfigs, type PresetServices, presetItems, preparePreset } from './agentPresetPicker';
import { AGENT_PRESETS, findPreset } from '../../core/draft/agentPresets';
import { SettingKeys, settingName } from '../settingKeys';
import { gitContentUri } from '../gitContent';
import { type ChangeTarget, type CommandKit, markSetupStep } from '../commandKit';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';
import { counted } from '../../core/words';

export interface NewDraftArgs {
  task?: string;
  base?: string;
  agentId?: string;
  /** The repository root, when the workspace has several. */
  repository?: string;
  /** Do not run the agent right away (tests). */
  noRun?: boolean;
  /** A task class of the policy; without it, New Draft asks when the policy defines classes (and a task was not given). */
  taskClass?: string;
}

export interface DraftServices {
  logger: Logger;
  secrets: vscode.SecretStorage;
  /** Where the presets' CLIs are installed (the extension's global storage). */
  agentCliCache: string;
  registry: RepositoryRegistry;
  policy: PolicyController;
  kit: CommandKit;
}

export class DraftCommands {
  constructor(private readonly services: DraftServices) {}

  /** "Agent Lanes: New Draft…": task, base and agent, then the worktree, then the agent. */
  async newDraft(args: NewDraftArgs = {}): Promise<Change | undefined> {
    const { logger } = this.services;
    if (!this.services.kit.requireTrust('new draft')) return undefined;
    const repo = await this.services.kit.pickRepository(args.repository);
    if (!repo) return undefined;
    await this.services.policy.ensureStarted();
    // The kill switch first: nobody is asked three questions for a draft that cannot start (refused and audited now).
    if (this.services.policy.service.effective.policy.killSwitch.disableDrafts) {
      try {
        await repo.lanes.draft.checkMayStart(await this.services.kit.actor(repo.root));
      } catch (error) {
        this.services.kit.showError(error, 'Creating the draft');
        return undefined;
      }
    }
    const task = args.task ?? (await this.askTask());
    if (!task?.trim()) return undefined;
    // With the task given (palette scripts, keybindings, tests), the base defaults to HEAD without asking.
    const base = args.base ?? (args.task !== undefined ? '' : await this.askBase(repo));
    if (base === undefined) return undefined;
    const agent = await this.pickAgent(args.agentId);
    if (!agent) return undefined;
    const taskClass = args.taskClass ?? (args.task !== undefined ? '' : await this.pickTaskClass());
    if (taskClass === undefined) return undefined;
    try {
      const actor = await this.services.kit.actor(repo.root);
      const started = await this.services.kit.withProgress('Agent Lanes: creating the draft worktree…', () =>
        repo.lanes.draft.start({
          task,
          ...(base ? { baseRef: base } : {}),
          ...(taskClass ? { taskClass } : {}),
          agent,
          actor,
          createdBy: actor.id,
        }),
      );
      for (const warning of started.warnings) void vscode.window.showWarningMessage(warning);
      logger.info(`Change ${started.change.id} created on ${started.change.branch} at ${started.change.worktreePath}`);
      markSetupStep(ContextKeys.setupDrafted);
      if (agent.kind === 'cli' && !args.noRun) void this.runAgent(repo, started.change, agent.config);
      if (agent.kind === 'chat') {
        void vscode.window.showInformationMessage(
          `Draft ${started.change.id} is ready for a chat agent. In the chat, ask the agent to work on change ${started.change.id} with the Agent Lanes tools (#lanesFiles); then run "Agent Lanes: Finish Draft".`,
        );
      }
      return started.change;
    } catch (error) {
      this.services.kit.showError(error, 'Creating the draft');
      return undefined;
    }
  }

  private async askTask(): Promise<string | undefined> {
    const line = await vscode.window.showInputBox({
      title: 'New Draft (1/3): the task',
      prompt: 'Describe the task for the agent. Leave it empty and press Enter to write a longer task in an editor.',
      placeHolder: 'e.g. Add input validation to the signup form, with tests',
      ignoreFocusOut: true,
    });
    if (line === undefined) return undefined;
    if (line.trim()) return line;
    const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: '' });
    await vscode.window.showTextDocument(doc);
    const choice = await vscode.window.showInformationMessage(
      'Write the task in the new editor, then choose Continue.',
      'Continue',
      'Cancel',
    );
    const text = doc.getText();
    if (vscode.window.activeTextEditor?.document === doc) await vscode.commands.executeCommand(BuiltInCommands.revertAndCloseActiveEditor);
    return choice === 'Continue' ? text : undefined;
  }

  private async askBase(repo: RepoContext): Promise<string | undefined> {
    const head = await currentBranchName(repo.root);
    const refs = await recentRefs(repo.root);
    const quickPick = vscode.window.createQuickPick<vscode.QuickPickItem & { ref: string }>();
    quickPick.title = 'New Draft (2/3): the base';
    quickPick.placeholder = 'The commit the draft starts from; type any branch, tag or SHA';
    quickPick.ignoreFocusOut = true;
    quickPick.items = [
      { label: `$(git-commit) HEAD of ${head}`, description: 'the current commit (default)', ref: '' },
      ...refs.map(({ name, shortSha }) => ({ label: name, description: shortSha, ref: name })),
    ];
    return new Promise((resolve) => {
      quickPick.onDidAccept(() => {
        const picked = quickPick.selectedItems[0];
        resolve(picked ? picked.ref : quickPick.value.trim());
        quickPick.hide();
      });
      quickPick.onDidHide(() => {
        resolve(undefined);
        quickPick.dispose();
      });
      quickPick.show();
    });
  }

  /**
   * The kind of work, when the policy defines task classes: "" lets the policy classify the task (the rollout mode of
   * a class then applies: docs/policy.md). Undefined: cancelled.
   */
  private async pickTaskClass(): Promise<string | undefined> {
    const classes = this.services.policy.service.effective.policy.taskClasses;
    if (!classes.length) return '';
    type Item = vscode.QuickPickItem & { id: string };
    const picked = await vscode.window.showQuickPick<Item>(
      [
        { label: '$(sparkle) Let the policy classify the task', description: 'from its words and the files it changes', id: '' },
        ...classes.map((taskClass) => ({
          label: taskClass.id,
          ...(taskClass.description ? { description: taskClass.description } : {}),
          ...(taskClass.paths?.length ? { detail: `only when every changed file is in ${taskClass.paths.join(', ')}` } : {}),
          id: taskClass.id,
        })),
      ],
      { title: 'New Draft: the kind of work', placeHolder: 'The task class decides how far the change may go', ignoreFocusOut: true },
    );
    return picked?.id;
  }

  private async pickAgent(agentId?: string): Promise<DraftAgent | undefined> {
    const { config, problems } = readConfig();
    for (const problem of problems.filter((p) => p.key === settingName(SettingKeys.agents)))
      void vscode.window.showWarningMessage(problem.message);
    if (agentId === CHAT_AGENT_ID) return { kind: 'chat' };
    // An agent of the settings wins over a preset of the same id (a user's own command template).
    if (agentId && !config.agents.some((a) => a.id === agentId) && findPreset(agentId)) {
      const preset = await preparePreset(this.presetServices(), agentId);
      return preset ? { kind: 'cli', config: preset } : undefined;
    }
    if (agentId) {
      const agent = config.agents.find((a) => a.id === agentId);
      if (!agent)
        void vscode.window.showErrorMessage(
          `There is no agent "${agentId}" in the setting agentLanes.agents. Add it there, or pick another agent.`,
        );
      return agent ? { kind: 'cli', config: agent } : undefined;
    }
    type Item = vscode.QuickPickItem & { agent?: DraftAgent; configure?: boolean; presetId?: string };
    const configured = new Set(config.agents.map((agent) => agent.id));
    const items: Item[] = [
      ...config.agents.map((agent): Item => ({
        label: agent.label,
        description: agent.id,
        detail: agent.command.join(' '),
        agent: { kind: 'cli', config: agent },
      })),
      ...(await presetItems(this.services.agentCliCache))
        .filter((item) => !configured.has(item.preset.id))
        .map((item): Item => ({ label: item.label, description: item.description, detail: item.detail, presetId: item.preset.id })),
      {
        label: '$(comment-discussion) An agent in VS Code chat',
        description: CHAT_AGENT_ID,
        detail: 'Copilot agent mode or any chat agent, through the Agent Lanes language model tools',
        agent: { kind: 'chat' },
      },
      { label: '$(settings-gear) Configure a CLI agent…', description: settingName(SettingKeys.agents), configure: true },
    ];
    const picked = await vscode.window.showQuickPick(items, {
      title: 'New Draft (3/3): the agent',
      placeHolder: 'Which agent writes the draft?',
      ignoreFocusOut: true,
    });
    if (picked?.configure) {
      await vscode.commands.executeCommand(BuiltInCommands.openSettings, settingName(SettingKeys.agents));
      return undefined;
    }
    if (picked?.presetId) {
      const preset = await preparePreset(this.presetServices(), picked.presetId);
      return preset ? { kind: 'cli', config: preset } : undefined;
    }
    return picked?.agent;
  }

  private presetServices(): PresetServices {
    return {
      kit: this.services.kit,
      secrets: this.services.secrets,
      cliCache: this.services.agentCliCache,
      baseUrls: () => readConfig().config.agentPresetBaseUrls,
    };
  }

  /** Runs a CLI agent with progress; cancelling stops it and its process tree. */
  async runAgent(repo: RepoContext, change: Change, agent: AgentConfig): Promise<void> {
    const { logger } = this.services;
    if (!this.services.kit.requireTrust('agent run')) return;
    try {
      const { values: secrets, missing } = await readAgentSecrets(this.services.secrets, agent);
      if (missing.length) {
        const set = 'Set Agent Secret…';
        logger.warn(`Change ${change.id}: agent "${agent.id}" was not started: no value for ${missing.join(', ')}.`);
        void vscode.window
          .showErrorMessage(
            `Agent "${agent.label}" needs ${missing.join(', ')}, which has no value yet. Set it with "Agent Lanes: Set Agent Secret…" (kept in SecretStorage), then run the agent again ("Agent Lanes: Run Agent").`,
            set,
          )
          .then((choice) => {
            if (choice === set) void vscode.commands.executeCommand(Commands.setAgentSecret, { agentId: agent.id, name: missing[0] });
          });
        return;
      }
      const actor = await this.services.kit.actor(repo.root);
      const outcome = await this.services.kit.withProgress(
        `Agent Lanes: ${agent.label} is drafting "${change.title}"`,
        (report, signal) => {
          signal.addEventListener('abort', () => void repo.lanes.draft.stopAgent(change.id));
          return repo.lanes.draft.runAgent(change.id, agent, actor, { onLine: (line) => report(line.slice(0, 120)), secrets });
        },
        { cancellable: true },
      );
      logger.info(`Change ${change.id}: ${outcome.message}`);
      const showLog = 'Show Agent Log';
      const done = outcome.outcome === 'committed' || outcome.outcome === 'noChanges';
      const notify = done ? vscode.window.showInformationMessage : vscode.window.showErrorMessage;
      const extra = outcome.reportError ? ` The agent's report was refused: ${outcome.reportError}` : '';
      void notify(`"${change.title}": ${outcome.message}${extra}`, showLog).then((choice) => {
        if (choice === showLog) void this.showAgentLog({ repoRoot: repo.root, changeId: change.id });
      });
      if (outcome.checkout && !outcome.checkout.untouched) {
        void vscode.window.showErrorMessage(
          `Your checkout changed while the agent of change ${change.id} ran: ${outcome.checkout.differences.slice(0, 3).join('; ')}. The change is flagged; check your files.`,
          { modal: false },
        );
      }
    } catch (error) {
      this.services.kit.showError(error, `Running the agent on change ${change.id}`);
    }
  }

  async runAgentCommand(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(target, (c) => c.lane === 'draft', 'Run an agent on which draft?');
    if (!found) return;
    const agent = await this.pickAgent(found.change.agentId === CHAT_AGENT_ID ? undefined : found.change.agentId);
    if (!agent) return;
    if (agent.kind !== 'cli') {
      void vscode.window.showInformationMessage(
        `Ask the chat agent to work on change ${found.change.id} with the Agent Lanes tools, then run "Agent Lanes: Finish Draft".`,
      );
      return;
    }
    await this.runAgent(found.repo, found.change, agent.config);
  }

  /**
   * "Agent Lanes: Set Up an Agent…" (and the walkthrough's first step): picks a
   * preset, installs its CLI and asks for its API key, without starting a draft.
   */
  async setUpAgent(presetId?: string): Promise<void> {
    const id =
      presetId ??
      (
        await vscode.window.showQuickPick(await presetItems(this.services.agentCliCache), {
          title: 'Set up an agent',
          placeHolder: 'Which coding agent should write drafts? It runs inside an isolation boundary.',
          ignoreFocusOut: true,
        })
      )?.preset.id;
    if (!id) return;
    if (!findPreset(id)) {
      void vscode.window.showErrorMessage(
        `There is no agent preset "${id}"; the presets are ${AGENT_PRESETS.map((p) => p.id).join(', ')}.`,
      );
      return;
    }
    const config = await preparePreset(this.presetServices(), id);
    if (config) markSetupStep(ContextKeys.setupAgentReady);
    if (config)
      void vscode.window.showInformationMessage(
        `${config.label} is ready: pick it in "Agent Lanes: New Draft…". Its network allowlist (policy lanes.agent.network.allow) needs ${findPreset(id)!.hosts.join(', ')}.`,
      );
  }

  /** "Agent Lanes: Set Agent Secret…". */
  async setAgentSecret(args: SetAgentSecretArgs = {}): Promise<void> {
    const { agents } = readConfig().config;
    const presets = (await installedPresetConfigs(this.presetServices())).filter((preset) => !agents.some((a) => a.id === preset.id));
    await setAgentSecret(this.services.secrets, [...agents, ...presets], args);
  }

  async stopAgent(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(target, (c) => c.agentRun?.state === 'running', 'Stop the agent of which change?');
    if (!found) return;
    const actor = await this.services.kit.actor(found.repo.root);
    if (!(await found.repo.lanes.draft.stopAgent(found.change.id, actor)))
      void vscode.window.showInformationMessage(`No agent is running on change ${found.change.id}.`);
  }

  /** Commits and analyses what a chat agent left in the worktree. */
  async finishDraft(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(
      target,
      (c) => c.lane === 'draft' && c.agentRun?.state !== 'running',
      'Finish which draft?',
    );
    if (!found) return;
    try {
      const outcome = await found.repo.lanes.draft.finish(found.change.id, { actor: await this.services.kit.actor(found.repo.root) });
      void vscode.window.showInformationMessage(`"${found.change.title}": ${outcome.message}`);
    } catch (error) {
      this.services.kit.showError(error, `Finishing draft ${found.change.id}`);
    }
  }

  async showAgentLog(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(target, () => true, 'Show the agent log of which change?');
    if (!found) return;
    const file = join(found.repo.storage.changeDir(found.change.id), 'agent.log');
    try {
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
      await vscode.window.showTextDocument(doc, { preview: true });
    } catch {
      void vscode.window.showInformationMessage(`Change ${found.change.id} has no agent log yet: no CLI agent has run on it.`);
    }
  }

  /** "Agent Lanes: Open Changes": the base against the lane branch in VS Code's multi-diff editor. */
  async openChanges(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(target, (c) => c.lane !== 'closed', 'Open the changes of which change?');
    if (!found) return;
    const { repo, change } = found;
    const head = change.headSha ?? change.branch;
    const resources: [vscode.Uri, vscode.Uri, vscode.Uri][] = [];
    for (const path of await changedPaths(repo.root, change.baseSha, head)) {
      resources.push([
        vscode.Uri.file(join(change.worktreePath, path)),
        gitContentUri(repo.root, change.baseSha, path),
        gitContentUri(repo.root, head, path),
      ]);
    }
    if (!resources.length) {
      void vscode.window.showInformationMessage(`Change ${change.id} has no committed changes yet.`);
      return;
    }
    await vscode.commands.executeCommand('vscode.changes', `Change ${change.id}: ${change.title}`, resources);
  }

  async openWorktree(target: ChangeTarget): Promise<void> {
    const found = await this.services.kit.resolveTarget(target, (c) => c.lane !== 'closed', 'Open the worktree of which change?');
    if (!found) return;
    await vscode.commands.executeCommand(BuiltInCommands.openFolder, vscode.Uri.file(found.change.worktreePath), { forceNewWindow: true });
  }

  /** "Agent Lanes: Discard Change": confirms, removes worktree and branch, keeps the record and audit. */
  async discard(target: ChangeTarget, options: { confirmed?: boolean } = {}): Promise<void> {
    const found = await this.services.kit.resolveTarget(
      target,
      (c) => c.lane !== 'closed' && c.lane !== 'pullRequest',
      'Discard which change?',
    );
    if (!found) return;
    const { repo, change } = found;
    if (!options.confirmed) {
      const answer = await vscode.window.showWarningMessage(
        `Discard change ${change.id} "${change.title}"? Its worktree and branch ${change.branch} are removed; its record and audit trail stay.`,
        { modal: true },
        'Discard',
      );
      if (answer !== 'Discard') return;
    }
    const actor = await this.services.kit.actor(repo.root);
    try {
      await repo.lanes.draft.discard(change.id, actor);
    } catch (error) {
      if (error instanceof UncommittedWorkError) {
        const force = options.confirmed
          ? 'Discard Anyway'
          : await vscode.window.showWarningMessage(`${error.message}`, { modal: true }, 'Discard Anyway');
        if (force !== 'Discard Anyway') return;
        try {
          await repo.lanes.draft.discard(change.id, actor, { force: true });
        } catch (again) {
          this.services.kit.showError(again, `Discarding change ${change.id}`);
        }
        return;
      }
      this.services.kit.showError(error, `Discarding change ${change.id}`);
    }
  }

  /** Finds leftovers (worktrees without records, records without worktrees) and offers to clean up. */
  async reconcile(options: { quietWhenClean?: boolean } = {}): Promise<ReconcileFinding[]> {
    const { registry, logger } = this.services;
    await registry.ensureDiscovered();
    const all: { repo: RepoContext; finding: ReconcileFinding }[] = [];
    for (const repo of registry.repositories()) {
      try {
        for (const finding of await repo.lanes.draft.reconcile()) all.push({ repo, finding });
      } catch (error) {
        logger.error(`Reconciling ${repo.root}`, error);
      }
    }
    if (!all.length) {
      if (!options.quietWhenClean)
        void vscode.window.showInformationMessage('Agent Lanes: every change has its worktree, and there are no leftovers.');
      return [];
    }
    if (options.quietWhenClean) {
      // Offered, not forced: the findings come back at once, the choice later.
      void vscode.window
        .showWarningMessage(
          `Agent Lanes found ${counted(all.length, 'leftover worktree or record', 'leftover worktrees or records')} that do not match, e.g. after a crash.`,
          'Review',
        )
        .then((choice) => {
          if (choice === 'Review') void this.reconcile();
        });
      return all.map((a) => a.finding);
    }
    type Item = vscode.QuickPickItem & { repo: RepoContext; finding: ReconcileFinding; action: ReconcileFinding['actions'][number] };
    const items: Item[] = all.flatMap(({ repo, finding }) =>
      finding.actions.map((action) => ({
        label: `${actionLabel(action)}${finding.hasUncommittedWork ? ' $(warning) has uncommitted work' : ''}`,
        description: finding.changeId ?? finding.branch ?? '',
        detail: finding.message,
        repo,
        finding,
        action,
      })),
    );
    const picked = await vscode.window.showQuickPick(items, {
      placeHolder: 'Clean up which leftover? (nothing is removed without this choice)',
    });
    if (!picked) return all.map((a) => a.finding);
    let force = false;
    if (picked.finding.hasUncommittedWork && ['removeWorktree', 'removeFolder', 'deleteBranch'].includes(picked.action)) {
      force =
        (await vscode.window.showWarningMessage(
          `${picked.finding.message} It has uncommitted work that will be lost.`,
          { modal: true },
          'Remove Anyway',
        )) === 'Remove Anyway';
      if (!force) return all.map((a) => a.finding);
    }
    try {
      await picked.repo.lanes.draft.applyReconcile(picked.finding, picked.action, await this.services.kit.actor(picked.repo.root), {
        force,
      });
      void vscode.window.showInformationMessage(`Done: ${actionLabel(picked.action).toLowerCase()}.`);
    } catch (error) {
      this.services.kit.showError(error, 'Cleaning up');
    }
    return all.map((a) => a.finding);
  }
}

function actionLabel(action: ReconcileFinding['actions'][number]): string {
  switch (action) {
    case 'restoreWorktree':
      return 'Restore the worktree';
    case 'prune':
      return 'Prune the stale worktree entry';
    case 'removeWorktree':
      return 'Remove the worktree';
    case 'deleteBranch':
      return 'Delete the lane branch';
    case 'removeFolder':
      return 'Remove the folder';
  }
}
