import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CanaryProbe, chooseBackend, describeIsolation } from '../../src/core/draft/agentIsolation';
import { mergePolicies, type PolicyLayer } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject } from '../../src/core/policy/schema';
import { openHostBoundary, processStartTicks, runCanary } from '../../src/infra/draft/boundary/agentBoundary';
import { CANARY_IN_LAUNCHER, CANARY_THEN_AGENT, launcherArgv } from '../../src/infra/draft/boundary/egressLauncher';
import { type CanaryPlan, planCanary } from '../../src/infra/draft/boundary/canary';
import { egressSocketPath, startEgressProxy } from '../../src/infra/draft/boundary/egressProxy';
import { runAgent } from '../../src/infra/draft/agentRunner';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import { createWorktree } from '../../src/infra/git/worktrees';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';

const user = { type: 'user' as const, id: 'dev@example.com' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

function layer(level: PolicyLayer['level'], body: Record<string, unknown>): PolicyLayer {
  const result =
    level === 'org'
      ? parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '1' }, ...body }, 'org')
      : parseOverlayObject({ apiVersion: POLICY_API_VERSION, ...body }, level, { id: level, version: 'x' });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return { level, document: result.policy };
}

describe('agent isolation: choosing a backend', () => {
  const both = { process: { available: true as const }, container: { available: true as const } };

  it('takes the first backend policy allows that works here, never the host by default', () => {
    assert.deepEqual(chooseBackend(['process', 'container'], undefined, both), { ok: true, backend: 'process' });
    assert.deepEqual(chooseBackend(['process', 'container'], undefined, { ...both, process: { available: false, message: 'no bwrap' } }), {
      ok: true,
      backend: 'container',
    });
    assert.deepEqual(chooseBackend(['process', 'host'], undefined, { process: { available: false, message: 'no bwrap' } }).ok, false);
  });

  it('refuses with what to install when no backend works, rather than running on the host', () => {
    const choice = chooseBackend(['process', 'container'], undefined, {
      process: { available: false, message: 'bubblewrap (bwrap) is not on PATH. Install bubblewrap.' },
      container: { available: false, message: 'no container engine answers here; install podman' },
    });
    assert.equal(choice.ok, false);
    assert.match(!choice.ok ? choice.message : '', /nothing runs unconfined.*Install bubblewrap.*install podman/s);
  });

  it("honours the agent's own request only inside what policy allows", () => {
    assert.deepEqual(chooseBackend(['process', 'container'], 'container', both), { ok: true, backend: 'container' });
    const host = chooseBackend(['process', 'container'], 'host', both);
    assert.equal(host.ok, false);
    assert.match(!host.ok ? host.message : '', /"host" isolation, which policy does not allow/);
    assert.deepEqual(chooseBackend(['host'], undefined, {}), { ok: true, backend: 'host' });
  });

  it('lanes.agent only tightens across levels: backends and hosts intersect, limits take the smaller', () => {
    const effective = mergePolicies(layer('org', { lanes: { agent: { network: { allow: ['api.example.com', 'registry.npmjs.org'] } } } }), [
      layer('repository', {
        lanes: { agent: { isolation: ['container'], network: { allow: ['registry.npmjs.org', 'evil.example'] }, limits: { diskMb: 100 } } },
      }),
      layer('user', { lanes: { agent: { isolation: ['host'], limits: { diskMb: 500, memoryMb: 256 } } } }),
    ]);
    const agent = effective.policy.lanes.agent;
    assert.deepEqual(agent.isolation, ['container']);
    assert.deepEqual(agent.network.allow, ['registry.npmjs.org']);
    assert.equal(agent.limits.diskMb, 100);
    assert.equal(agent.limits.memoryMb, 256);
    const widened = effective.widenings.map((widening) => widening.field);
    assert.ok(widened.includes('lanes.agent.isolation'), widened.join(', '));
    assert.ok(widened.includes('lanes.agent.network.allow'));
    assert.ok(widened.includes('lanes.agent.limits.diskMb'));
    assert.deepEqual(mergePolicies(layer('org', {})).policy.lanes.agent.isolation, ['process', 'container']);
  });

  it('describes a verified boundary, refused connections and an unconfined run in one line', () => {
    const base = {
      verified: true,
      sandbox: 'bubblewrap 0.8.0',
      network: {
        allow: ['api.example.com'],
        refused: [{ host: 'evil.example', port: 443, at: '2026-12-04T10:00:00Z' }],
        refusedTotal: 1,
        allowedTotal: 3,
      },
      limits: { timeoutSeconds: 60 },
      notEnforced: [],
      probes: [],
    };
    assert.equal(
      describeIsolation({ ...base, backend: 'process' }),
      'isolation verified: process (bubblewrap 0.8.0) · egress only to api.example.com · 1 connection refused: evil.example:443',
    );
    assert.match(describeIsolation({ ...base, backend: 'host', verified: false }), /^unconfined/);
  });
});

