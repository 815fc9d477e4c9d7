import * as vscode from 'vscode';
import type { Change } from '../../core/change';
import type { Logger } from '../../core/logger';
import {
  type SandboxLaneProgress,
  type SandboxOrphan,
  type SandboxRunHooks,
  type SandboxRunOutcome,
  SandboxInputError,
} from '../../infra/lanes/sandbox/sandboxLane';
import { readFile } from 'node:fs/promises';
import { engineInstallHelp, parseOsRelease } from '../../core/sandbox/engineInstall';
import { detectEngine } from '../../infra/sandbox/engine';
import { SandboxError } from '../../infra/sandbox/types';
import { readConfig } from '../config';
import { BuiltInCommands, Commands, ContextKeys } from '../constants';
import { SETTINGS_SECTION } from '../settingKeys';
import { type ChangeTarget, type CommandKit, markSetupStep, type ReportProgress } from '../commandKit';
import type { LanesNode } from '../lanesTree';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';
import { counted } from '../../core/words';

/** The sandbox gate as the editor sees it (see SandboxCommands.gate). */
export interface SandboxGate {
  /** Asked by the lane when the change reaches the sandbox: where output and progress go, and the cancel signal. */
  hooks(report: ReportProgress, signal: AbortSignal): SandboxRunHooks;
  finished(outcome: SandboxRunOutcome): SandboxRunOutcome;
  failed(error: unknown): void;
}

export interface SandboxDeps {
  logger: Logger;
  registry: RepositoryRegistry;
  policy: PolicyController;
  kit: CommandKit;
  /** The Lanes view: orphaned containers are looked for when it is first shown. */
  view: vscode.TreeView<LanesNode>;
}

/** "Agent Lanes: Show Task Log": a change, and optionally which task ('prepare' for the preparation). */
export type TaskLogTarget = ChangeTarget | { repoRoot?: string; changeId: string; taskId?: string };

const SANDBOX_CHANNEL = 'Agent Lanes: Sandbox';
/** The process sandbox's notice, shortened for a toast; the evidence keeps the whole of it. */
const SANDBOX_NOTICE_SHORT = 'The tasks ran in the process sandbox (no container engine found), a lesser isolation.';

function progressText(progress: SandboxLaneProgress): string {
  switch (progress.kind) {
    case 'preparing':
      return progress.message;
    case 'taskStarted':
      return `task ${progress.index + 1}/${progress.total}: ${progress.task.id}`;
    case 'taskFinished':
      return `${progress.evidence.id}: ${progress.evidence.outcome}`;
    case 'baseRun':
      return `running ${progress.tasks.join(', ')} on the base commit`;
    case 'promoted':
      return progress.to === 'review' ? 'moved to Review' : 'moved to Sandbox';
  }
}

/**
 * The Sandbox lane in the editor: "Agent Lanes: Run Sandbox Tasks", "Agent Lanes: Stop
 * Sandbox Tasks", "Agent Lanes: Show Task Log", "Agent Lanes: Clean Up Sandbox
 * Containers", and the sandbox gate of "Agent Lanes: Promote". Each repository's
 * SandboxLane lives in its RepositoryLanes.
 */
export class SandboxCommands implements vscode.Disposable {
  private channel: vscode.OutputChannel | undefined;
  private orphansChecked = false;

  constructor(private readonly deps: SandboxDeps) {}

  private output(): vscode.OutputChannel {
    this.channel ??= vscode.window.createOutputChannel(SANDBOX_CHANNEL);
    return this.channel;
  }

  /** Streams a task's redacted output to the Sandbox channel, each line prefixed with the change and task. */
  private writer(changeId: string): (taskId: string, text: string) => void {
    const channel = this.output();
    return (taskId, text) => {
      const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
      channel.append(lines.map((line) => `[${changeId} ${taskId}] ${line}\n`).join(''));
    };
  }

