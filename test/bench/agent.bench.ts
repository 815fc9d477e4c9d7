// Agent boundary benchmarks (the isolation every CLI agent runs in), against baselines in the same run:
//   agent.isolationOverheadRatio.process    a trivial agent (`sh -c 'echo hi'`) spawned with the process boundary's
//                                           command ÷ the same command under a plain
//                                           `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-net --unshare-pid --die-with-parent`
//                                           (the boundary opened once; spawn to exit only; medians of 21 alternating rounds)
//   agent.isolationOverheadRatio            the same figure (process is the backend the default policy tries first)
//   agent.isolationOverheadRatio.container  the trivial agent through the container boundary's command (`podman exec` into
//                                           the container its first canary() started) ÷ `podman exec <a container started
//                                           here from the same image> sh -c 'echo hi'` (medians of 21 alternating rounds)
//   agent.canaryMs                          canary() wall time, process backend (median of 15, after one unmeasured run)
//   agent.canaryMs.container                canary() wall time in the already started container (median of 15, after the
//                                           first canary(), which starts the container and is counted in coldStartMs)
//   agent.coldStartMs                       container backend, from no container to the trivial agent's first stdout line:
//                                           openBoundary() + canary() + spawn (median of 5; close() after each, not timed)
//   agent.coldStartMs.process               the same for the process backend (median of 5)
// A backend whose tool (bwrap, podman, the image) is missing is skipped with the reason on stderr and reports nothing.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { AgentIsolationBackend } from '../../src/core/draft/agentIsolation';
import { type BoundarySpec, type OpenedBoundary, openBoundary, probeProcessBackend } from '../../src/infra/draft/boundary/agentBoundary';

type BoundaryCommand = OpenedBoundary['command'];
import { createWorktree } from '../../src/infra/git/worktrees';
import { type ContainerEngine, detectEngine } from '../../src/infra/sandbox/engine';
import { detectProcessSandbox } from '../../src/infra/sandbox/processSandbox';
import { createSampleRepository } from '../runners/fixtures.mjs';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const AGENT = ['sh', '-c', 'echo hi'];
const OVERHEAD_ROUNDS = 21;
const CANARY_ROUNDS = 15;
const COLD_ROUNDS = 5;
const ENV = { PATH: process.env.PATH!, HOME: '/tmp' };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const ms = (values: number[]) => values.map((value) => value.toFixed(0)).join(', ');
const ratio = (value: number) => Number(value.toFixed(3));

/** Runs a command to its end, as the host runs the agent (no stdin, a clean environment); fails unless it printed `hi`. */
async function spawnToExit(command: BoundaryCommand): Promise<number> {
  const start = performance.now();
  const result = await execa(command.file, command.args, {
    cwd: command.cwd,
    env: command.env,
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
  });
  const elapsed = performance.now() - start;
  if (result.exitCode !== 0 || result.stdout.trim() !== 'hi')
    throw new Error(`${command.file} ${command.args.slice(0, 4).join(' ')} …: exit ${result.exitCode}: ${result.stderr.trim()}`);
  return elapsed;
}

