// A whole lane run of a tiny change, against the same steps by hand, measured in the same run:
// - lane.endToEndRatio: New Draft (worktree) + the scripted agent + its commit + the Sandbox lane
//   (container, the two test tasks, the base-commit run of both with the change's test file over
//   the base) until the change is in Review ÷ by hand: `git worktree add`, the same agent,
//   `git add` + `git commit`, `podman run -d`, the two tasks with `podman exec`, then the base run:
//   `git worktree add --detach` at the base, `git checkout <head> -- <test file>`, `podman run -d`,
//   the two tasks, `podman rm` of that container and `git worktree remove`
//   (median of 3 each, interleaved; the change's container is removed untimed on both sides).
// - lane.endToEndMs / lane.byHandMs: the two medians.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import { SandboxLane } from '../../src/infra/lanes/sandbox/sandboxLane';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from '../unit/support/laneContext';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const root = process.cwd();
const scriptedAgent = resolve(root, 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'bench@example.com' };
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };
const TASK = 'Add a greeting function and a test';
const TASKS = ['node --test test/', 'node test/greeting.test.js'];
const LANES_YAML = `tasks:\n${TASKS.map((command, i) => `  - id: t${i}\n    command: ${command}\n    test: true\n`).join('')}`;

const run = (cwd: string, command: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }).trim();
const git = (cwd: string, ...args: string[]) => run(cwd, 'git', args);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `podman run -d` as the sandbox's direct path does (network none, the worktree the only mount), then the tasks. */
function containerTasks(path: string, expectFail: boolean): string {
  const target = `/workspaces/${path.split('/').pop()!}`;
  const id = run(path, 'podman', [
    'run',
    '-d',
    '--network=none',
    `--mount=type=bind,source=${path},target=${target}`,
    '--security-opt=label=disable',
    '--entrypoint=/bin/sh',
    IMAGE,
    '-c',
    'while sleep 1 & wait $!; do :; done',
  ]);
  for (const command of TASKS) {
    try {
      run(path, 'podman', ['exec', '--workdir', target, id, '/bin/sh', '-c', command]);
      if (expectFail) throw new Error(`${command} passed on the base`);
    } catch (error) {
      if (!expectFail) throw error;
    }
  }
  return id;
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/build-sandbox-image.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-lane-bench-')));
  const repo = createSampleRepository(join(base, 'app'));
  mkdirSync(join(repo, '.lanes'));
  writeFileSync(join(repo, '.lanes', 'lanes.yaml'), LANES_YAML);
  git(repo, 'add', '-A');
  git(repo, '-c', 'user.name=b', '-c', 'user.email=b@example.invalid', 'commit', '-q', '-m', 'Declare the sandbox tasks');
  const baseSha = git(repo, 'rev-parse', 'HEAD');
  const ctx = await createLaneContext(base, repo, { logger: { debug() {}, info() {}, warn() {}, error() {} } as never });
  const draft = new DraftLane(ctx);
  const sandbox = new SandboxLane(ctx, { settings: { engine: 'podman', defaultImage: IMAGE, extensionRoot: root }, upTimeoutMs: 120_000 });
  const ours: number[] = [];
  const byHand: number[] = [];
  const changeIds: string[] = [];
  const containers: string[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      // Ours: the whole lane run.
      const startOurs = performance.now();
      const { change } = await draft.start({ task: TASK, agent: { kind: 'cli', config: agent }, actor: user, createdBy: user.id });
      changeIds.push(change.id);
      const drafted = await draft.runAgent(change.id, agent, user);
      if (drafted.outcome !== 'committed') throw new Error(`the agent did not commit: ${drafted.message}`);
      const outcome = await sandbox.run(change.id, user, {});
      if (outcome.change.lane !== 'review') throw new Error(`the change did not reach Review: ${outcome.message}`);
      const oursMs = performance.now() - startOurs;
      await sandbox.removeContainers(change.id);

      // By hand: the same steps.
      const startHand = performance.now();
      const path = join(base, 'hand', `h${i}`);
      git(repo, 'worktree', 'add', '-q', '-b', `hand/h${i}`, path, baseSha);
      const prompt = join(base, `prompt-${i}.md`);
      writeFileSync(prompt, TASK);
      run(path, process.execPath, [scriptedAgent, prompt], { ...process.env, LANES_EVIDENCE_FILE: join(base, `evidence-${i}.json`) });
      git(path, 'add', '-A');
      git(path, '-c', 'user.name=b', '-c', 'user.email=b@example.invalid', 'commit', '-q', '-m', TASK);
      const head = git(path, 'rev-parse', 'HEAD');
      containers.push(containerTasks(path, false));
      const basePath = join(base, 'hand-base', `h${i}`, `h${i}`);
      git(repo, 'worktree', 'add', '-q', '--detach', basePath, baseSha);
      git(basePath, 'checkout', head, '--', 'test/greeting.test.js');
      const baseContainer = containerTasks(basePath, true);
      run(base, 'podman', ['rm', '-f', '-t', '0', baseContainer]);
      git(repo, 'worktree', 'remove', '--force', basePath);
      const handMs = performance.now() - startHand;
      // The first round of each warms caches (the image, node): not counted.
      if (i > 0) {
        ours.push(oursMs);
        byHand.push(handMs);
      }
    }
    const round = (value: number) => Math.round(value * 1000) / 1000;
    console.error(`lane bench: lane run ${median(ours).toFixed(0)} ms vs by hand ${median(byHand).toFixed(0)} ms`);
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'lane.endToEndRatio': round(median(ours) / median(byHand)),
        'lane.endToEndMs': Math.round(median(ours)),
        'lane.byHandMs': Math.round(median(byHand)),
      })}`,
    );
  } finally {
    for (const id of changeIds) await sandbox.removeContainers(id).catch(() => undefined);
    if (containers.length) execFileSync('podman', ['rm', '-f', '-t', '0', ...containers], { stdio: 'ignore' });
    sandbox.dispose();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
