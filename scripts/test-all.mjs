// The README's test command: lint, unused code, types, build, then unit,
// integration (inside a real VS Code) and end-to-end (a browser driving the
// installed VSIX), and a coverage report of src/ from the unit and integration
// runs. Every stage runs even when an earlier one fails; the last line sums all levels.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const only = process.argv.slice(2);
const RESULT = /^LANES_LEVEL_RESULT (\{.*\})$/m;

// V8 coverage of the unit run and of the integration run's extension host; the
// e2e run installs the production VSIX, which has no source maps to map back to src/.
const coverageDir = mkdtempSync(join(tmpdir(), 'lanes-coverage-'));
const coverageEnv = { NODE_V8_COVERAGE: coverageDir };

const stages = [
  { name: 'lint', cmd: ['npm', 'run', '--silent', 'lint'] },
  // Production mode: a file or export that only tests use is reported (knip.json).
  { name: 'knip', cmd: ['node_modules/.bin/knip', '--production'] },
  { name: 'typecheck', cmd: ['npx', 'tsc', '--noEmit', '-p', '.'] },
  { name: 'typecheck-webview', cmd: ['npx', 'tsc', '--noEmit', '-p', 'webview-ui'] },
  { name: 'package', cmd: ['npm', 'run', '--silent', 'package'] },
  // After packaging: the integration run loads dist/ as the development extension, and coverage needs its source maps.
  { name: 'build', cmd: ['node', 'esbuild.mjs'] },
  { name: 'build-tests', cmd: ['node', 'esbuild.mjs', '--tests'] },
  { name: 'unit', cmd: ['node', 'test/runners/run-unit.mjs'], level: true, env: coverageEnv },
  { name: 'integration', cmd: ['node', 'test/runners/run-integration.mjs'], level: true, env: coverageEnv },
  { name: 'e2e', cmd: ['node', 'test/runners/run-e2e.mjs'], level: true },
  // One report over both runs (.c8rc.json); no threshold fails the run.
  { name: 'coverage', cmd: ['node_modules/.bin/c8', 'report', '--temp-directory', coverageDir] },
];

function run(cmd, env = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const relay = (stream) => (chunk) => {
      output += chunk;
      stream.write(chunk);
    };
    child.stdout.on('data', relay(process.stdout));
    child.stderr.on('data', relay(process.stderr));
    child.on('close', (code) => resolvePromise({ code, output }));
  });
}

const totals = { passed: 0, failed: 0 };
const timings = [];
for (const stage of stages) {
  if (only.length && !only.includes(stage.name)) continue;
  const started = Date.now();
  console.log(`\n=== ${stage.name}: ${stage.cmd.join(' ')}`);
  const { code, output } = await run(stage.cmd, stage.env);
  const seconds = (Date.now() - started) / 1000;
  timings.push(`${stage.name} ${seconds.toFixed(1)} s${code === 0 ? '' : ` (exit ${code})`}`);
  const match = stage.level ? RESULT.exec(output) : null;
  if (match) {
    const result = JSON.parse(match[1]);
    totals.passed += result.passed;
    totals.failed += result.failed;
    // A runner that died after its tests still fails the run.
    if (code !== 0 && result.failed === 0) totals.failed += 1;
  } else if (stage.level || code !== 0) {
    // A failed check, or a level that never reported its result, counts as one failure.
    totals.failed += 1;
  }
}

rmSync(coverageDir, { recursive: true, force: true });

console.log(`\nStage timings: ${timings.join(', ')}`);
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed > 0 ? 1 : 0);
