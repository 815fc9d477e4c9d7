import { STAGES, type MetricsReport, type Summary } from './metrics';

export const METRICS_FORMATS = ['table', 'json', 'csv'] as const;
export type MetricsFormat = (typeof METRICS_FORMATS)[number];

const pct = (value: number | undefined) => (value === undefined ? '-' : `${Math.round(value * 100)}%`);
const num = (value: number | undefined) => (value === undefined ? '-' : String(value));
const summary = (s: Summary) => (s.count ? `${num(s.median)} median, ${num(s.p90)} p90 (${s.count})` : '-');

/** A readable report: one block per group (`intactDays`: the window of the intact figures, when there are any). */
export function formatMetricsTable(report: MetricsReport, intactDays?: number): string[] {
  const lines: string[] = [];
  if (!report.groups.length) {
    lines.push(`No changes in ${report.events} events.`);
    return lines;
  }
  for (const group of report.groups) {
    lines.push(`${report.by} ${group.key}: ${group.changes} changes`);
    lines.push('  stage           count  conversion  first pass');
    for (const stage of group.funnel) {
      lines.push(
        `  ${stage.stage.padEnd(14)} ${String(stage.count).padStart(6)}  ${pct(stage.conversion).padStart(10)}  ${pct(stage.firstPassRate).padStart(10)}`,
      );
    }
    const r = group.rework;
    lines.push(
      `  rework: ${r.requestedChangesRounds} requested-changes rounds (${r.changesWithRequestedChanges} changes), ${r.agentReruns} agent re-runs, ${r.editsAfterApproval} edits after approval`,
    );
    lines.push(
      `  hours in lane: draft ${summary(group.laneHours.draft)}; sandbox ${summary(group.laneHours.sandbox)}; review ${summary(group.laneHours.review)}; pull request ${summary(group.laneHours.pullRequest)}`,
    );
    lines.push(`  pull request size: lines ${summary(group.prLines)}; files ${summary(group.prFiles)}`);
    const intact = group.intact;
    if (intact)
      lines.push(
        `  intact after ${intactDays ?? '?'} days: ${pct(intact.rate)} of ${intact.measured} measured (${intact.intact} intact, ${intact.reverted} reverted, ${intact.rewritten} rewritten); ${intact.pending} pending, ${intact.notMeasurable} not measurable`,
      );
    if (group.reasons.length) {
      lines.push('  not allowed, by rule:');
      for (const reason of group.reasons) {
        lines.push(
          `    ${reason.effect.padEnd(15)} ${reason.rule} (${reason.policy}): ${reason.count} decisions, ${reason.changes} changes`,
        );
      }
    }
    lines.push('');
  }
  lines.push(`${report.events} events.`);
  return lines;
}

const CSV_HEADER = [
  'by',
  'key',
  'changes',
  ...STAGES.flatMap((stage) => [stage, `${stage}Conversion`, `${stage}FirstPass`]),
  'requestedChangesRounds',
  'agentReruns',
  'editsAfterApproval',
  'draftHoursMedian',
  'sandboxHoursMedian',
  'reviewHoursMedian',
  'pullRequestHoursMedian',
  'prLinesMedian',
  'prFilesMedian',
  'blocks',
  'approvalsRequired',
];

const INTACT_HEADER = [
  'intactMerged',
  'intactMeasured',
  'intact',
  'intactReverted',
  'intactRewritten',
  'intactPending',
  'intactNotMeasurable',
  'intactRate',
];

function csvCell(value: string | number | undefined): string {
  if (value === undefined) return '';
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row per group; a CSV a spreadsheet opens. */
export function formatMetricsCsv(report: MetricsReport): string[] {
  // The intact columns come only with git (--git): without them a CSV stays as it was.
  const withIntact = report.groups.some((group) => group.intact);
  const rows = [[...CSV_HEADER, ...(withIntact ? INTACT_HEADER : [])].join(',')];
  for (const group of report.groups) {
    const count = (effect: string) => group.reasons.filter((r) => r.effect === effect).reduce((sum, r) => sum + r.count, 0);
    const cells = [
      report.by,
      group.key,
      group.changes,
      ...group.funnel.flatMap((stage) => [stage.count, stage.conversion, stage.firstPassRate]),
      group.rework.requestedChangesRounds,
      group.rework.agentReruns,
      group.rework.editsAfterApproval,
      group.laneHours.draft.median,
      group.laneHours.sandbox.median,
      group.laneHours.review.median,
      group.laneHours.pullRequest.median,
      group.prLines.median,
      group.prFiles.median,
      count('block'),
      count('requireApproval'),
    ];
    const intact = group.intact;
    if (withIntact)
      cells.push(
        intact?.merged,
        intact?.measured,
        intact?.intact,
        intact?.reverted,
        intact?.rewritten,
        intact?.pending,
        intact?.notMeasurable,
        intact?.rate,
      );
    rows.push(cells.map(csvCell).join(','));
  }
  return rows;
}
