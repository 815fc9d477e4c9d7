import { auditFileProblem } from './auditFiles';
import { parseArgs } from 'node:util';
import { formatMetricsCsv, formatMetricsTable, METRICS_FORMATS, type MetricsFormat } from '../core/metrics/format';
import { GROUP_BY, MetricsReducer, type GroupBy, type MergedChange } from '../core/metrics/metrics';
import { reduceAuditFile } from '../infra/audit/verifiedEvents';
import { readFirstEvent } from '../infra/audit/lines';
import { DEFAULT_INTACT_DAYS, intactVerdict, type IntactVerdict } from '../core/metrics/intact';
import { IntactFacts } from '../infra/git/intactFacts';
import { probeRepository } from '../infra/git/repository';
import { RepoStorage } from '../infra/storage/repoStorage';

export interface CliOutput {
  log(s: string): void;
  error(s: string): void;
}

const USAGE = `Usage:
  agent-lanes metrics AUDIT... [--format table|json|csv] [--by agent|repository|taskClass|period]
                     [--git [REPOSITORY=]REPO_PATH]... [--intact-days N]
      Promotion metrics from one or more audit logs (audit.jsonl): the funnel
      drafted → sandbox passed → approved → PR opened → merged with first-pass
      rates, block reasons by rule, rework, time in each lane, pull request size.
      Each log is streamed and its hash chain verified as it is read; a broken
      log counts only the events before the first broken one, with a warning.
      --git adds the intact rate: of the merged changes, those neither reverted
      nor mostly rewritten within N days (default ${DEFAULT_INTACT_DAYS}), read from the
      git repository at REPO_PATH. A log's changes are measured in the repository
      whose key its audit.created event names; REPOSITORY=REPO_PATH names the key
      (12 characters, as --by repository shows it) for a log written on another
      clone. Repeat --git for logs of several repositories.

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
        git: { type: 'string', multiple: true },
        'intact-days': { type: 'string' },
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
  const gitSpecs = parsed.values.git ?? [];
  const daysText = parsed.values['intact-days'];
  let days = DEFAULT_INTACT_DAYS;
  if (daysText !== undefined) {
    if (!gitSpecs.length) {
      out.error('--intact-days needs --git REPO_PATH: the intact rate is read from the git repository.');
      return 2;
    }
    days = Number(daysText);
    if (!/^\d+$/.test(daysText) || days < 1 || days > 3650) {
      out.error(`--intact-days must be a whole number of days from 1 to 3650; got "${daysText}".`);
      return 2;
    }
  }
  const repositories = new Map<string, string>();
  for (const spec of gitSpecs) {
    const found = await gitRepository(spec);
    if (typeof found === 'string') {
      out.error(found);
      return 2;
    }
    repositories.set(found.key, found.root);
  }
  if (repositories.size) {
    const logKeys = new Set<string>();
    for (const file of parsed.positionals) {
      const repoKey = (await readFirstEvent(file)).repoKey;
      if (repoKey) logKeys.add(repoKey.slice(0, 12));
    }
    for (const [key, root] of repositories)
      if (!logKeys.has(key)) {
        out.error(
          `The git repository ${root} (key ${key}) is not the repository of any log given (${logKeys.size ? `their keys: ${[...logKeys].join(', ')}` : 'none names its repository'}). If a log was written on another clone, name its key: --git KEY=${root}.`,
        );
        return 2;
      }
  }
  const reducer = new MetricsReducer({ keepMerges: repositories.size > 0 });
  const warnings: string[] = [];
  for (const file of parsed.positionals) {
    const warning = await reduceAuditFile(file, reducer);
    if (warning) warnings.push(warning);
  }
  let intact: ((row: number) => IntactVerdict) | undefined;
  const notMeasurable = new Map<string, number>();
  if (repositories.size) {
    const verdicts = await intactVerdicts(reducer, repositories, days, notMeasurable);
    intact = (row) => verdicts.get(row) ?? 'notMeasurable';
  }
  for (const warning of warnings) out.error(warning);
  const reasons = [...notMeasurable].sort((a, b) => b[1] - a[1]);
  for (const [reason, count] of reasons.slice(0, 5))
    out.error(`Intact rate: ${count} merged change${count === 1 ? '' : 's'} not measurable: ${reason}.`);
  if (reasons.length > 5)
    out.error(`Intact rate: ${reasons.slice(5).reduce((sum, [, count]) => sum + count, 0)} more not measurable, for other reasons.`);
  const report = reducer.report(by, {}, intact);
  const intactDays = repositories.size ? { intactDays: days } : {};
  if (format === 'json') out.log(JSON.stringify({ ...report, ...intactDays, warnings }, null, 2));
  else for (const line of format === 'csv' ? formatMetricsCsv(report) : formatMetricsTable(report, days)) out.log(line);
  return warnings.length ? 1 : 0;
}

/** `--git [KEY=]PATH`: the repository's root and the key its logs name (the first 12 characters of its repoKey). */
async function gitRepository(spec: string): Promise<{ key: string; root: string } | string> {
  const named = /^([0-9a-f]{12})=(.+)$/.exec(spec);
  const path = named ? named[2]! : spec;
  const probe = await probeRepository(path);
  if (probe.kind !== 'repository')
    return `--git ${spec}: ${probe.kind === 'missing' ? `${path} ${probe.message}` : `${path} is not a git repository with a work tree`}; give the folder of the repository the log's changes were merged into.`;
  return { key: named ? named[1]! : RepoStorage.keyFor(probe.commonDir).slice(0, 12), root: probe.root };
}

/** Each merged change's verdict (by the reducer's row), measured in its log's repository; reasons counted in `notMeasurable`. */
async function intactVerdicts(
  reducer: MetricsReducer,
  repositories: ReadonlyMap<string, string>,
  days: number,
  notMeasurable: Map<string, number>,
): Promise<Map<number, IntactVerdict>> {
  const verdicts = new Map<number, IntactVerdict>();
  const byRepository = new Map<string, MergedChange[]>();
  for (const change of reducer.mergedChanges()) {
    const list = byRepository.get(change.repository) ?? [];
    list.push(change);
    byRepository.set(change.repository, list);
  }
  for (const [repository, changes] of byRepository) {
    const root = repositories.get(repository);
    const facts = root ? new IntactFacts(root, { days, cacheFile: await IntactFacts.cacheInGitDir(root) }) : undefined;
    const withSha = changes.filter((change) => change.mergeCommitSha);
    const answers = facts
      ? await facts.answers(
          withSha.map((change) => ({ mergeCommitSha: change.mergeCommitSha!, ...(change.baseRef ? { baseRef: change.baseRef } : {}) })),
        )
      : undefined;
    for (const change of changes) {
      const decision =
        answers || !change.mergeCommitSha
          ? intactVerdict(change.mergeCommitSha ? answers!.get(change.mergeCommitSha.toLowerCase()) : undefined, days)
          : { verdict: 'notMeasurable' as const, reason: `no --git repository given for the log of repository ${repository}` };
      verdicts.set(change.row, decision.verdict);
      if (decision.verdict === 'notMeasurable') notMeasurable.set(decision.reason, (notMeasurable.get(decision.reason) ?? 0) + 1);
    }
  }
  return verdicts;
}
