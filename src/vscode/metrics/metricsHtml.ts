import { DEFAULT_INTACT_DAYS, INTACT_VERDICTS, type IntactFigure } from '../../core/metrics/intact';
import type { GroupBy, MetricsReport, Summary } from '../../core/metrics/metrics';
import {
  INTACT_WORDS,
  RECENT_PERIODS,
  STAGE_WORDS,
  VIEW_GROUPINGS,
  figureKeys,
  type MetricsChoices,
  type MetricsViewState,
} from './metricsState';

/**
 * The promotion metrics as one page: SVG bars drawn here (no chart library), themed with VS Code's colours. Every
 * number with changes behind it is a button; the page asks the host for their list and draws it with textContent.
 */

const BY_WORDS: Record<GroupBy, string> = { taskClass: 'Task class', agent: 'Agent', period: 'Month', repository: 'Repository' };
const PERIOD_WORDS: Record<string, string> = { last7: 'Last 7 days', last30: 'Last 30 days', last90: 'Last 90 days' };

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const percent = (share: number | undefined): string => (share === undefined ? '–' : `${Math.round(share * 100)}%`);
const hours = (summary: Summary): string =>
  summary.median === undefined ? '–' : summary.median < 1 ? `${Math.round(summary.median * 60)} min` : `${summary.median.toFixed(1)} h`;

export interface MetricsPage {
  report: MetricsReport;
  /** The repository the log belongs to, shown in the title. */
  repository: string;
  /** The grouping and filters shown, and the values the filters offer. */
  state: MetricsViewState;
  choices: MetricsChoices;
  /** A warning when the log failed verification (metrics cover the part before the break). */
  warning?: string;
  nonce: string;
}

/** A number that opens the list of the changes behind it, or plain text when there are none to list. */
function figure(text: string, key: string, ids: string[] | undefined, label: string): string {
  if (!ids?.length) return escape(text);
  return `<button class="figure" data-figure="${escape(key)}" title="${escape(label)}" aria-label="${escape(`${text}: ${label}`)}">${escape(text)}</button>`;
}

/** Horizontal bars: one row each, the value's share of the largest as an SVG bar, its number (a link) and a note. */
function bars(rows: { label: string; value: number; valueHtml: string; noteHtml?: string }[], kind: string): string {
  const max = Math.max(1, ...rows.map((row) => row.value));
  const barWidth = 200;
  const body = rows
    .map((row) => {
      const width = Math.max(row.value > 0 ? 2 : 0, Math.round((row.value / max) * barWidth));
      return `<tr><th scope="row">${escape(row.label)}</th><td class="track"><svg width="${barWidth}" height="14" viewBox="0 0 ${barWidth} 14" aria-hidden="true"><rect class="bar ${kind}" x="0" y="1" width="${width}" height="12" rx="2"></rect></svg></td><td class="value">${row.valueHtml}${row.noteHtml ? ` <span class="muted">·</span> ${row.noteHtml}` : ''}</td></tr>`;
    })
    .join('');
  return `<table class="chart ${kind}">${body}</table>`;
}

function select(id: string, label: string, all: string, values: { value: string; words: string }[], selected: string | undefined): string {
  const options = values
    .map(({ value, words }) => `<option value="${escape(value)}"${value === selected ? ' selected' : ''}>${escape(words)}</option>`)
    .join('');
  return `<label>${label} <select id="${id}">${all ? `<option value="">${all}</option>` : ''}${options}</select></label>`;
}

