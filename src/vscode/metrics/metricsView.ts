import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import { MetricsReducer, type GroupBy } from '../../core/metrics/metrics';
import { reduceAuditFile } from '../../infra/audit/verifiedEvents';
import type { CommandKit } from '../commandKit';
import { Commands } from '../constants';
import type { RepoContext } from '../repositories';
import { VIEW_GROUPINGS, metricsHtml } from './metricsHtml';

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

/**
 * "Agent Lanes: Show Promotion Metrics": the funnel, what stopped changes, rework and time in lane, from the
 * repository's audit log (verified as it is read), grouped by task class, agent or month. One panel per repository.
 */
class MetricsPanels implements vscode.Disposable {
  private readonly panels = new Map<string, { panel: vscode.WebviewPanel; by: GroupBy }>();

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
      open = { panel, by: target?.by ?? 'taskClass' };
      this.panels.set(repo.root, open);
      const current = open;
      panel.onDidDispose(() => this.panels.delete(repo.root));
      panel.webview.onDidReceiveMessage((message: { type?: unknown; by?: unknown }) => {
        if (message?.type === 'groupBy' && VIEW_GROUPINGS.includes(message.by as GroupBy)) current.by = message.by as GroupBy;
        if (message?.type === 'groupBy' || message?.type === 'refresh')
          void this.render(repo, current).catch((error: unknown) => this.deps.logger.error('Showing the promotion metrics', error));
      });
    } else {
      if (target?.by) open.by = target.by;
      open.panel.reveal();
    }
    return this.render(repo, open);
  }

  private async render(repo: RepoContext, open: { panel: vscode.WebviewPanel; by: GroupBy }): Promise<MetricsShown> {
    const audit = repo.lanes.context.audit;
    await audit.flush();
    const reducer = new MetricsReducer();
    const warning = await reduceAuditFile(repo.lanes.context.storage.auditFile, reducer).catch((error: Error) =>
      error.message.includes('ENOENT') ? undefined : `The audit log could not be read: ${error.message}`,
    );
    const report = reducer.report(open.by);
    open.panel.webview.html = metricsHtml({
      report,
      repository: repo.name,
      ...(warning ? { warning } : {}),
      nonce: randomBytes(16).toString('base64'),
    });
    return {
      repository: repo.name,
      by: open.by,
      changes: report.groups.reduce((sum, group) => sum + group.changes, 0),
      ...(warning ? { warning } : {}),
    };
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
