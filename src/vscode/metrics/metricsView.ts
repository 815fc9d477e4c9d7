import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import { DEFAULT_INTACT_DAYS, intactVerdict, type IntactVerdict } from '../../core/metrics/intact';
import { MetricsReducer, type ChangeSummary, type GroupBy } from '../../core/metrics/metrics';
import { intactFactsOf } from '../../infra/lanes/laneContext';
import { reduceAuditFile } from '../../infra/audit/verifiedEvents';
import type { CommandKit } from '../commandKit';
import { Commands } from '../constants';
import type { RepoContext } from '../repositories';
import { metricsHtml } from './metricsHtml';
import {
  choicesOf,
  filterOf,
  linkedFigures,
  readMessage,
  type ListedChange,
  type MetricsOffer,
  type MetricsViewState,
} from './metricsState';

interface MetricsDeps {
  logger: Logger;
  kit: CommandKit;
}

/** What the view showed last: for scripts and tests. */
interface MetricsShown {
  repository: string;
  by: GroupBy;
  changes: number;
  warning?: string;
}

interface OpenPanel {
  panel: vscode.WebviewPanel;
  state: MetricsViewState;
  /** What the page was given: the host takes back only these figures, filter values and change ids. */
  offer: MetricsOffer & { listed: Set<string> };
  changes: Map<string, ChangeSummary>;
}

/**
 * "Agent Lanes: Show Promotion Metrics": the funnel, what stopped changes, rework and time in lane, from the
 * repository's audit log (verified as it is read), grouped by task class, agent or month and filtered by agent,
 * task class and period at once; each number lists the changes behind it. One panel per repository; its filters
 * last while it is open.
 */
class MetricsPanels implements vscode.Disposable {
  private readonly panels = new Map<string, OpenPanel>();

  constructor(private readonly deps: MetricsDeps) {}

  async show(target?: { repoRoot?: string; by?: GroupBy }): Promise<MetricsShown | undefined> {
    const repo = await this.deps.kit.pickRepository(target?.repoRoot, 'Promotion metrics of which repository?');
    if (!repo) return undefined;
    let open = this.panels.get(repo.root);
    if (!open) {
      const panel = vscode.window.createWebviewPanel('agentLanes.metrics', `Promotion Metrics: ${repo.name}`, vscode.ViewColumn.Active, {
        enableScripts: true,
        localResourceRoots: [],
      });
      const current: OpenPanel = {
        panel,
        state: { by: target?.by ?? 'taskClass' },
        offer: { choices: { agents: [], taskClasses: [], months: [] }, figures: new Map(), listed: new Set() },
        changes: new Map(),
      };
      open = current;
      this.panels.set(repo.root, current);
      panel.onDidDispose(() => this.panels.delete(repo.root));
      panel.webview.onDidReceiveMessage((message: unknown) =>
        this.receive(repo, current, message).catch((error: unknown) => this.deps.kit.showError(error, 'Showing the promotion metrics')),
      );
    } else {
      if (target?.by) open.state = { ...open.state, by: target.by };
      open.panel.reveal();
    }
    return this.render(repo, open);
  }

  private async receive(repo: RepoContext, open: OpenPanel, raw: unknown): Promise<void> {
    const message = readMessage(raw, open.offer);
    if ('refused' in message) {
      this.deps.logger.warn(`The promotion metrics page sent a message the view refused: ${message.refused}.`);
      return;
    }
    switch (message.type) {
      case 'refresh':
        await this.render(repo, open);
        return;
      case 'filter':
        open.state = message.state;
        await this.render(repo, open);
        return;
      case 'figure': {
        const figure = open.offer.figures.get(message.key)!;
        const changes: ListedChange[] = [];
        for (const id of figure.ids) {
          const summary = open.changes.get(id);
          if (!summary) continue;
          open.offer.listed.add(id);
          changes.push({ ...summary, title: repo.store.get(id)?.title ?? '' });
        }
        await open.panel.webview.postMessage({ type: 'list', key: message.key, caption: figure.caption, changes });
        return;
      }
      case 'open': {
        const change = repo.store.get(message.changeId);
        if (!change) {
          void vscode.window.showInformationMessage(
            `Change ${message.changeId} is no longer in this repository's change store; its figures come from the audit log (agent-lanes audit export shows its events).`,
          );
          return;
        }
        const target = { repoRoot: repo.root, changeId: change.id };
        // As the Lanes view's row: the review in Review, the diff in the other open lanes; a closed change has its History.
        const command =
          message.how === 'history' || change.lane === 'closed'
            ? Commands.showHistory
            : change.lane === 'review'
              ? Commands.openReview
              : Commands.openChanges;
        await vscode.commands.executeCommand(command, target);
        return;
      }
    }
  }