  /** "Agent Lanes: Run Sandbox Tasks" on a change in Draft or Sandbox. */
  async runTasks(target: ChangeTarget): Promise<SandboxRunOutcome | undefined> {
    const { kit } = this.deps;
    if (!kit.requireTrust('sandbox tasks')) return undefined;
    const found = await kit.resolveTarget(
      target,
      (c) => (c.lane === 'draft' || c.lane === 'sandbox') && c.agentRun?.state !== 'running',
      'Run the sandbox tasks of which change?',
    );
    if (!found) return undefined;
    const { repo, change } = found;
    const gate = this.gate(repo, change, 'running the sandbox tasks');
    try {
      await this.deps.policy.ensureStarted();
      const actor = await kit.actor(repo.root);
      const outcome = await kit.withProgress(
        `Agent Lanes: sandbox of "${change.title}"`,
        (report, signal) => repo.lanes.sandbox.run(change.id, actor, gate.hooks(report, signal)),
        { cancellable: true },
      );
      return gate.finished(outcome);
    } catch (error) {
      gate.failed(error);
      return undefined;
    }
  }

  /**
   * One pass of a change through its sandbox: the task output goes to the
   * Sandbox channel and the progress; the outcome or failure is announced.
   */
  gate(repo: RepoContext, change: Change, doing: string): SandboxGate {
    return {
      hooks: (report, signal) => {
        this.output().appendLine(`── ${new Date().toLocaleTimeString()} change ${change.id} "${change.title}": ${doing}`);
        let total = 0;
        return {
          signal,
          onTaskOutput: this.writer(change.id),
          onProgress: (p: SandboxLaneProgress) => {
            if (p.kind === 'taskStarted') total = p.total;
            report(progressText(p), p.kind === 'taskFinished' && total ? 90 / total : undefined);
          },
        };
      },
      finished: (outcome) => {
        this.output().appendLine(`── change ${change.id}: ${outcome.message}`);
        this.deps.logger.info(outcome.message);
        this.announce(repo, outcome);
        return outcome;
      },
      failed: (error) => this.showError(error, `The sandbox of change ${change.id}`),
    };
  }

  private announce(repo: RepoContext, outcome: SandboxRunOutcome): void {
    const changeId = outcome.change.id;
    const showLog = 'Show Task Log';
    // One toast per outcome: the process sandbox's notice rides along instead of stacking a second one.
    const isolation = outcome.notice ? ` ${SANDBOX_NOTICE_SHORT}` : '';
    if (outcome.promoted) {
      // Not awaited: the command ends, the person answers when they like.
      void vscode.window
        .showInformationMessage(
          `"${outcome.change.title}" is ready for review: ${outcome.message.replace(/^Change \w+: /, '')}${isolation}`,
          'Open Review',
          showLog,
        )
        .then((choice) => {
          if (choice === 'Open Review') void vscode.commands.executeCommand(Commands.openReview, { repoRoot: repo.root, changeId });
          if (choice === showLog) void this.showTaskLog({ repoRoot: repo.root, changeId });
        });
      return;
    }
    const notify = outcome.verdict === 'passed' ? vscode.window.showWarningMessage : vscode.window.showErrorMessage;
    void notify(`"${outcome.change.title}": ${outcome.message.replace(/^Change \w+: /, '')}${isolation}`, showLog).then((choice) => {
      if (choice === showLog) void this.showTaskLog({ repoRoot: repo.root, changeId });
    });
  }

  private showError(error: unknown, doing: string): void {
    const { logger, kit } = this.deps;
    // The sandbox's own errors are not LaneErrors yet: shown as they are, with the settings when one is the cause.
    if (error instanceof SandboxInputError) {
      logger.warn(`${doing}: ${error.message}`);
      void vscode.window.showErrorMessage(error.message);
      return;
    }
    if (error instanceof SandboxError) {
      logger.warn(`${doing}: ${error.kind}: ${error.message}`);
      const settings = error.kind === 'noSandbox' || error.kind === 'imageMissing' ? ['Open Settings'] : [];
      void vscode.window.showErrorMessage(error.message, ...settings).then((choice) => {
        if (choice === 'Open Settings') void vscode.commands.executeCommand(BuiltInCommands.openSettings, `${SETTINGS_SECTION}.sandbox`);
      });
      return;
    }
    kit.showError(error, doing);
  }

