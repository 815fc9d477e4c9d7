// Sandbox benchmarks, against baselines measured in the same run:
// - sandbox.execOverheadRatio: a task `true` in a warm container through
//   ContainerSandbox.runTask ÷ `podman exec <container> true` (median of 15 each, interleaved).
// - sandbox.warmRunRatio (informative): a whole warm run (preparing: finding and checking the
//   container, then the task) ÷ the same `podman exec`.
// - sandbox.coldStartRatio: the first run for a new change (create, check, prepare, run `true`)
//   ÷ a plain `podman run -d` (network none, the worktree mounted) plus one `podman exec true`
//   (median of 3 each, interleaved; container removal is not timed).
// - sandbox.coldStartVsDevcontainerUpRatio (informative, the earlier baseline): the same first run
//   ÷ a plain `devcontainer up` with an equivalent configuration plus one `podman exec true`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ResolvedTask } from '../../src/core/sandbox/lanesConfig';
import { ContainerSandbox, resolveDevcontainerCli } from '../../src/infra/sandbox/containerSandbox';
import { detectEngine } from '../../src/infra/sandbox/engine';
import { runTaskSequence } from '../../src/infra/sandbox/taskRun';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const TRUE_TASK: ResolvedTask = { id: 'true', command: 'true', timeoutSeconds: 60, test: false, required: true, source: 'repository' };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function run(command: string, args: string[], cwd?: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function timed(work: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/build-sandbox-image.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const detection = await detectEngine('podman');
  if (!detection.found) throw new Error(detection.message);
  const engine = detection.engine;
  const cli = await resolveDevcontainerCli({ extensionRoot: process.cwd() });
  if ('error' in cli) throw new Error(cli.error);

  const root = mkdtempSync(join(tmpdir(), 'lanes-sandbox-bench-'));
  const repo = join(root, 'repo');
  mkdirSync(repo);
  run('git', ['init', '-q', '-b', 'main'], repo);
  writeFileSync(join(repo, 'README.md'), 'bench\n');
  run('git', ['add', '.'], repo);
  run('git', ['-c', 'user.name=b', '-c', 'user.email=b@example.invalid', 'commit', '-q', '-m', 'base'], repo);
  const worktree = (name: string) => {
    const path = join(root, 'worktrees', name);
    run('git', ['worktree', 'add', '-q', '--detach', path, 'main'], repo);
    return path;
  };
  const sandbox = new ContainerSandbox({ engine, devcontainerCli: cli.path, stateDir: join(root, 'state'), defaultImage: IMAGE });
  const logDir = join(root, 'logs');
  const changeIds: string[] = [];
  // What the Sandbox lane runs: prepare the sandbox, then the one task runner.
  const runTrue = async (changeId: string, path: string) =>
    runTaskSequence(await sandbox.prepare({ changeId, worktreePath: path, source: { prepare: [] }, policy: {}, logDir }), [TRUE_TASK], {
      logDir,
    });

  try {
    // Warm container: exec overhead.
    const warmId = 'be000001';
    changeIds.push(warmId);
    const warmPath = worktree(warmId);
    await runTrue(warmId, warmPath);
    const handle = await sandbox.ensure({ changeId: warmId, worktreePath: warmPath, source: { prepare: [] }, policy: {}, logDir });
    const ours: number[] = [];
    const plain: number[] = [];
    const whole: number[] = [];
    for (let i = 0; i < 15; i++) {
      plain.push(await timed(() => run(engine.path, ['exec', handle.containerId, 'true'])));
      ours.push(
        await timed(async () => {
          const evidence = await sandbox.runTask(handle, TRUE_TASK, { logDir });
          if (evidence.outcome !== 'passed') throw new Error(`true did not pass: ${evidence.message ?? evidence.outcome}`);
        }),
      );
      whole.push(await timed(() => runTrue(warmId, warmPath)));
    }

    // Cold start: our first run for a change vs a plain `devcontainer up` + one exec.
    const coldOurs: number[] = [];
    const coldPlain: number[] = [];
    const coldRun: number[] = [];
    for (let i = 0; i < 3; i++) {
      const changeId = `be1000${i}0`;
      changeIds.push(changeId);
      const path = worktree(changeId);
      coldOurs.push(
        await timed(async () => {
          const [evidence] = await runTrue(changeId, path);
          if (evidence?.outcome !== 'passed') throw new Error('cold run failed');
        }),
      );
      await sandbox.removeSandbox(changeId);

      const plainPath = worktree(`plain${i}`);
      const configDir = join(root, `plain-config-${i}`);
      mkdirSync(configDir);
      const configFile = join(configDir, 'devcontainer.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          image: IMAGE,
          runArgs: ['--network=none'],
          updateRemoteUserUID: false,
          workspaceMount: `type=bind,source=${plainPath},target=/workspaces/plain${i}`,
          workspaceFolder: `/workspaces/plain${i}`,
        }),
      );
      const label = `dev.agentlanes.bench=plain${i}`;
      coldPlain.push(
        await timed(() => {
          const out = run(cli.path, [
            'up',
            '--docker-path',
            engine.path,
            '--workspace-folder',
            plainPath,
            '--config',
            configFile,
            '--id-label',
            label,
          ]);
          const containerId = (JSON.parse(out.trim().split('\n').pop()!) as { containerId: string }).containerId;
          run(engine.path, ['exec', containerId, 'true']);
        }),
      );
      const runPath = worktree(`run${i}`);
      coldRun.push(
        await timed(() => {
          const containerId = run(engine.path, [
            'run',
            '-d',
            `--label=${label}`,
            '--network=none',
            `--mount=type=bind,source=${runPath},target=/workspaces/run${i}`,
            '--entrypoint=/bin/sh',
            IMAGE,
            '-c',
            'while sleep 1 & wait $!; do :; done',
          ]).trim();
          run(engine.path, ['exec', containerId, 'true']);
        }),
      );
      const ids = run(engine.path, ['ps', '-aq', '--filter', `label=${label}`])
        .trim()
        .split('\n')
        .filter(Boolean);
      if (ids.length) run(engine.path, ['rm', '-f', '-t', '0', ...ids]);
    }

    const round = (value: number) => Math.round(value * 1000) / 1000;
    console.error(
      `sandbox bench: exec ours ${median(ours).toFixed(1)} ms vs podman exec ${median(plain).toFixed(1)} ms; warm run ${median(whole).toFixed(1)} ms; cold ours ${median(coldOurs).toFixed(0)} ms vs run -d+exec ${median(coldRun).toFixed(0)} ms vs up+exec ${median(coldPlain).toFixed(0)} ms`,
    );
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'sandbox.execOverheadRatio': round(median(ours) / median(plain)),
        'sandbox.warmRunRatio': round(median(whole) / median(plain)),
        'sandbox.coldStartRatio': round(median(coldOurs) / median(coldRun)),
        'sandbox.coldStartVsDevcontainerUpRatio': round(median(coldOurs) / median(coldPlain)),
      })}`,
    );
  } finally {
    for (const changeId of changeIds) await sandbox.removeSandbox(changeId).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
