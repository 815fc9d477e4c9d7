import * as vscode from 'vscode';
import { type Change, LANE_LABELS, LANES, type Lane, formatAge } from '../core/change';
import type { AgentIsolationBackend } from '../core/draft/agentIsolation';
import type { Logger } from '../core/logger';
import { describeSandboxVerdict } from '../infra/lanes/sandbox/sandboxLane';
import { type ChangeWhy, changeDescription, changeState, changeWhy, releaseGlance } from '../core/changeGlance';
import type { ReviewGlance } from '../core/review/reviewModel';
import { hasValidApproval, pullRequestGlance } from '../core/pullRequest/glance';
import { Commands, ContextKeys, type ViewState } from './constants';
import type { FolderProblem, RepoContext, RepositoryRegistry } from './repositories';

export type LanesNode =
  | { kind: 'repo'; repo: RepoContext }
  | { kind: 'lane'; repo: RepoContext; lane: Lane | 'closed'; changes: Change[] }
  | { kind: 'change'; repo: RepoContext; change: Change }
  /** Under a blocked or failed change: why, in full (a row's description is cut at the view's default width). */
  | { kind: 'why'; repo: RepoContext; change: Change; why: ChangeWhy }
  | { kind: 'problem'; problem: FolderProblem }
  | { kind: 'loadError'; repo: RepoContext }
  /** Change records that could not be read (corrupt or hand-edited files): the other changes show. */
  | { kind: 'unreadable'; repo: RepoContext };

const LANE_ICONS: Record<Lane | 'closed', string> = {
  draft: 'edit',
  sandbox: 'beaker',
  review: 'eye',
  pullRequest: 'git-pull-request',
  release: 'rocket',
  closed: 'archive',
};

/**
 * The Lanes view: lanes as groups with counts, each change under its lane.
 * With several repositories, each repository is a group of its own.
 */