  /** "Agent Lanes: Stop Sandbox Tasks": kills the running task in its container; the rest are skipped. */
  async stop(target: ChangeTarget): Promise<boolean> {
    const found = await this.deps.kit.resolveTarget(
      target,
      (c: Change) => c.sandbox?.verdict === 'running',
      'Stop the sandbox tasks of which change?',
    );
    if (!found) return false;
    const stopped = found.repo.lanes.sandbox.stop(found.change.id);
    if (!stopped) void vscode.window.showInformationMessage(`No sandbox tasks are running for change ${found.change.id}.`);
    return stopped;
  }

  /** "Agent Lanes: Show Task Log": opens the stored, redacted log of a task (or of the preparation). */
  async showTaskLog(target: TaskLogTarget): Promise<vscode.TextEditor | undefined> {
    const taskId = target && 'changeId' in target && 'taskId' in target ? target.taskId : undefined;
    const found = await this.deps.kit.resolveTarget(
      target as ChangeTarget,
      (c) => c.sandbox !== undefined,
      'Show a task log of which change?',
    );
    if (!found) return undefined;
    const { repo, change } = found;
    const read = await repo.evidence.read(change.id);
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    const logs = [
      ...(evidence?.preparation?.logFile
        ? [
            {
              id: 'prepare',
              file: evidence.preparation.logFile,
              label: 'Preparation',
              detail: `${evidence.preparation.outcome} · network ${evidence.preparation.networkMode}`,
            },
          ]
        : []),
      ...(evidence?.tasks ?? [])
        .filter((task) => task.logFile)
        .map((task) => ({
          id: task.id,
          file: task.logFile!,
          label: task.id,
          detail: `${task.outcome}${task.exitCode !== null ? ` (exit ${task.exitCode})` : ''} · ${task.command}`,
        })),
    ];
    if (logs.length === 0) {
      void vscode.window.showInformationMessage(
        `Change ${change.id} has no task log yet: run its sandbox tasks first ("Agent Lanes: Run Sandbox Tasks").`,
      );
      return undefined;
    }
    let chosen = taskId ? logs.find((log) => log.id === taskId) : logs.length === 1 ? logs[0] : undefined;
    if (taskId && !chosen) {
      void vscode.window.showErrorMessage(
        `Change ${change.id} has no log for a task "${taskId}" (it has: ${logs.map((log) => log.id).join(', ')}).`,
      );
      return undefined;
    }
    chosen ??= await vscode.window.showQuickPick(
      logs.map((log) => ({ ...log, description: log.detail })),
      { placeHolder: `Which log of change ${change.id}?` },
    );
    if (!chosen) return undefined;
    try {
      const document = await vscode.workspace.openTextDocument(vscode.Uri.file(chosen.file));
      return await vscode.window.showTextDocument(document, { preview: true });
    } catch (error) {
      this.deps.logger.warn(`Opening ${chosen.file}: ${(error as Error).message}`);
      void vscode.window.showErrorMessage(
        `The log of ${chosen.id} (change ${change.id}) is gone from ${chosen.file}; run the sandbox tasks again to get a new one.`,
      );
      return undefined;
    }
  }

  /** Sandbox containers that no open change needs, over every repository of the workspace. */
  async findOrphans(): Promise<{ repo: RepoContext; orphans: SandboxOrphan[] }[]> {
    await this.deps.registry.ensureDiscovered();
    const found: { repo: RepoContext; orphans: SandboxOrphan[] }[] = [];
    for (const repo of this.deps.registry.repositories()) {
      const lane = repo.lanes.sandbox;
      try {
        await lane.markInterrupted();
        const orphans = await lane.findOrphans(repo.store.all());
        if (orphans.length) found.push({ repo, orphans });
      } catch (error) {
        this.deps.logger.error(`Looking for leftover sandbox containers of ${repo.root}`, error);
      }
    }
    return found;
  }

  /** On the first showing of the view: offers to remove leftover containers, without waiting for the answer. */
  async checkOrphansOnce(): Promise<void> {
    if (this.orphansChecked) return;
    this.orphansChecked = true;
    const found = await this.findOrphans();
    const count = found.reduce((sum, entry) => sum + entry.orphans.length, 0);
    if (count === 0) return;
    void vscode.window
      .showWarningMessage(
        `Agent Lanes found ${counted(count, 'sandbox container')} that no open change needs (${found[0]!.orphans[0]!.reason}${count > 1 ? ', …' : ''}).`,
        'Remove Them',
      )
      .then((choice) => {
        if (choice === 'Remove Them') void this.cleanup({ confirmed: true });
      });
  }