/** Spawns the command and resolves at its first stdout line; the process is awaited after that (not timed). */
async function untilFirstLine(command: BoundaryCommand): Promise<{ line: string; ended: Promise<unknown> }> {
  const subprocess = execa(command.file, command.args, {
    cwd: command.cwd,
    env: command.env,
    extendEnv: false,
    stdin: 'ignore',
    buffer: false,
    reject: false,
  });
  const lines = createInterface({ input: subprocess.stdout, crlfDelay: Infinity });
  const line = await new Promise<string>((done, fail) => {
    lines.once('line', done);
    lines.once('close', () => fail(new Error(`${command.file}: no output line`)));
  });
  return { line, ended: subprocess.then(() => lines.close()) };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'lanes-bench-agent-'));
  console.error(`scratch repository in ${scratch}`);
  const repo = createSampleRepository(join(scratch, 'repo'));
  const headSha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
  const changeId = randomBytes(4).toString('hex');
  const worktree = await createWorktree({
    repoRoot: repo,
    worktreesDir: join(scratch, 'worktrees'),
    changeId,
    slug: 'bench',
    baseSha: headSha,
  });
  const storage = join(scratch, 'storage');
  let runs = 0;
  const spec = (backend: AgentIsolationBackend, engine?: ContainerEngine): BoundarySpec => {
    const dir = join(storage, `run-${runs++}`);
    const ioDir = join(dir, 'agent-io');
    mkdirSync(ioDir, { recursive: true, mode: 0o700 });
    return {
      backend,
      changeId,
      repoRoot: repo,
      worktreePath: worktree.path,
      branch: worktree.branch,
      headSha,
      runDir: join(dir, 'agent-run'),
      ioDir,
      hiddenFolders: [storage],
      canaryFolders: [dir],
      argv: AGENT,
      env: { ...ENV },
      allow: [],
      limits: { timeoutSeconds: 60 },
      image: IMAGE,
      engine,
    };
  };
  const results: Record<string, number> = {};
  const cleanups: (() => Promise<unknown>)[] = [];

  try {
    // Process backend: bubblewrap.
    const processProbe = await probeProcessBackend();
    const detection = await detectProcessSandbox();
    if (!processProbe.available || !detection.available) {
      console.error(
        `process backend skipped: ${processProbe.available ? (detection as { message: string }).message : processProbe.message}`,
      );
    } else {
      const boundary = await openBoundary(spec('process'));
      cleanups.push(() => boundary.close());
      const plain: BoundaryCommand = {
        file: detection.bwrap,
        args: ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-net', '--unshare-pid', '--die-with-parent', ...AGENT],
        env: { ...ENV },
        cwd: worktree.path,
      };
      console.error(`process boundary: ${boundary.command.args.length} arguments: ${boundary.command.args.join(' ')}`);
      // One of each unmeasured: the page cache and bwrap's first start.
      await spawnToExit(plain);
      await spawnToExit(boundary.command);
      const ours: number[] = [];
      const base: number[] = [];
      for (let round = 0; round < OVERHEAD_ROUNDS; round++) {
        // Alternate which goes first, so neither always gets the warmer cache.
        if (round % 2 === 0) {
          base.push(await spawnToExit(plain));
          ours.push(await spawnToExit(boundary.command));
        } else {
          ours.push(await spawnToExit(boundary.command));
          base.push(await spawnToExit(plain));
        }
      }
      console.error(`process spawn: boundary ${ms(ours)} ms; plain bwrap ${ms(base)} ms`);
      results['agent.isolationOverheadRatio'] = ratio(median(ours) / median(base));
      results['agent.isolationOverheadRatio.process'] = results['agent.isolationOverheadRatio'];

      const canary: number[] = [];
      await boundary.canary();
      for (let round = 0; round < CANARY_ROUNDS; round++) {
        const start = performance.now();
        const { probes } = await boundary.canary();
        canary.push(performance.now() - start);
        const escaped = probes.filter((probe) => probe.outcome === 'escaped');
        if (escaped.length) throw new Error(`the canary escaped the process boundary: ${JSON.stringify(escaped)}`);
      }
      console.error(`process canary: ${ms(canary)} ms`);
      results['agent.canaryMs'] = Math.round(median(canary));
      await boundary.close();

      const cold: number[] = [];
      for (let round = 0; round < COLD_ROUNDS; round++) {
        const start = performance.now();
        const opened = await openBoundary(spec('process'));
        await opened.canary();
        const first = await untilFirstLine(opened.command);
        cold.push(performance.now() - start);
        await first.ended;
        await opened.close();
        if (first.line !== 'hi') throw new Error(`the agent printed ${JSON.stringify(first.line)}`);
      }
      console.error(`process cold start: ${ms(cold)} ms`);
      results['agent.coldStartMs.process'] = Math.round(median(cold));
    }

    // Container backend: podman.
    const engineDetection = await detectEngine('podman');
    const image = engineDetection.found
      ? await execa(engineDetection.engine.path, ['image', 'exists', IMAGE], { reject: false })
      : undefined;
    if (!engineDetection.found) {
      console.error(`container backend skipped: ${engineDetection.message}`);
    } else if (image?.exitCode !== 0) {
      console.error(`container backend skipped: the image ${IMAGE} is not on this machine (scripts/build-sandbox-image.sh builds it)`);
    } else {
      const engine = engineDetection.engine;
      const plainName = `agent-lanes-bench-plain-${changeId}`;
      cleanups.push(() => execa(engine.path, ['rm', '--force', '--time', '0', plainName], { reject: false }));
      await execa(engine.path, ['run', '--detach', '--name', plainName, '--network', 'none', '--entrypoint', 'sleep', IMAGE, 'infinity']);
      const boundary = await openBoundary(spec('container', engine));
      cleanups.push(() => boundary.close());
      // The engine client gets the same environment on both sides: only the arguments differ.
      const plain: BoundaryCommand = {
        file: engine.path,
        args: ['exec', plainName, ...AGENT],
        env: boundary.command.env,
        cwd: worktree.path,
      };
      const firstCanary = performance.now();
      await boundary.canary();
      console.error(`container: first canary() (starts the container) ${(performance.now() - firstCanary).toFixed(0)} ms`);
      console.error(`container boundary: ${boundary.command.file} ${boundary.command.args.join(' ')}`);
      await spawnToExit(plain);
      await spawnToExit(boundary.command);
      const ours: number[] = [];
      const base: number[] = [];
      for (let round = 0; round < OVERHEAD_ROUNDS; round++) {
        if (round % 2 === 0) {
          base.push(await spawnToExit(plain));
          ours.push(await spawnToExit(boundary.command));
        } else {
          ours.push(await spawnToExit(boundary.command));
          base.push(await spawnToExit(plain));
        }
      }
      console.error(`container spawn: boundary ${ms(ours)} ms; plain podman exec ${ms(base)} ms`);
      results['agent.isolationOverheadRatio.container'] = ratio(median(ours) / median(base));

      const canary: number[] = [];
      for (let round = 0; round < CANARY_ROUNDS; round++) {
        const start = performance.now();
        const { probes } = await boundary.canary();
        canary.push(performance.now() - start);
        const escaped = probes.filter((probe) => probe.outcome === 'escaped');
        if (escaped.length) throw new Error(`the canary escaped the container boundary: ${JSON.stringify(escaped)}`);
      }
      console.error(`container canary (warm): ${ms(canary)} ms`);
      results['agent.canaryMs.container'] = Math.round(median(canary));
      await boundary.close();

      const cold: number[] = [];
      for (let round = 0; round < COLD_ROUNDS; round++) {
        const start = performance.now();
        const opened = await openBoundary(spec('container', engine));
        try {
          await opened.canary();
          const first = await untilFirstLine(opened.command);
          cold.push(performance.now() - start);
          await first.ended;
          if (first.line !== 'hi') throw new Error(`the agent printed ${JSON.stringify(first.line)}`);
        } finally {
          await opened.close();
        }
      }
      console.error(`container cold start: ${ms(cold)} ms`);
      results['agent.coldStartMs'] = Math.round(median(cold));
    }

    console.log(`BENCH_RESULT ${JSON.stringify(results)}`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