export class LanesTreeProvider implements vscode.TreeDataProvider<LanesNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<LanesNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private viewState: ViewState = 'loading';
  private laneContext: string | undefined;
  private readonly subscription: { dispose(): void };
  private ageTimer: NodeJS.Timeout | undefined;
  private reviewGlance: ((repo: RepoContext, change: Change) => ReviewGlance | undefined) | undefined;

  constructor(
    private readonly registry: RepositoryRegistry,
    private readonly logger: Logger,
  ) {
    this.subscription = registry.onDidChange(() => this.refresh());
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  /** The review's verdict at a glance for changes in Review (ready, approved, blocked…). */
  setReviewGlance(glance: (repo: RepoContext, change: Change) => ReviewGlance | undefined): void {
    this.reviewGlance = glance;
    this.refresh();
  }

  /** Keeps the "age" descriptions fresh while the view is visible. */
  setVisible(visible: boolean): void {
    if (visible && !this.ageTimer) this.ageTimer = setInterval(() => this.refresh(), 60_000);
    if (!visible && this.ageTimer) {
      clearInterval(this.ageTimer);
      this.ageTimer = undefined;
    }
  }

  /** Why a change cannot move on: its own record, or in Review the gate's verdict (the review glance). */
  private whyOf(repo: RepoContext, change: Change): ChangeWhy | undefined {
    return changeWhy(change, {
      sandboxVerdict: describeSandboxVerdict(change.sandbox),
      reviewGlance: change.lane === 'review' ? this.reviewGlance?.(repo, change) : undefined,
    });
  }

  get state(): ViewState {
    return this.viewState;
  }

  async getChildren(node?: LanesNode): Promise<LanesNode[]> {
    try {
      if (!node) return await this.rootNodes();
      if (node.kind === 'repo') return this.repoChildren(node.repo);
      if (node.kind === 'lane') return node.changes.map((change) => ({ kind: 'change', repo: node.repo, change }));
      if (node.kind === 'change') {
        const why = this.whyOf(node.repo, node.change);
        return why ? [{ kind: 'why', repo: node.repo, change: node.change, why }] : [];
      }
      return [];
    } catch (error) {
      this.logger.error('The Lanes view could not be built', error);
      await this.setViewState('error');
      void vscode.window.showErrorMessage(
        `Agent Lanes could not show the lanes: ${(error as Error).message}. See "Agent Lanes: Show Log".`,
      );
      return [];
    }
  }

  private async rootNodes(): Promise<LanesNode[]> {
    if (!vscode.workspace.workspaceFolders?.length) {
      await this.setViewState('noFolder');
      return [];
    }
    await this.registry.ensureDiscovered();
    const repos = this.registry.repositories();
    const problems = this.registry.folderProblems();
    await vscode.commands.executeCommand('setContext', ContextKeys.multiRepository, repos.length > 1);
    if (repos.length === 0) {
      const allBare = problems.length > 0 && problems.every((p) => p.kind === 'bare');
      await this.setViewState(allBare ? 'bareRepository' : 'noRepository');
      return problems.length > 1 ? problems.map((problem) => ({ kind: 'problem', problem })) : [];
    }
    await this.setLaneContext(repos.flatMap((repo) => repo.store.all()));
    const anyChanges = repos.some((repo) => repo.store.all().length > 0 || repo.loadError || repo.store.unreadable.length > 0);
    if (!anyChanges && problems.length === 0) {
      await this.setViewState('empty');
      return [];
    }
    await this.setViewState('ready');
    const problemNodes: LanesNode[] = problems.map((problem) => ({ kind: 'problem', problem }));
    if (repos.length === 1 && problems.length === 0) return this.repoChildren(repos[0]!);
    return [...repos.map((repo): LanesNode => ({ kind: 'repo', repo })), ...problemNodes];
  }

  private repoChildren(repo: RepoContext): LanesNode[] {
    if (repo.loadError) return [{ kind: 'loadError', repo }];
    const all = repo.store.all();
    // Release shows only where it can hold something: policy lists production actions, or a change is in it.
    const releasing = this.registry.policyService.effective.policy.actions.length > 0 || all.some((c) => c.lane === 'release');
    const nodes: LanesNode[] = LANES.filter((lane) => lane !== 'release' || releasing).map((lane) => ({
      kind: 'lane',
      repo,
      lane,
      changes: all.filter((c) => c.lane === lane),
    }));
    const closed = all.filter((c) => c.lane === 'closed');
    if (closed.length) nodes.push({ kind: 'lane', repo, lane: 'closed', changes: closed });
    if (repo.store.unreadable.length) nodes.push({ kind: 'unreadable', repo });
    return nodes;
  }

  getTreeItem(node: LanesNode): vscode.TreeItem {
    switch (node.kind) {
      case 'repo': {
        const item = new vscode.TreeItem(node.repo.name, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `repo:${node.repo.root}`;
        const open = node.repo.store.all().filter((c) => c.lane !== 'closed').length;
        item.description = `${open} open`;
        item.tooltip = node.repo.root;
        item.iconPath = new vscode.ThemeIcon('repo');
        item.contextValue = 'repository';
        return item;
      }
      case 'lane': {
        const label = node.lane === 'closed' ? 'Closed' : LANE_LABELS[node.lane];
        const state =
          node.changes.length === 0
            ? vscode.TreeItemCollapsibleState.None
            : node.lane === 'closed'
              ? vscode.TreeItemCollapsibleState.Collapsed
              : vscode.TreeItemCollapsibleState.Expanded;
        const item = new vscode.TreeItem(label, state);
        // An empty lane cannot be expanded; a new id when it fills makes VS Code show it expanded.
        item.id = `lane:${node.repo.root}:${node.lane}:${node.changes.length ? 'filled' : 'empty'}`;
        item.description = String(node.changes.length);
        item.tooltip = `${label}: ${node.changes.length} change${node.changes.length === 1 ? '' : 's'}`;
        item.iconPath = new vscode.ThemeIcon(LANE_ICONS[node.lane]);
        item.contextValue = `lane.${node.lane}`;
        return item;
      }
      case 'change': {
        const item = changeItem(node.repo, node.change, this.whyOf(node.repo, node.change));
        const glance = node.change.lane === 'review' ? this.reviewGlance?.(node.repo, node.change) : undefined;
        if (glance) item.description = `${glance.text} · ${String(item.description)}`;
        return item;
      }
      case 'why': {
        const item = new vscode.TreeItem(node.why.text, vscode.TreeItemCollapsibleState.None);
        item.id = `why:${node.repo.root}:${node.change.id}`;
        item.tooltip = node.why.text;
        item.iconPath = new vscode.ThemeIcon(
          node.why.kind === 'failed' ? 'error' : 'circle-slash',
          new vscode.ThemeColor('list.warningForeground'),
        );
        item.contextValue = 'why';
        const target = { repoRoot: node.repo.root, changeId: node.change.id };
        item.command =
          node.why.kind === 'blocked'
            ? { command: Commands.explainDecision, title: 'Explain Decision', arguments: [target] }
            : node.why.kind === 'review'
              ? { command: Commands.openReview, title: 'Open Review', arguments: [target] }
              : { command: Commands.showTaskLog, title: 'Show Task Log', arguments: [target] };
        return item;
      }
      case 'problem': {
        const item = new vscode.TreeItem(node.problem.folder.name, vscode.TreeItemCollapsibleState.None);
        item.description =
          node.problem.kind === 'bare' ? 'bare repository' : node.problem.kind === 'notRepository' ? 'not a git repository' : 'unavailable';
        item.tooltip = node.problem.message;
        item.iconPath = new vscode.ThemeIcon('warning');
        item.contextValue = 'folderProblem';
        return item;
      }
      case 'loadError': {
        const item = new vscode.TreeItem('Change records could not be read', vscode.TreeItemCollapsibleState.None);
        item.tooltip = `${node.repo.loadError}\n${node.repo.storage.changesDir}`;
        item.iconPath = new vscode.ThemeIcon('error');
        item.contextValue = 'loadError';
        return item;
      }
      case 'unreadable': {
        const unreadable = node.repo.store.unreadable;
        const label =
          unreadable.length === 1 ? '1 change record could not be read' : `${unreadable.length} change records could not be read`;
        const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.None);
        item.tooltip = unreadable.map((record) => record.message).join('\n\n');
        item.iconPath = new vscode.ThemeIcon('error');
        item.contextValue = 'unreadableChanges';
        return item;
      }
    }
  }

  /** The palette shows a lane's commands only where a change could take them (package.json menus.commandPalette). */
  private async setLaneContext(changes: readonly Change[]): Promise<void> {
    const present = new Set<string>();
    // Any change, closed ones too, has a review to open (read-only outside Review).
    if (changes.length) present.add('anyChange');
    for (const change of changes) {
      if (change.lane !== 'closed') present.add(change.lane);
      if (change.lane === 'review' && hasValidApproval(change)) present.add('approved');
      if (change.agentRun?.state === 'running') present.add('agentRunning');
    }
    if (changes.some((change) => change.sandbox?.verdict === 'running')) present.add('sandboxRunning');
    const value = [...present].sort();
    if (this.laneContext === value.join(',')) return;
    this.laneContext = value.join(',');
    await vscode.commands.executeCommand('setContext', ContextKeys.changesIn, value);
    await vscode.commands.executeCommand('setContext', ContextKeys.lanesKnown, true);
  }

  private async setViewState(state: ViewState): Promise<void> {
    if (this.viewState === state) return;
    this.viewState = state;
    await vscode.commands.executeCommand('setContext', ContextKeys.viewState, state);
  }

  dispose(): void {
    this.setVisible(false);
    this.subscription.dispose();
    this.changed.dispose();
  }
}