  private async render(repo: RepoContext, open: OpenPanel): Promise<MetricsShown> {
    const audit = repo.lanes.context.audit;
    await audit.flush();
    // One repository's log: keeping each change's id (for the lists behind the numbers) is small here.
    const reducer = new MetricsReducer({ keepChanges: true, keepMerges: true });
    const warning = await reduceAuditFile(repo.lanes.context.storage.auditFile, reducer).catch((error: Error) =>
      error.message.includes('ENOENT') ? undefined : `The audit log could not be read: ${error.message}`,
    );
    const choices = choicesOf(reducer);
    const intact = await this.intactVerdicts(repo, reducer);
    const report = reducer.report(open.state.by, filterOf(open.state, Date.now()), intact);
    open.offer = { choices, figures: linkedFigures(report), listed: new Set() };
    open.changes = new Map((report.changes ?? []).map((change) => [change.id, change]));
    open.panel.webview.html = metricsHtml({
      report,
      repository: repo.name,
      state: open.state,
      choices,
      ...(warning ? { warning } : {}),
      nonce: randomBytes(16).toString('base64'),
    });
    return {
      repository: repo.name,
      by: open.state.by,
      changes: report.groups.reduce((sum, group) => sum + group.changes, 0),
      ...(warning ? { warning } : {}),
    };
  }

  /** What git says of each merged change (reverted or rewritten within 30 days); none when git cannot tell, logged. */
  private async intactVerdicts(repo: RepoContext, reducer: MetricsReducer): Promise<((row: number) => IntactVerdict) | undefined> {
    const merged = reducer.mergedChanges();
    if (!merged.length) return undefined;
    try {
      const answers = await intactFactsOf(repo.lanes.context).answers(
        merged.flatMap((change) =>
          change.mergeCommitSha ? [{ mergeCommitSha: change.mergeCommitSha, ...(change.baseRef ? { baseRef: change.baseRef } : {}) }] : [],
        ),
      );
      const verdicts = new Map(
        merged.map((change) => [
          change.row,
          intactVerdict(change.mergeCommitSha ? answers.get(change.mergeCommitSha.toLowerCase()) : undefined, DEFAULT_INTACT_DAYS).verdict,
        ]),
      );
      return (row) => verdicts.get(row) ?? 'notMeasurable';
    } catch (error) {
      this.deps.logger.warn(`Promotion metrics: git could not tell which merged changes stood (${(error as Error).message}).`);
      return undefined;
    }
  }

  dispose(): void {
    for (const { panel } of this.panels.values()) panel.dispose();
    this.panels.clear();
  }
}

export function registerMetrics(context: vscode.ExtensionContext, deps: MetricsDeps): void {
  const panels = new MetricsPanels(deps);
  context.subscriptions.push(
    panels,
    vscode.commands.registerCommand(Commands.showPromotionMetrics, (target?: { repoRoot?: string; by?: GroupBy }) =>
      panels.show(target && typeof target === 'object' ? target : undefined).catch((error: unknown) => {
        deps.kit.showError(error, 'Showing the promotion metrics');
        return undefined;
      }),
    ),
  );
}