describe('agent isolation: the canary and runs outside this window', function () {
  this.timeout(60_000);

  it('the canary run inside the egress launcher (one Node start) probes through the launcher and still catches a boundary that leaks', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-canary-launcher-')));
    const repo = createSampleRepository(join(base, 'app'));
    const proxy = await startEgressProxy({ allow: [], socketPath: egressSocketPath(randomBytes(6).toString('hex')) });
    try {
      // The launcher on the host with nothing around it: the probes must see the leaks, and the proxy the launcher set up.
      const { probes } = await runCanary(
        { backend: 'process', repoRoot: repo, canaryFolders: [base] } as Parameters<typeof runCanary>[0],
        (args) => ({
          file: process.execPath,
          args: launcherArgv(process.execPath, proxy.socketPath, [CANARY_IN_LAUNCHER, ...args]).slice(1),
          env: process.env as Record<string, string>,
          cwd: repo,
        }),
        true,
      );
      const outcome = Object.fromEntries(probes.map((probe) => [probe.name, probe.outcome]));
      assert.equal(outcome.writeOutside, 'escaped');
      assert.equal(outcome.editorEnvironment, 'escaped');
      assert.equal(outcome.proxyRefuses, 'refused', "the launcher's own proxy answered the canary in the same process (403)");
      assert.deepEqual(
        proxy.refusals().map((record) => record.host),
        ['lanes-canary.invalid'],
      );
      assert.equal(git(repo, 'status', '--porcelain'), '', 'the canary cleaned up what it managed to write');
    } finally {
      await proxy.close();
    }
  });

  it('a canary run without a boundary escapes, and the run is refused before the agent starts', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-canary-')));
    const repo = createSampleRepository(join(base, 'app'));
    const worktree = await createWorktree({
      repoRoot: repo,
      worktreesDir: join(base, 'worktrees'),
      changeId: 'c0ffee01',
      slug: 'canary',
      baseSha: git(repo, 'rev-parse', 'HEAD'),
    });
    const io = join(base, 'io');
    mkdirSync(io);
    const marker = join(base, 'agent-ran');
    const host = openHostBoundary(
      [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`],
      { PATH: process.env.PATH! },
      worktree.path,
    );
    const unconfined = {
      ...host,
      backend: 'process' as const,
      // The canary as the process boundary runs it, but with nothing around it: the host's node, the editor's environment.
      canary: () =>
        runCanary(
          { backend: 'process', repoRoot: repo, canaryFolders: [base] } as Parameters<typeof runCanary>[0],
          (args) => ({ file: process.execPath, args, env: process.env as Record<string, string>, cwd: worktree.path }),
          false,
        ),
    };
    const run = await runAgent({
      agent: { id: 'a', label: 'Agent', command: ['unused'] },
      changeId: 'c0ffee01',
      worktreePath: worktree.path,
      prompt: { task: 'anything', changeId: 'c0ffee01', baseRef: 'main', baseSha: git(repo, 'rev-parse', 'HEAD') },
      promptFile: join(io, 'prompt.md'),
      evidenceFile: join(io, 'report.json'),
      logFile: join(base, 'agent.log'),
      openBoundary: async () => unconfined,
    });
    assert.equal(run.outcome, 'refused');
    assert.match(run.message, /canary escaped the process boundary \(writeOutside: wrote .*\)/);
    assert.match(run.message, /editorEnvironment: saw AGENT_LANES_ENVIRONMENT_CANARY/);
    assert.equal(existsSync(marker), false, 'the agent never started');
    assert.equal(git(repo, 'status', '--porcelain'), '', 'the canary cleaned up what it managed to write');
  });

  it('the canary and the agent in one start: the launcher starts the agent only on the host\'s "go", and an escape kills it first', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-gated-')));
    const repo = createSampleRepository(join(base, 'app'));
    const worktree = await createWorktree({
      repoRoot: repo,
      worktreesDir: join(base, 'worktrees'),
      changeId: 'c0ffee02',
      slug: 'gated',
      baseSha: git(repo, 'rev-parse', 'HEAD'),
    });
    const io = join(base, 'io');
    mkdirSync(io);
    const proxy = await startEgressProxy({ allow: [], socketPath: egressSocketPath(randomBytes(6).toString('hex')) });
    const runWith = async (marker: string, verify: (report: string, plan: CanaryPlan) => Promise<CanaryProbe[]>) => {
      const agentArgv = [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, String(process.pid))`];
      const host = openHostBoundary(agentArgv, { PATH: process.env.PATH! }, worktree.path);
      // The launcher on the host with nothing around it (no bubblewrap): the canary escapes, as in a boundary that leaks.
      const gatedBoundary = {
        ...host,
        backend: 'process' as const,
        gatedCanary: async () => {
          const plan = await planCanary({ repoRoot: repo, outsideFolders: [base], home: base });
          const [, source = '', spec = ''] = plan.args;
          return {
            command: {
              file: process.execPath,
              args: launcherArgv(process.execPath, proxy.socketPath, [CANARY_THEN_AGENT, source, spec, ...agentArgv]).slice(1),
              env: process.env as Record<string, string>,
              cwd: worktree.path,
            },
            verify: (report: string) => verify(report, plan),
            close: () => plan.close(),
          };
        },
      };
      return runAgent({
        agent: { id: 'a', label: 'Agent', command: ['node'] },
        changeId: 'c0ffee02',
        worktreePath: worktree.path,
        prompt: { task: 'anything', changeId: 'c0ffee02', baseRef: 'main', baseSha: git(repo, 'rev-parse', 'HEAD') },
        promptFile: join(io, 'prompt.md'),
        evidenceFile: join(io, 'report.json'),
        logFile: join(base, 'agent.log'),
        openBoundary: async () => gatedBoundary,
      });
    };
    try {
      // What the canary reports from outside a boundary: escapes. The launcher is running and waiting; it must die.
      const escapedMarker = join(base, 'escaped-agent-ran');
      // The host takes its time to check: a launcher that did not wait for "go" would have started the agent by then.
      const refused = await runWith(escapedMarker, async (report, plan) => {
        await new Promise((done) => setTimeout(done, 1_000));
        return plan.verify(report);
      });
      assert.equal(refused.outcome, 'refused');
      assert.match(refused.message, /canary escaped the process boundary \(writeOutside: wrote /);
      assert.equal(existsSync(escapedMarker), false, 'the agent never started');
      assert.equal(git(repo, 'status', '--porcelain'), '', 'the canary cleaned up what it managed to write');

      // The same launcher, with a report the host accepts: the agent starts, from the launcher, after "go".
      const cleanMarker = join(base, 'clean-agent-ran');
      const clean = await runWith(cleanMarker, async (report, plan) =>
        (await plan.verify(report)).map((probe) => ({ ...probe, outcome: 'refused' as const })),
      );
      assert.equal(clean.outcome, 'succeeded', clean.message);
      assert.ok(existsSync(cleanMarker), 'the agent ran once the host said go');

      // A report that is not the canary's: refused, the agent never starts.
      const garbledMarker = join(base, 'garbled-agent-ran');
      const garbled = await runWith(garbledMarker, () => Promise.reject(new Error('the canary did not report')));
      assert.equal(garbled.outcome, 'refused');
      assert.equal(existsSync(garbledMarker), false);
    } finally {
      await proxy.close();
    }
  });

  it('"Stop Agent" stops a run this window did not start (a reload), and leaves a reused pid alone', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-stop-')));
    const repo = createSampleRepository(join(base, 'app'));
    const ctx = await createLaneContext(base, repo);
    const lane = new DraftLane(ctx);
    const agent = { id: 'none', label: 'None', command: ['true'] };
    const { change } = await lane.start({ task: 'Left running', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const orphan = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    orphan.unref();
    const ticks = await processStartTicks(orphan.pid!);
    await ctx.store.update(change.id, (c) => ({
      ...c,
      agentRun: {
        state: 'running',
        startedAt: new Date().toISOString(),
        boundary: { backend: 'process', pid: orphan.pid!, pidStartTicks: ticks! },
      },
    }));
    assert.equal(await lane.stopAgent(change.id, user), true);
    await new Promise((done) => setTimeout(done, 200));
    assert.equal(await processStartTicks(orphan.pid!), undefined, 'the left-over process group is gone');
    assert.equal(ctx.store.get(change.id)?.agentRun?.state, 'interrupted');
    await ctx.audit.flush();
    assert.match(readFileSync(ctx.storage.auditFile, 'utf8'), /"action":"agent\.interrupted".*process group \d+ stopped/);

    // A pid whose start time differs is someone else's process now.
    const bystander = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    bystander.unref();
    await ctx.store.update(change.id, (c) => ({
      ...c,
      agentRun: {
        state: 'running',
        startedAt: new Date().toISOString(),
        boundary: { backend: 'process', pid: bystander.pid!, pidStartTicks: '1' },
      },
    }));
    assert.equal(await lane.stopAgent(change.id, user), true);
    assert.notEqual(await processStartTicks(bystander.pid!), undefined, 'a reused pid is not signalled');
    process.kill(bystander.pid!, 'SIGKILL');
    assert.match(ctx.store.get(change.id)?.agentRun?.message ?? '', /had already ended/);
  });

  it('hands the agent its secrets by name only, and redacts their values from its output', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-secret-')));
    const repo = createSampleRepository(join(base, 'app'));
    const ctx = await createLaneContext(base, repo);
    const lane = new DraftLane(ctx);
    const secret = 'sk-test-Zq81vN2mLx0pR7tY';
    process.env.LANES_TEST_EDITOR_TOKEN = 'editor-token-never-for-agents';
    const agent = {
      id: 'printer',
      label: 'Printer',
      command: [
        process.execPath,
        '-e',
        "console.log('key=' + process.env.API_KEY + ' editor=' + process.env.LANES_TEST_EDITOR_TOKEN); require('fs').writeFileSync('out.txt', 'done')",
      ],
      secrets: ['API_KEY'],
    };
    const { change } = await lane.start({ task: 'Print', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const lines: string[] = [];
    const outcome = await lane.runAgent(change.id, agent, user, { secrets: { API_KEY: secret }, onLine: (line) => lines.push(line) });
    delete process.env.LANES_TEST_EDITOR_TOKEN;
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const printed = lines.find((line) => line.startsWith('key='));
    assert.ok(printed, lines.join('\n'));
    assert.doesNotMatch(printed, new RegExp(secret), 'the value is redacted from the stream');
    assert.match(printed, /key=\S*REDACTED/, 'the agent did get a value');
    assert.match(printed, /editor=undefined/, "the editor's environment is not the agent's");
    assert.doesNotMatch(readFileSync(join(ctx.storage.changeDir(change.id), 'agent.log'), 'utf8'), new RegExp(secret));
  });
});

describe('agent isolation: backends known per lane', function () {
  this.timeout(120_000);

  it('an agent asking for the container does not hide the process backend from the next agent', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-backends-')));
    const repo = createSampleRepository(join(base, 'app'));
    const ctx = await createLaneContext(base, repo);
    const lane = new DraftLane(ctx, { boundarySettings: () => ({ engine: 'podman', defaultImage: 'localhost/agent-lanes-sandbox:test' }) });
    const inContainer = {
      id: 'boxed',
      label: 'Boxed',
      isolation: 'container' as const,
      command: ['node', '-e', "require('fs').writeFileSync('a.txt', 'a')"],
    };
    const first = await lane.start({ task: 'In a container', agent: { kind: 'cli', config: inContainer }, actor: user, createdBy: 'dev' });
    const boxed = await lane.runAgent(first.change.id, inContainer, user);
    assert.equal(boxed.outcome, 'committed', boxed.message);
    assert.equal(boxed.run?.isolation?.backend, 'container');
    // Within the minute the answers are kept: the next agent, which asks for nothing, gets policy's first choice.
    const plain = { id: 'plain', label: 'Plain', command: [process.execPath, '-e', "require('fs').writeFileSync('b.txt', 'b')"] };
    const second = await lane.start({ task: 'Default', agent: { kind: 'cli', config: plain }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(second.change.id, plain, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    assert.equal(outcome.run?.isolation?.backend, 'process');
  });
});