function group(report: MetricsReport['groups'][number], g: number): string {
  const funnel = bars(
    report.funnel.map((stage) => {
      const words = STAGE_WORDS[stage.stage] ?? stage.stage;
      const first = stage.firstPassIds?.length ?? 0;
      return {
        label: words,
        value: stage.count,
        valueHtml: figure(String(stage.count), figureKeys.stage(g, stage.stage), stage.changeIds, `the changes ${words.toLowerCase()}`),
        ...(stage.firstPassRate === undefined
          ? {}
          : {
              noteHtml: `${figure(`${percent(stage.firstPassRate)} first pass`, figureKeys.firstPass(g, stage.stage), stage.firstPassIds, `the ${first} ${first === 1 ? 'change' : 'changes'} ${words.toLowerCase()} on first pass`)}`,
            }),
      };
    }),
    'funnel',
  );
  const reasons = report.reasons.slice(0, 6);
  const blocks = reasons.length
    ? bars(
        reasons.map((reason, index) => ({
          label: reason.rule,
          value: reason.count,
          valueHtml: figure(String(reason.count), figureKeys.reason(g, index), reason.changeIds, `the changes ${reason.rule} stopped`),
          noteHtml: escape(`${reason.effect}, ${reason.changes} change${reason.changes === 1 ? '' : 's'}`),
        })),
        'reason',
      )
    : '<p class="muted">No gate stopped these changes.</p>';
  const rework = report.rework;
  const reworkIds = rework.changeIds;
  const reworkRow = (words: string, value: number, key: ReturnType<typeof figureKeys.rework>, ids: string[] | undefined) =>
    `<tr><td>${words}</td><td class="num">${figure(String(value), key, ids, `the changes behind: ${words.toLowerCase()}`)}</td></tr>`;
  const lanes = Object.entries(report.laneHours)
    .map(([lane, summary]) => `<td>${escape(lane)}</td><td class="num">${hours(summary)}</td><td class="num">${summary.count}</td>`)
    .map((cells) => `<tr>${cells}</tr>`)
    .join('');
  const count = `${report.changes} change${report.changes === 1 ? '' : 's'}`;
  return `<section class="group">
  <h2>${escape(report.key)} <span class="muted">${figure(count, figureKeys.changes(g), report.changeIds, `all changes of ${report.key}`)}</span></h2>
  <div class="grid">
    <div><h3>Funnel</h3>${funnel}</div>
    <div><h3>Stopped by</h3>${blocks}</div>
    <div><h3>Rework</h3><table>
      ${reworkRow('Review rounds that asked for changes', rework.requestedChangesRounds, figureKeys.rework(g, 'requestedChanges'), reworkIds?.requestedChanges)}
      ${reworkRow('Changes sent back at least once', rework.changesWithRequestedChanges, figureKeys.rework(g, 'requestedChanges'), reworkIds?.requestedChanges)}
      ${reworkRow('Agent re-runs', rework.agentReruns, figureKeys.rework(g, 'agentReruns'), reworkIds?.agentReruns)}
      ${reworkRow('Edits after approval', rework.editsAfterApproval, figureKeys.rework(g, 'editsAfterApproval'), reworkIds?.editsAfterApproval)}
      <tr><td>Pull request size (median lines, files)</td><td class="num">${report.prLines.median ?? '–'}, ${report.prFiles.median ?? '–'}</td></tr>
    </table></div>
    <div><h3>Time in lane <span class="muted">(median, stays)</span></h3><table>${lanes}</table></div>
    <div><h3>Stayed merged <span class="muted">(${DEFAULT_INTACT_DAYS} days, from git)</span></h3>${stayedMerged(report.intact, report.funnel.find((stage) => stage.stage === 'merged')?.count ?? 0, g)}</div>
  </div>
</section>`;
}

/** The intact figures of a group's merged changes: how many stood, were reverted or mostly rewritten within the window. */
function stayedMerged(intact: IntactFigure | undefined, merged: number, g: number): string {
  if (!intact && merged) return '<p class="muted">Git could not tell which merged changes stood; the Agent Lanes log says why.</p>';
  if (!intact?.merged) return '<p class="muted">No merged change yet.</p>';
  const rate = intact.rate === undefined ? 'no window has closed yet' : `${percent(intact.rate)} intact of ${intact.measured} measured`;
  const rows = INTACT_VERDICTS.map((verdict) => ({
    label: INTACT_WORDS[verdict],
    value: intact[verdict],
    valueHtml: figure(
      String(intact[verdict]),
      figureKeys.intact(g, verdict),
      intact.changeIds?.[verdict],
      `the merged changes git finds ${INTACT_WORDS[verdict].toLowerCase()}`,
    ),
  }));
  return `<p>${escape(rate)}</p>${bars(rows, 'intact')}`;
}

/** The page's script: filters and Refresh post to the host; a number asks for its changes, a listed change opens. */
const SCRIPT = `
  const vscode = acquireVsCodeApi();
  const value = (id) => document.getElementById(id).value;
  const filter = () => vscode.postMessage({ type: 'filter', by: value('by'), agent: value('agent'), taskClass: value('taskClass'), period: value('period') });
  for (const id of ['by', 'agent', 'taskClass', 'period']) document.getElementById(id).addEventListener('change', filter);
  document.getElementById('refresh').addEventListener('click', () => vscode.postMessage({ type: 'refresh' }));
  let opener;
  for (const button of document.querySelectorAll('button.figure')) {
    button.addEventListener('click', () => {
      opener = button;
      vscode.postMessage({ type: 'figure', key: button.dataset.figure });
    });
  }
  const list = document.getElementById('changes');
  document.getElementById('close-list').addEventListener('click', () => {
    list.hidden = true;
    if (opener) opener.focus();
  });
  const cell = (row, text, className) => {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  };
  const action = (td, words, changeId, how, label) => {
    const button = document.createElement('button');
    button.textContent = words;
    button.className = 'link';
    button.setAttribute('aria-label', label);
    button.addEventListener('click', () => vscode.postMessage({ type: 'open', changeId, how }));
    td.append(button);
  };
  window.addEventListener('message', (event) => {
    const message = event.data;
    if (!message || message.type !== 'list') return;
    document.getElementById('list-caption').textContent = message.caption;
    const body = document.getElementById('list-rows');
    body.replaceChildren();
    for (const change of message.changes) {
      const row = body.insertRow();
      row.dataset.change = change.id;
      const id = cell(row, '', 'id');
      action(id, change.id, change.id, 'open', 'Open change ' + change.id);
      cell(row, change.title || '(not in the change store)');
      cell(row, change.agent);
      cell(row, change.taskClass);
      cell(row, change.lane);
      cell(row, change.createdAt.slice(0, 16).replace('T', ' '), 'num');
      action(cell(row, ''), 'History', change.id, 'history', 'History of change ' + change.id);
    }
    list.hidden = false;
    list.scrollIntoView({ block: 'nearest' });
    document.getElementById('list-caption').focus();
  });
`;

