// `npm run bench`: measures what the issues ask for and writes
// bench-results.json (metric name → number). Benchmarks are not tests: nothing
// here asserts a time. Ratios are taken against a baseline in the same run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, runTestsInWorkbench, startCodeServer } from '../test/runners/codeServer.mjs';
import { createSampleRepository, tempDir } from '../test/runners/fixtures.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const only = process.argv.slice(2);
const results = {};
const RESULT = /BENCH_RESULT (\{.*\})/;

function record(source, text) {
  const match = RESULT.exec(text);
  if (!match) return false;
  const values = JSON.parse(match[1]);
  for (const [key, value] of Object.entries(values)) {
    (results[key] ??= []).push(value);
  }
  console.log(`${source}: ${match[1]}`);
  return true;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

execFileSync('npm', ['run', '--silent', 'package'], { cwd: root, stdio: 'inherit' });
const benchSources = readdirSync(join(root, 'test', 'bench'))
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => `test/bench/${f}`);
const vscodeBenchSources = readdirSync(join(root, 'test', 'bench', 'vscode'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => `test/bench/vscode/${f}`);
execFileSync('node', ['esbuild.mjs', '--tests', ...benchSources, ...vscodeBenchSources], { cwd: root, stdio: 'inherit' });
results['vsix.kb'] = [Math.round((statSync(join(root, 'dist', 'agent-lanes.vsix')).size / 1024) * 10) / 10];

// Benchmarks in plain Node, one process each.
const benchDir = join(root, 'out', 'test', 'bench');
for (const file of readdirSync(benchDir)
  .filter((f) => f.endsWith('.bench.js'))
  .sort()) {
  const name = file.replace(/\.bench\.js$/, '');
  if (only.length && !only.includes(name)) continue;
  console.log(`\n--- ${name}`);
  const run = spawnSync('node', [join(benchDir, file)], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 15 * 60_000,
  });
  if (!record(name, run.stdout ?? '')) console.error(`${name}: no BENCH_RESULT line (exit ${run.status})\n${run.stdout}`);
}

// Benchmarks inside the real VS Code.
if (!only.length || only.includes('vscode')) {
  console.log('\n--- vscode');
  const folder = createSampleRepository(join(tempDir('lanes-bench-'), 'bench-app'));
  const server = await startCodeServer();
  const browser = await launchBrowser();
  try {
    for (const bench of readdirSync(join(benchDir, 'vscode'))
      .filter((f) => f.endsWith('.js'))
      .sort()) {
      // Several windows each, the median reported: one window's timing is noise on 2 cores.
      const rounds = bench.startsWith('activation') ? 5 : 3;
      for (let i = 0; i < rounds; i++) {
        const { code, page } = await runTestsInWorkbench(
          server,
          browser,
          { folder, extensionDevelopmentPath: root, extensionTestsPath: join(benchDir, 'vscode', bench) },
          { onLog: (text) => record(`vscode/${bench}`, text), timeoutMs: 5 * 60_000 },
        );
        await page.close();
        if (code !== 0) console.error(`vscode/${bench}: exited with ${code}`);
      }
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

const summary = Object.fromEntries(Object.entries(results).map(([key, values]) => [key, Math.round(median(values) * 1000) / 1000]));
// The review's first render over VS Code's floor for any webview in a new window (test/bench/vscode/webviewBaseline.ts).
if (summary['review.firstRender2000FilesMs'] && summary['review.bareWebviewFirstPaintMs'])
  summary['review.firstRenderRatio'] =
    Math.round((summary['review.firstRender2000FilesMs'] / summary['review.bareWebviewFirstPaintMs']) * 100) / 100;
// The machine the figures come from: every ratio and time depends on it.
summary['machine.cores'] = availableParallelism();
writeFileSync(join(root, 'bench-results.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log('\nmetric'.padEnd(36) + 'value');
for (const [key, value] of Object.entries(summary)) console.log(`${key.padEnd(35)}${value}`);
console.log(`\nWrote ${join('bench-results.json')}${existsSync(join(root, 'bench-results.json')) ? '' : ' (failed)'}`);
