import { stat } from 'node:fs/promises';
import { MetricsReducer, type MetricsReport, type Summary } from '../../core/metrics/metrics';
import { reduceAuditFile } from '../audit/verifiedEvents';
import type { TelemetryInstrument } from './instruments';
import type { TelemetryRepository } from './logRecords';

export interface TelemetryMetricPoint {
  instrument: TelemetryInstrument;
  value: number;
  attributes: Record<string, string>;
}

/** The groupings sent: by agent and by task class, each within one repository. */
const GROUPINGS = [
  { by: 'agent', attribute: 'agent_lanes.agent', name: 'agent' },
  { by: 'taskClass', attribute: 'agent_lanes.task_class', name: 'task_class' },
] as const;

function summaryPoints(
  out: TelemetryMetricPoint[],
  instrument: TelemetryInstrument,
  summary: Summary,
  attributes: Record<string, string>,
): void {
  for (const statistic of ['mean', 'median', 'p90'] as const) {
    const value = summary[statistic];
    if (value !== undefined) out.push({ instrument, value, attributes: { ...attributes, 'agent_lanes.statistic': statistic } });
  }
}

/**
 * The points of one repository's reports. Each point carries
 * agent_lanes.grouping (agent or task_class) and the group's value, so a query
 * that sums over agents does not count a change twice by adding task classes.
 */
function reportPoints(repository: TelemetryRepository, reports: readonly MetricsReport[]): TelemetryMetricPoint[] {
  const out: TelemetryMetricPoint[] = [];
  for (const report of reports) {
    const grouping = GROUPINGS.find((candidate) => candidate.by === report.by);
    if (!grouping) continue;
    for (const group of report.groups) {
      const base = {
        'agent_lanes.repository.name': repository.name,
        'agent_lanes.repository.key': repository.key,
        'agent_lanes.grouping': grouping.name,
        [grouping.attribute]: group.key,
      };
      for (const figure of group.funnel) {
        const attributes = { ...base, 'agent_lanes.stage': figure.stage };
        out.push({ instrument: 'agent_lanes.changes.reached', value: figure.count, attributes });
        if (figure.conversion !== undefined)
          out.push({ instrument: 'agent_lanes.changes.conversion', value: figure.conversion, attributes });
        if (figure.firstPassRate !== undefined)
          out.push({ instrument: 'agent_lanes.changes.first_pass_rate', value: figure.firstPassRate, attributes });
      }
      for (const reason of group.reasons) {
        const attributes = {
          ...base,
          'agent_lanes.rule': reason.rule,
          'agent_lanes.effect': reason.effect,
          'agent_lanes.policy': reason.policy,
        };
        out.push({ instrument: 'agent_lanes.policy.blocks', value: reason.count, attributes });
        out.push({ instrument: 'agent_lanes.policy.blocked_changes', value: reason.changes, attributes });
      }
      const { rework } = group;
      out.push(
        { instrument: 'agent_lanes.rework.requested_changes_rounds', value: rework.requestedChangesRounds, attributes: base },
        { instrument: 'agent_lanes.rework.changes_with_requested_changes', value: rework.changesWithRequestedChanges, attributes: base },
        { instrument: 'agent_lanes.rework.agent_reruns', value: rework.agentReruns, attributes: base },
        { instrument: 'agent_lanes.rework.edits_after_approval', value: rework.editsAfterApproval, attributes: base },
      );
      for (const [lane, summary] of Object.entries(group.laneHours))
        summaryPoints(out, 'agent_lanes.lane.duration', summary, { ...base, 'agent_lanes.lane': lane });
      summaryPoints(out, 'agent_lanes.pull_request.lines', group.prLines, base);
      summaryPoints(out, 'agent_lanes.pull_request.files', group.prFiles, base);
    }
  }
  return out;
}

export interface MetricsLog {
  file: string;
  repository: TelemetryRepository;
}

/**
 * The points of the open repositories' logs, each read again only when its
 * file changed since the last collection (size or time): a collection between
 * two appends reads nothing.
 */
export class TelemetryMetricsSource {
  private readonly cache = new Map<string, { stamp: string; points: TelemetryMetricPoint[] }>();

  constructor(private readonly warn: (message: string) => void = () => undefined) {}

  async collect(logs: readonly MetricsLog[]): Promise<TelemetryMetricPoint[]> {
    const points: TelemetryMetricPoint[] = [];
    for (const key of this.cache.keys()) if (!logs.some((log) => log.file === key)) this.cache.delete(key);
    for (const log of logs) {
      const info = await stat(log.file).catch(() => undefined);
      if (!info) continue;
      const stamp = `${info.size}:${info.mtimeMs}`;
      let cached = this.cache.get(log.file);
      if (cached?.stamp !== stamp) {
        const reducer = new MetricsReducer();
        const warning = await reduceAuditFile(log.file, reducer);
        if (warning) this.warn(warning);
        cached = { stamp, points: reportPoints(log.repository, [reducer.report('agent'), reducer.report('taskClass')]) };
        this.cache.set(log.file, cached);
      }
      points.push(...cached.points);
    }
    return points;
  }
}