  /** "Agent Lanes: Clean Up Sandbox Containers". */
  async cleanup(options: { confirmed?: boolean } = {}): Promise<number> {
    const found = await this.findOrphans();
    const count = found.reduce((sum, entry) => sum + entry.orphans.length, 0);
    if (count === 0) {
      void vscode.window.showInformationMessage('Agent Lanes: no leftover sandbox containers; every container belongs to an open change.');
      return 0;
    }
    if (!options.confirmed) {
      const reasons = found.flatMap((entry) =>
        entry.orphans.map((orphan) => `${orphan.container.name || orphan.container.id.slice(0, 12)}: ${orphan.reason}`),
      );
      const answer = await vscode.window.showWarningMessage(
        `Remove ${counted(count, 'sandbox container')}?`,
        { modal: true, detail: reasons.slice(0, 10).join('\n') },
        'Remove',
      );
      if (answer !== 'Remove') return 0;
    }
    let removed = 0;
    for (const { repo, orphans } of found) {
      try {
        removed += await repo.lanes.sandbox.removeOrphans(orphans, await this.deps.kit.actor(repo.root));
      } catch (error) {
        this.showError(error, `Removing leftover sandbox containers of ${repo.name}`);
      }
    }
    void vscode.window.showInformationMessage(`Agent Lanes removed ${counted(removed, 'sandbox container')}.`);
    return removed;
  }

  dispose(): void {
    this.channel?.dispose();
  }
}

/**
 * "Agent Lanes: Check the Container Engine" (a walkthrough step): which engine
 * answers, or the command that installs one on this operating system.
 */
async function checkContainerEngine(): Promise<{ ok: boolean; message: string }> {
  const detection = await detectEngine(readConfig().config.sandboxContainerEngine);
  if (detection.found) {
    const message = `Container engine ready: ${detection.engine.kind} ${detection.engine.version} (${detection.engine.path}). Sandbox tasks run there with the network off.`;
    void vscode.window.showInformationMessage(message);
    markSetupStep(ContextKeys.setupEngineReady);
    return { ok: true, message };
  }
  const help = engineInstallHelp(process.platform, parseOsRelease(await readFile('/etc/os-release', 'utf8').catch(() => '')));
  const message = `No container engine answers (${detection.tried.join('; ')}). On ${help.system}, install one with: ${help.command} — ${help.note}`;
  const copy = 'Copy Install Command';
  void vscode.window.showWarningMessage(message, copy).then((choice) => {
    if (choice === copy) void vscode.env.clipboard.writeText(help.command);
  });
  return { ok: false, message };
}

/** Registers the Sandbox lane's commands; returns the controller (for the LanesApi and other lanes). */
export function registerSandbox(context: vscode.ExtensionContext, deps: SandboxDeps): SandboxCommands {
  const sandbox = new SandboxCommands(deps);
  const register = (id: string, handler: (...args: never[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));
  register(Commands.runSandboxTasks, (target?: ChangeTarget) => sandbox.runTasks(target));
  register(Commands.stopSandboxTasks, (target?: ChangeTarget) => sandbox.stop(target));
  register(Commands.showTaskLog, (target?: TaskLogTarget) => sandbox.showTaskLog(target));
  register(Commands.checkContainerEngine, () => checkContainerEngine());
  register(Commands.cleanupSandboxes, (options?: { confirmed?: boolean }) =>
    sandbox.cleanup(options && typeof options === 'object' && !('kind' in options) ? options : {}),
  );
  // Leftover containers are looked for when the view is first shown, never during activation.
  const onVisible = () =>
    void sandbox.checkOrphansOnce().catch((error: unknown) => deps.logger.error('Looking for leftover sandbox containers failed', error));
  context.subscriptions.push(
    sandbox,
    deps.view.onDidChangeVisibility((event) => event.visible && onVisible()),
  );
  if (deps.view.visible) onVisible();
  return sandbox;
}
