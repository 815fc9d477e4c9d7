import type { GroupBy, MetricsReport, Summary } from '../../core/metrics/metrics';

/** The promotion metrics as one page: SVG charts drawn here (no chart library), themed with VS Code's colours. */

const STAGE_WORDS: Record<string, string> = {
  drafted: 'Drafted',
  sandboxPassed: 'Sandbox passed',
  approved: 'Approved',
  prOpened: 'PR opened',
  merged: 'Merged',
};
const BY_WORDS: Record<GroupBy, string> = { taskClass: 'Task class', agent: 'Agent', period: 'Month', repository: 'Repository' };
/** The groupings the view offers (a view is one repository's log). */
export const VIEW_GROUPINGS: readonly GroupBy[] = ['taskClass', 'agent', 'period'];

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const percent = (share: number | undefined): string => (share === undefined ? '–' : `${Math.round(share * 100)}%`);
const hours = (summary: Summary): string =>
  summary.median === undefined ? '–' : summary.median < 1 ? `${Math.round(summary.median * 60)} min` : `${summary.median.toFixed(1)} h`;

export interface MetricsPage {
  report: MetricsReport;
  /** The repository the log belongs to, shown in the title. */
  repository: string;
  /** A warning when the log failed verification (metrics cover the part before the break). */
  warning?: string;
  nonce: string;
}

/** Horizontal bars: one per row, the value's share of the largest, its number and a note beside it. */
function bars(rows: { label: string; value: number; note?: string }[], kind: string): string {
  const max = Math.max(1, ...rows.map((row) => row.value));
  const rowHeight = 22;
  const labelWidth = 120;
  const barWidth = 200;
  const height = rows.length * rowHeight + 4;
  const body = rows
    .map((row, index) => {
      const y = index * rowHeight + 2;
      const width = Math.max(row.value > 0 ? 2 : 0, Math.round((row.value / max) * barWidth));
      return [
        `<text class="label" x="${labelWidth - 8}" y="${y + 15}" text-anchor="end">${escape(row.label)}</text>`,
        `<rect class="bar ${kind}" x="${labelWidth}" y="${y + 3}" width="${width}" height="${rowHeight - 8}" rx="2"></rect>`,
        `<text class="value" x="${labelWidth + width + 6}" y="${y + 15}">${row.value}${row.note ? ` · ${escape(row.note)}` : ''}</text>`,
      ].join('');
    })
    .join('');
  const width = labelWidth + barWidth + 170;
  return `<svg role="img" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body}</svg>`;
}

function group(report: MetricsReport['groups'][number]): string {
  const funnel = bars(
    report.funnel.map((figure) => ({
      label: STAGE_WORDS[figure.stage] ?? figure.stage,
      value: figure.count,
      note: figure.firstPassRate === undefined ? '' : `${percent(figure.firstPassRate)} first pass`,
    })),
    'funnel',
  );
  const reasons = report.reasons.slice(0, 6);
  const blocks = reasons.length
    ? bars(
        reasons.map((reason) => ({ label: reason.rule, value: reason.count, note: `${reason.effect}, ${reason.changes} changes` })),
        'reason',
      )
    : '<p class="muted">No gate stopped these changes.</p>';
  const rework = report.rework;
  const lanes = Object.entries(report.laneHours)
    .map(([lane, summary]) => `<td>${escape(lane)}</td><td class="num">${hours(summary)}</td><td class="num">${summary.count}</td>`)
    .map((cells) => `<tr>${cells}</tr>`)
    .join('');
  return `<section class="group">
  <h2>${escape(report.key)} <span class="muted">${report.changes} change${report.changes === 1 ? '' : 's'}</span></h2>
  <div class="grid">
    <div><h3>Funnel</h3>${funnel}</div>
    <div><h3>Stopped by</h3>${blocks}</div>
    <div><h3>Rework</h3><table>
      <tr><td>Review rounds that asked for changes</td><td class="num">${rework.requestedChangesRounds}</td></tr>
      <tr><td>Changes sent back at least once</td><td class="num">${rework.changesWithRequestedChanges}</td></tr>
      <tr><td>Agent re-runs</td><td class="num">${rework.agentReruns}</td></tr>
      <tr><td>Edits after approval</td><td class="num">${rework.editsAfterApproval}</td></tr>
      <tr><td>Pull request size (median lines, files)</td><td class="num">${report.prLines.median ?? '–'}, ${report.prFiles.median ?? '–'}</td></tr>
    </table></div>
    <div><h3>Time in lane <span class="muted">(median, stays)</span></h3><table>${lanes}</table></div>
  </div>
</section>`;
}

export function metricsHtml(page: MetricsPage): string {
  const { report } = page;
  const options = VIEW_GROUPINGS.map((by) => `<option value="${by}"${by === report.by ? ' selected' : ''}>${BY_WORDS[by]}</option>`).join(
    '',
  );
  const body = report.groups.length
    ? report.groups.map(group).join('')
    : '<p class="muted">No change has been drafted in this repository yet. Run "Agent Lanes: New Draft…"; its figures appear here.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${page.nonce}'; script-src 'nonce-${page.nonce}';">
<meta name="agent-lanes-metrics" content="${escape(page.repository)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="${page.nonce}">
  body { color: var(--vscode-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 20px 20px; }
  h1 { font-size: 1.4em; font-weight: 600; } h2 { font-size: 1.15em; border-bottom: 1px solid var(--vscode-panel-border); padding-bottom: 4px; }
  h3 { font-size: 1em; font-weight: 600; margin: 8px 0; }
  .muted { color: var(--vscode-descriptionForeground); font-weight: normal; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(500px, 1fr)); gap: 8px 24px; }
  .grid > div { min-width: 0; overflow-x: auto; }
  .chart text { fill: var(--vscode-foreground); font-size: 12px; }
  .chart .value { fill: var(--vscode-descriptionForeground); }
  .bar.funnel { fill: var(--vscode-charts-blue); } .bar.reason { fill: var(--vscode-charts-orange); }
  table { border-collapse: collapse; } td { padding: 2px 12px 2px 0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .warning { background: var(--vscode-inputValidation-warningBackground); border: 1px solid var(--vscode-inputValidation-warningBorder); padding: 6px 10px; }
  select, button { color: var(--vscode-dropdown-foreground); background: var(--vscode-dropdown-background); border: 1px solid var(--vscode-dropdown-border); padding: 2px 6px; }
  button { color: var(--vscode-button-foreground); background: var(--vscode-button-background); border: none; }
</style></head>
<body>
<h1>Promotion metrics <span class="muted">${escape(page.repository)} · ${report.events} audit events</span></h1>
${page.warning ? `<p class="warning" role="alert">${escape(page.warning)}</p>` : ''}
<p><label>Group by <select id="by">${options}</select></label> <button id="refresh">Refresh</button>
<span class="muted">From this repository's audit log; for many logs: <code>npx agent-lanes metrics</code>.</span></p>
${body}
<script nonce="${page.nonce}">
  const vscode = acquireVsCodeApi();
  document.getElementById('by').addEventListener('change', (event) => vscode.postMessage({ type: 'groupBy', by: event.target.value }));
  document.getElementById('refresh').addEventListener('click', () => vscode.postMessage({ type: 'refresh' }));
</script>
</body></html>`;
}