export function metricsHtml(page: MetricsPage): string {
  const { report, state, choices } = page;
  const plain = (values: string[]) => values.map((value) => ({ value, words: value }));
  const controls = [
    select(
      'by',
      'Group by',
      '',
      VIEW_GROUPINGS.map((by) => ({ value: by, words: BY_WORDS[by] })),
      report.by,
    ),
    select('agent', 'Agent', 'All agents', plain(choices.agents), state.agent),
    select('taskClass', 'Task class', 'All classes', plain(choices.taskClasses), state.taskClass),
    select(
      'period',
      'Period',
      'All time',
      [
        ...Object.keys(RECENT_PERIODS).map((value) => ({ value, words: PERIOD_WORDS[value] ?? value })),
        ...plain(choices.months.slice().reverse()),
      ],
      state.period,
    ),
  ].join(' ');
  const filtered = state.agent !== undefined || state.taskClass !== undefined || state.period !== undefined;
  const body = report.groups.length
    ? report.groups.map(group).join('')
    : filtered
      ? '<p class="muted">No change matches these filters. Choose "All" in a filter to widen it.</p>'
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
  .controls { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(500px, 1fr)); gap: 8px 24px; }
  .grid > div { min-width: 0; overflow-x: auto; }
  table.chart th { font-weight: normal; text-align: right; padding: 1px 8px 1px 0; max-width: 16em; overflow-wrap: anywhere; }
  table.chart td { padding: 1px 0; } table.chart td.value { padding-left: 6px; white-space: nowrap; color: var(--vscode-descriptionForeground); }
  table.chart svg { display: block; }
  .bar.funnel { fill: var(--vscode-charts-blue); } .bar.reason { fill: var(--vscode-charts-orange); } .bar.intact { fill: var(--vscode-charts-green); }
  table { border-collapse: collapse; } td { padding: 2px 12px 2px 0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .warning { background: var(--vscode-inputValidation-warningBackground); border: 1px solid var(--vscode-inputValidation-warningBorder); padding: 6px 10px; }
  select { color: var(--vscode-dropdown-foreground); background: var(--vscode-dropdown-background); border: 1px solid var(--vscode-dropdown-border); padding: 2px 6px; }
  button { color: var(--vscode-button-foreground); background: var(--vscode-button-background); border: none; padding: 3px 8px; cursor: pointer; }
  button.figure, button.link { color: var(--vscode-textLink-foreground); background: none; padding: 0 1px; font: inherit; text-decoration: underline; text-underline-offset: 2px; }
  button.figure:hover, button.link:hover { color: var(--vscode-textLink-activeForeground); }
  button:focus-visible, select:focus-visible { outline: 1px solid var(--vscode-focusBorder); outline-offset: 1px; }
  #list-caption:focus { outline: none; }
  #changes { border: 1px solid var(--vscode-panel-border); padding: 4px 12px 10px; margin: 12px 0; }
  #changes header { display: flex; justify-content: space-between; align-items: center; gap: 12px; }
  #changes header h2 { border: none; margin: 8px 0; padding: 0; }
  #close-list { color: var(--vscode-button-secondaryForeground); background: var(--vscode-button-secondaryBackground); }
  #changes .rows { max-height: 45vh; overflow-y: auto; }
  #changes table { width: 100%; } #changes th { text-align: left; font-weight: 600; padding: 2px 12px 2px 0; border-bottom: 1px solid var(--vscode-panel-border); }
  #changes td { vertical-align: top; overflow-wrap: anywhere; } #changes td.id { font-family: var(--vscode-editor-font-family); white-space: nowrap; }
</style></head>
<body>
<h1>Promotion metrics <span class="muted">${escape(page.repository)} · ${report.events} audit events</span></h1>
${page.warning ? `<p class="warning" role="alert">${escape(page.warning)}</p>` : ''}
<p class="controls">${controls} <button id="refresh">Refresh</button></p>
<p class="muted">From this repository's audit log; each number lists the changes behind it. For many logs: <code>npx agent-lanes metrics</code>.</p>
<section id="changes" aria-live="polite" hidden>
  <header><h2 id="list-caption" tabindex="-1"></h2><button id="close-list">Close</button></header>
  <div class="rows"><table><thead><tr><th>Change</th><th>Title</th><th>Agent</th><th>Task class</th><th>Lane</th><th>Created (UTC)</th><th></th></tr></thead><tbody id="list-rows"></tbody></table></div>
</section>
${body}
<script nonce="${page.nonce}">${SCRIPT}</script>
</body></html>`;
}