/** How the agent was confined, in the tooltip: the reviewer's first question about an agent's run. */
const BOUNDARY_WORDS: Record<AgentIsolationBackend, string> = {
  container: 'container',
  process: 'process sandbox (bubblewrap)',
  host: 'none, the agent ran on the host (policy allowed it)',
};

/** A code span shows its text as written (no Markdown escapes inside); backticks in it would end it, so they go. */
function codeSpan(text: string): string {
  return `\`${text.replace(/`/g, "'")}\``;
}

function changeItem(repo: RepoContext, change: Change, why: ChangeWhy | undefined): vscode.TreeItem {
  const item = new vscode.TreeItem(change.title, why ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
  // A new id when the why row comes or goes: VS Code keeps an id's collapsed state, and shows a new one expanded.
  item.id = `change:${repo.root}:${change.id}${why ? ':why' : ''}`;
  const running = change.agentRun?.state === 'running';
  // Pull request lane: the pull request at a glance ("#12 · open · checks passing"); Sandbox: the last run's verdict.
  const glance =
    change.lane === 'pullRequest'
      ? pullRequestGlance(change)
      : change.lane === 'sandbox'
        ? describeSandboxVerdict(change.sandbox)
        : change.lane === 'release'
          ? releaseGlance(change)
          : undefined;
  item.description = changeDescription({ state: changeState(change), glance, agentId: change.agentId, age: formatAge(change.createdAt) });
  const tooltip = new vscode.MarkdownString(undefined, true);
  tooltip.appendMarkdown(`**${escapeMarkdown(change.title)}**\n\n`);
  tooltip.appendMarkdown(
    `$(${LANE_ICONS[change.lane]}) ${change.lane === 'closed' ? `Closed (${change.closedReason ?? 'closed'})` : LANE_LABELS[change.lane]} · change \`${change.id}\`\n\n`,
  );
  for (const alert of change.alerts ?? []) tooltip.appendMarkdown(`$(warning) **${escapeMarkdown(alert)}**\n\n`);
  tooltip.appendMarkdown(`Agent: ${escapeMarkdown(change.agentId)}  \n`);
  tooltip.appendMarkdown(`Base: ${codeSpan(change.baseRef)} (${change.baseSha.slice(0, 10)})  \n`);
  tooltip.appendMarkdown(`Branch: ${codeSpan(change.branch)}  \n`);
  tooltip.appendMarkdown(`Created: ${new Date(change.createdAt).toLocaleString()}`);
  if (change.agentRun)
    tooltip.appendMarkdown(
      `  \nAgent run: ${change.agentRun.state}${change.agentRun.message ? ` — ${escapeMarkdown(change.agentRun.message)}` : ''}`,
    );
  const boundary = change.agentRun?.boundary;
  if (boundary)
    tooltip.appendMarkdown(
      `  \nAgent boundary: ${BOUNDARY_WORDS[boundary.backend]}${boundary.engine ? ` (${escapeMarkdown(boundary.engine)})` : ''}`,
    );
  if (change.lastDecision) {
    const d = change.lastDecision;
    tooltip.appendMarkdown(`\n\nPolicy (${escapeMarkdown(d.action)}): **${d.effect}** — ${escapeMarkdown(d.explanation)}`);
  }
  if (change.pullRequest)
    tooltip.appendMarkdown(
      `\n\nPull request: [${escapeMarkdown(change.pullRequest.repository)}#${change.pullRequest.number}](${change.pullRequest.url}) · ${escapeMarkdown(pullRequestGlance(change) ?? '')}`,
    );
  if (change.sandbox && change.lane !== 'closed')
    tooltip.appendMarkdown(
      `\n\nSandbox: **${escapeMarkdown(describeSandboxVerdict(change.sandbox) ?? '')}**${change.sandbox.message ? ` — ${escapeMarkdown(change.sandbox.message)}` : ''}`,
    );
  const last = change.history.at(-1);
  if (last?.reason) tooltip.appendMarkdown(`\n\nLast move: ${escapeMarkdown(last.reason)}`);
  item.tooltip = tooltip;
  item.iconPath = running
    ? new vscode.ThemeIcon('sync~spin')
    : change.alerts?.length || change.lastDecision?.effect === 'block'
      ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'))
      : new vscode.ThemeIcon('git-commit');
  item.contextValue = `change.${change.lane}${change.lane === 'review' && hasValidApproval(change) ? '.approved' : ''}${running ? '.running' : ''}${change.release?.needsRollback ? '.needsRollback' : ''}`;
  // A change its last gate blocked is not offered Promote or Run Sandbox Tasks again (the reason is in its row).
  if ((change.lane === 'draft' || change.lane === 'sandbox') && change.lastDecision?.effect === 'block') item.contextValue += '.blocked';
  // Sandbox lane: a run in progress spins and can be stopped; a failed run warns.
  if (change.lane === 'sandbox' && change.sandbox?.verdict === 'running') {
    item.contextValue += '.sandboxRunning';
    item.iconPath = new vscode.ThemeIcon('sync~spin');
  } else if (change.lane === 'sandbox' && (change.sandbox?.verdict === 'failed' || change.sandbox?.verdict === 'error')) {
    item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground'));
  }
  // A click opens what the lane is about: the review in Review, the diff elsewhere.
  item.command =
    change.lane === 'review'
      ? { command: Commands.openReview, title: 'Open Review', arguments: [{ repoRoot: repo.root, changeId: change.id }] }
      : { command: Commands.openChanges, title: 'Open Changes', arguments: [{ repoRoot: repo.root, changeId: change.id }] };
  return item;
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
