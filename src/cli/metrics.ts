import { auditFileProblem } from './auditFiles';
import { parseArgs } from 'node:util';
import { formatMetricsCsv, formatMetricsTable, METRICS_FORMATS, type MetricsFormat } from '../core/metrics/format';
import { GROUP_BY, MetricsReducer, type GroupBy } from '../core/metrics/metrics';
import { reduceAuditFile } from '../infra/audit/verifiedEvents';

export interface CliOutput {
  log(s: string): void;
  error(s: string): void;
}

const USAGE = `Usage:
  agent-lanes metrics AUDIT... [--format table|json|csv] [--by agent|repository|taskClass|period]
      Promotion metrics from one or more audit logs (audit.jsonl): the funnel
      drafted → sandbox passed → approved → PR opened → merged with first-pass
      rates, block reasons by rule, rework, time in each lane, pull request size.
      Each log is streamed and its hash chain verified as it is read; a broken
      log counts only the events before the first broken one, with a warning.

Exit codes: 0 every log verified; 1 a log is broken (metrics cover the part before the break); 2 bad usage or an unreadable file.`;

export async function runMetricsCli(args: string[], out: CliOutput): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        format: { type: 'string', default: 'table' },
        by: { type: 'string', default: 'agent' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    out.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    out.log(USAGE);
    return 0;
  }
  const format = parsed.values.format as MetricsFormat;
  const by = parsed.values.by as GroupBy;
  if (!METRICS_FORMATS.includes(format)) {
    out.error(`--format must be one of ${METRICS_FORMATS.join(', ')}; got "${format}".`);
    return 2;
  }
  if (!GROUP_BY.includes(by)) {
    out.error(`--by must be one of ${GROUP_BY.join(', ')}; got "${by}".`);
    return 2;
  }
  if (!parsed.positionals.length) {
    out.error(`agent-lanes metrics needs at least one audit log (audit.jsonl).\n\n${USAGE}`);
    return 2;
  }
  for (const file of parsed.positionals) {
    const problem = await auditFileProblem(file);
    if (problem) {
      out.error(problem);
      return 2;
    }
  }
  const reducer = new MetricsReducer();
  const warnings: string[] = [];
  for (const file of parsed.positionals) {
    const warning = await reduceAuditFile(file, reducer);
    if (warning) warnings.push(warning);
  }
  for (const warning of warnings) out.error(warning);
  const report = reducer.report(by);
  if (format === 'json') out.log(JSON.stringify({ ...report, warnings }, null, 2));
  else for (const line of format === 'csv' ? formatMetricsCsv(report) : formatMetricsTable(report)) out.log(line);
  return warnings.length ? 1 : 0;
}
