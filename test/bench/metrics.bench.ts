// metrics.events10MSec: `agent-lanes metrics LOG --format json` (the real CLI, dist/cli.js, in a child
//   process) over a generated audit log of 10,000,000 events (about 800,000 changes), wall time.
// metrics.peakRssMb: the peak resident memory of that child (its max RSS, from GNU time).
// metrics.events10MCpuSec: the child's CPU time (user + system): on a shared machine, less noisy than wall time.
// metrics.lineCount10MSec: the baseline, in the same run: a plain Node program that reads the same
//   file and counts its lines. metrics.events10MRatio = events10MSec ÷ lineCount10MSec.
// metrics.loadAvg1: the machine's 1-minute load average when the run started (other work slows every figure).
// The bench fails (no BENCH_RESULT) when the report's counts differ from what the generator wrote.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { MetricsReport } from '../../src/core/metrics/metrics';
import { cachedAuditLog, type GeneratedLog } from './support/auditLogGenerator';

const EVENTS = 10_000_000;
const root = resolve(__dirname, '..', '..', '..');
const TIME = '/usr/bin/time';

const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;

interface Measured {
  seconds: number;
  cpuSeconds: number;
  peakRssMb: number;
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Runs a command under GNU time; wall time from here, CPU time and max RSS of the child from time's report. */
function measure(command: string, args: string[]): Measured {
  const started = performance.now();
  const run = spawnSync(TIME, ['-f', 'BENCH_TIME %U %S %M', command, ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  const report = /BENCH_TIME (\S+) (\S+) (\d+)\s*$/.exec(run.stderr ?? '');
  if (!report) throw new Error(`${TIME} gave no report for ${command} ${args.join(' ')}: ${run.error?.message ?? run.stderr}`);
  return {
    seconds,
    cpuSeconds: Number(report[1]) + Number(report[2]),
    peakRssMb: Number(report[3]) / 1024,
    stdout: run.stdout,
    stderr: run.stderr.slice(0, report.index),
    status: run.status,
  };
}

/** The baseline: read the file in 4 MB chunks and count newlines, nothing else. */
const LINE_COUNT = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], 'r');
const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
let lines = 0;
for (let read; (read = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) {
  for (let at = buffer.indexOf(10, 0); at !== -1 && at < read; at = buffer.indexOf(10, at + 1)) lines++;
}
console.log(lines);`;

/** The report must show exactly the changes and stages the generator wrote. */
function check(report: MetricsReport & { warnings: string[] }, log: GeneratedLog): void {
  const problems: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) problems.push(`${what}: report ${String(actual)}, generator ${String(expected)}`);
  };
  expect('events', report.events, log.events);
  expect('warnings', report.warnings.length, 0);
  expect('agents', report.groups.map((group) => group.key).join(','), Object.keys(log.agents).sort().join(','));
  let changes = 0;
  for (const group of report.groups) {
    const tally = log.agents[group.key];
    if (!tally) continue;
    changes += group.changes;
    expect(`${group.key} changes`, group.changes, tally.drafted);
    for (const stage of group.funnel) expect(`${group.key} ${stage.stage}`, stage.count, tally[stage.stage]);
    expect(`${group.key} requested-changes rounds`, group.rework.requestedChangesRounds, tally.requestedChangesRounds);
    expect(`${group.key} agent re-runs`, group.rework.agentReruns, tally.agentReruns);
  }
  expect('changes', changes, log.changes);
  if (problems.length) throw new Error(`agent-lanes metrics miscounted the generated log:\n${problems.join('\n')}`);
}

async function main(): Promise<void> {
  const cli = join(root, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run "node esbuild.mjs" first (npm run bench does).');
  if (!existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed to measure the child's peak memory.`);
  const load = loadavg()[0]!;
  const generating = performance.now();
  const log = await cachedAuditLog(EVENTS);
  const size = statSync(log.file).size;
  process.stderr.write(
    `metrics.bench: ${log.events.toLocaleString('en')} events, ${log.changes.toLocaleString('en')} changes, ${(size / 1e9).toFixed(2)} GB (${((performance.now() - generating) / 1000).toFixed(0)} s to generate or find)\n`,
  );
  const baseline = measure(process.execPath, ['-e', LINE_COUNT, log.file]);
  if (Number(baseline.stdout.trim()) !== log.events)
    throw new Error(`the baseline counted ${baseline.stdout.trim()} lines, not ${log.events}`);
  const metrics = measure(process.execPath, [cli, 'metrics', log.file, '--format', 'json']);
  if (metrics.status !== 0) throw new Error(`agent-lanes metrics exited with ${metrics.status}: ${metrics.stderr}`);
  check(JSON.parse(metrics.stdout) as MetricsReport & { warnings: string[] }, log);
  process.stderr.write(
    `metrics.bench: metrics ${metrics.seconds.toFixed(1)} s (${metrics.cpuSeconds.toFixed(1)} s CPU, ${metrics.peakRssMb.toFixed(0)} MB peak); line count ${baseline.seconds.toFixed(1)} s (${baseline.peakRssMb.toFixed(0)} MB); load ${load.toFixed(1)}\n`,
  );
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      'metrics.events10MSec': round(metrics.seconds, 1),
      'metrics.events10MCpuSec': round(metrics.cpuSeconds, 1),
      'metrics.peakRssMb': round(metrics.peakRssMb, 0),
      'metrics.lineCount10MSec': round(baseline.seconds, 2),
      'metrics.events10MRatio': round(metrics.seconds / baseline.seconds, 1),
      'metrics.loadAvg1': round(load, 1),
    })}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
