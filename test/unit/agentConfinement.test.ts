import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';

const fixtures = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents');
const hostileScript = join(fixtures, 'hostile-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** Every file of the repository, .git included, less what the lane itself keeps there (its worktree, branches and new objects). */
function snapshotRepository(repo: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const rel = relative(repo, path);
      if (/^\.git\/(worktrees|refs\/heads\/lanes|logs\/refs\/heads\/lanes)(\/|$)/.test(rel)) continue;
      const info = lstatSync(path);
      if (info.isDirectory()) {
        files.set(`${rel}/`, String(info.mode));
        walk(path);
      } else if (info.isSymbolicLink()) files.set(rel, `link:${readlinkSync(path)}`);
      else files.set(rel, `${info.mode}:${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    }
  };
  walk(repo);
  return files;
}

function compareSnapshots(before: Map<string, string>, after: Map<string, string>): string[] {
  const differences: string[] = [];
  for (const [path, digest] of after) {
    if (!before.has(path)) {
      // New objects are the lane's own commit; everything else new is a write.
      if (!/^\.git\/objects\//.test(path)) differences.push(`${path} appeared`);
    } else if (before.get(path) !== digest && !/^\.git\/objects\/$/.test(path) && !/^\.git\/objects\/[0-9a-f]{2}\/$/.test(path))
      differences.push(`${path} changed`);
  }
  for (const path of before.keys()) if (!after.has(path)) differences.push(`${path} disappeared`);
  return differences;
}

async function servePolicy(yaml: string): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/yaml' });
    response.end(yaml);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/policy.yaml`, server };
}

const orgPolicy = (agentSection: string) =>
  `apiVersion: agentlanes.dev/v1\nmetadata: { id: confinement-test, version: "1" }\nlanes:\n  agent:\n${agentSection}\n`;

interface Setup {
  ctx: LaneContext;
  lane: DraftLane;
  repo: string;
  home: string;
  close(): Promise<void>;
}

/**
 * A repository with a remote, a fake home folder with a private key, and
 * tokens in the editor's environment — everything a hostile agent would go for.
 */
async function setup(options: { policy?: string } = {}): Promise<Setup> {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-confine-')));
  const repo = createSampleRepository(join(base, 'app'));
  execFileSync('git', ['init', '-q', '--bare', join(base, 'remote.git')]);
  git(repo, 'remote', 'add', 'origin', join(base, 'remote.git'));
  writeFileSync(join(repo, '.gitignore'), '.env\n');
  writeFileSync(join(repo, '.env'), 'API_TOKEN=kept-out-of-git\n');
  const home = join(base, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, '.ssh', 'id_ed25519'), 'fake private key of the test user\n', { mode: 0o600 });
  writeFileSync(join(home, '.gitconfig'), '[user]\n\temail = dev@example.com\n');
  const saved = {
    HOME: process.env.HOME,
    GITHUB_TOKEN: process.env.GITHUB_TOKEN,
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
  };
  process.env.HOME = home;
  process.env.GITHUB_TOKEN = `ghp_${'Q7'.repeat(18)}`;
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  const served = options.policy ? await servePolicy(options.policy) : undefined;
  const ctx = await createLaneContext(base, repo, served ? { policySettings: { endpoint: served.url } } : {});
  if (served) await ctx.policy.start();
  return {
    ctx,
    lane: new DraftLane(ctx, { boundarySettings: () => ({ engine: 'podman', defaultImage: 'localhost/agent-lanes-sandbox:test' }) }),
    repo,
    home,
    async close() {
      served?.server.close();
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    },
  };
}

function hostileAgent(spec: Record<string, unknown>, extra: Partial<AgentConfig> = {}): AgentConfig {
  return {
    id: 'hostile',
    label: 'Hostile agent',
    command: [process.execPath, hostileScript],
    env: { HOSTILE_SPEC: JSON.stringify(spec) },
    ...extra,
  };
}

const wait = (ms: number) => new Promise((done) => setTimeout(done, ms));

function processesWith(marker: string): string[] {
  const found = spawnSync('pgrep', ['-af', marker], { encoding: 'utf8' });
  return found.stdout.split('\n').filter((line) => line.includes(marker) && !line.includes('pgrep'));
}

describe('Agent confinement: a hostile agent in the process boundary (real bubblewrap)', function () {
  this.timeout(120_000);
  let env: Setup;
  let hostServer: Server;
  let hostPort: number;
  before(async () => {
    hostServer = createServer((_request, response) => response.end('the host answered'));
    await new Promise<void>((done) => hostServer.listen(0, '0.0.0.0', () => done()));
    hostPort = (hostServer.address() as { port: number }).port;
  });
  after(() => hostServer.close());
  afterEach(async () => env?.close());

  it('refuses every escape, keeps the checkout and its whole .git byte-identical, and records the verified boundary', async () => {
    env = await setup();
    const { ctx, lane, repo, home } = env;
    const before = snapshotRepository(repo);
    const marker = `lanes-linger-${Date.now()}`;
    const agent = hostileAgent({
      repo,
      homeFiles: [join(home, '.ssh', 'id_ed25519'), join(home, '.gitconfig')],
      envNames: ['GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AGENT_LANES_ENVIRONMENT_CANARY'],
      connect: [{ host: '127.0.0.1', port: hostPort }],
      linger: marker,
    });
    const { change } = await lane.start({ task: 'Try to escape', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);

    const results = JSON.parse(readFileSync(join(change.worktreePath, 'hostile-results.json'), 'utf8')) as Record<
      string,
      { ok: boolean; detail: string }
    >;
    const escaped = Object.entries(results)
      .filter(
        ([name, result]) =>
          result.ok &&
          !/^git(Status|Log|Commit|ConfigHooksPath|InfoAttributes|BranchMove)$/.test(name) &&
          name !== 'setsid' &&
          name !== 'doubleFork',
      )
      .map(([name, result]) => `${name}: ${result.detail}`);
    assert.deepEqual(escaped, [], 'nothing outside the boundary was reached');
    // The agent's own git works, inside its own repository.
    for (const name of ['gitStatus', 'gitLog', 'gitCommit', 'gitConfigHooksPath', 'gitInfoAttributes'])
      assert.equal(results[name]?.ok, true, `${name} works in the agent's own git: ${results[name]?.detail}`);
    assert.ok(!results.gitInfoAttributes!.detail.startsWith(repo), "the agent's git directory is not the user's");

    assert.deepEqual(compareSnapshots(before, snapshotRepository(repo)), [], "the user's checkout and .git are byte-identical");
    assert.equal(git(repo, 'for-each-ref', 'refs/heads/pwned', 'refs/tags/v-hostile'), '');
    // Only the tree is imported: one lane commit on the base, never the agent's own commits.
    assert.equal(git(repo, 'rev-list', '--count', `${change.baseSha}..${change.branch}`), '1');
    assert.equal(git(repo, 'show', `${change.branch}:agent-commit.txt`), 'committed by the agent');

    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    const isolation = evidence.evidence.isolation!;
    assert.equal(isolation.backend, 'process');
    assert.equal(isolation.verified, true);
    assert.match(isolation.sandbox ?? '', /bubblewrap/);
    assert.deepEqual(
      isolation.probes.map((probe) => probe.name),
      ['writeOutside', 'readHome', 'editorEnvironment', 'connectHost', 'proxyRefuses', 'push'],
    );
    assert.ok(
      isolation.probes.every((probe) => probe.outcome !== 'escaped'),
      JSON.stringify(isolation.probes),
    );
    assert.equal(isolation.probes.find((probe) => probe.name === 'readHome')?.outcome, 'refused', 'the home folder had files to try');
    assert.ok(!evidence.evidence.flags.some((flag) => flag.kind === 'unconfined'));

    // What it started to outlive the run died with the boundary.
    await wait(4_000);
    assert.deepEqual(processesWith(marker), [], 'no process of the agent survives the run');
    assert.equal(existsSync(join(change.worktreePath, 'late-setsid.txt')), false);
    assert.equal(existsSync(join(change.worktreePath, 'late-fork.txt')), false);

    await ctx.audit.flush();
    const events = readFileSync(ctx.storage.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { action: string; details: Record<string, unknown> });
    assert.equal(events.find((event) => event.action === 'agent.start')?.details.isolation, 'process');
    assert.ok(events.some((event) => event.action === 'agent.isolation'));
    const stop = events.find((event) => event.action === 'agent.stop');
    assert.deepEqual((stop?.details.isolation as { verified: boolean }).verified, true);
  });

  it('stops an agent that fills the disk at the policy limit', async () => {
    env = await setup({ policy: orgPolicy('    limits: { diskMb: 20 }') });
    const { ctx, lane } = env;
    const agent = hostileAgent({ diskMb: 200 });
    const { change } = await lane.start({ task: 'Fill the disk', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'failed', outcome.message);
    assert.match(outcome.message, /disk limit of 20 MB/);
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    assert.match(evidence.evidence.isolation?.stoppedFor ?? '', /lanes\.agent\.limits\.diskMb/);
  });

  it('stops an agent past the memory limit, and one past the process limit (measured on its process tree)', async () => {
    env = await setup({ policy: orgPolicy('    limits: { memoryMb: 96, pids: 16, cpus: 1 }') });
    const { ctx, lane } = env;
    for (const [spec, expected] of [
      [{ allocMb: 400 }, /memory limit of 96 MB/],
      [{ forkCount: 40 }, /process limit of 16/],
    ] as const) {
      const agent = hostileAgent(spec);
      const { change } = await lane.start({ task: 'Exhaust', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
      const outcome = await lane.runAgent(change.id, agent, user);
      assert.equal(outcome.outcome, 'failed', outcome.message);
      assert.match(outcome.message, expected);
      const evidence = await ctx.evidence.read(change.id);
      assert.ok(evidence.kind === 'ok');
      assert.match(evidence.evidence.isolation?.stoppedFor ?? '', expected);
      assert.deepEqual(evidence.evidence.isolation?.notEnforced, ['cpus'], 'the CPU limit is the one a process boundary cannot hold');
    }
  });

  it('a private key the agent prints is cut whole from its streamed output and its log', async () => {
    env = await setup();
    const { ctx, lane } = env;
    const agent = hostileAgent({ printKey: true });
    const { change } = await lane.start({ task: 'Print a key', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const lines: string[] = [];
    await lane.runAgent(change.id, agent, user, { onLine: (line) => lines.push(line) });
    const log = readFileSync(join(ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
    for (const text of [lines.join('\n'), log]) {
      assert.doesNotMatch(text, /MIIEow/, 'no line of the key body');
      assert.doesNotMatch(text, /BEGIN RSA PRIVATE KEY/);
      assert.match(text, /REDACTED:privateKeyBlock/);
    }
  });

  it('runs unconfined only where policy names host, and then flags it', async () => {
    env = await setup({ policy: orgPolicy('    isolation: [host]') });
    const { ctx, lane, repo } = env;
    const agent = hostileAgent({ checkoutOnly: repo });
    const { change } = await lane.start({ task: 'On the host', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    await lane.runAgent(change.id, agent, user);
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    assert.equal(evidence.evidence.isolation?.backend, 'host');
    assert.equal(evidence.evidence.isolation?.verified, false);
    const kinds = evidence.evidence.flags.map((flag) => flag.kind);
    assert.ok(kinds.includes('unconfined'), kinds.join(', '));
    // Without a boundary the checkout guard is what is left: it sees the write.
    assert.ok(kinds.includes('checkoutTouched'), kinds.join(', '));
    assert.match(ctx.store.get(change.id)?.alerts?.[0] ?? '', /Your checkout changed while the agent ran/);
  });

  it('refuses a user setting that asks for the host when policy does not allow it, and runs nothing', async () => {
    env = await setup();
    const { ctx, lane, repo } = env;
    const agent = hostileAgent({ repo }, { isolation: 'host' });
    const { change } = await lane.start({ task: 'Ask for host', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    await assert.rejects(lane.runAgent(change.id, agent, user), /"host" isolation, which policy does not allow/);
    assert.equal(readFileSync(join(repo, 'README.md'), 'utf8').includes('hostile'), false);
    assert.notEqual(ctx.store.get(change.id)?.agentRun?.state, 'running');
  });
});

describe('Agent confinement: a hostile agent in the container boundary (real podman)', function () {
  this.timeout(180_000);
  let env: Setup;
  afterEach(async () => env?.close());

  it('refuses every escape and keeps the checkout and .git byte-identical; nothing of the container is left', async function () {
    if (spawnSync('podman', ['image', 'exists', 'localhost/agent-lanes-sandbox:test']).status !== 0) this.skip();
    env = await setup({ policy: orgPolicy('    isolation: [container]\n    limits: { cpus: 1, memoryMb: 512, pids: 128 }') });
    const { ctx, lane, repo, home } = env;
    const before = snapshotRepository(repo);
    // The agent's program must be in the image: the hostile agent's source goes in as an argument.
    const agent = hostileAgent({
      repo,
      homeFiles: [join(home, '.ssh', 'id_ed25519')],
      envNames: ['GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'AGENT_LANES_ENVIRONMENT_CANARY'],
      connect: [{ host: '127.0.0.1', port: 22 }],
    });
    agent.command = ['node', '--input-type=module', '-e', readFileSync(hostileScript, 'utf8').replace(/^#!.*\n/, '')];
    const { change } = await lane.start({
      task: 'Escape the container',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const results = JSON.parse(readFileSync(join(change.worktreePath, 'hostile-results.json'), 'utf8')) as Record<
      string,
      { ok: boolean; detail: string }
    >;
    // Writes to the repository's path land in the container's private /tmp (where the test keeps the repository):
    // the host's copy, compared byte by byte below, is what counts for them.
    const escaped = Object.entries(results)
      .filter(([name, result]) => result.ok && !/^(git|checkout|ignoredFile|hook|config|ref|tag|attributes|exclude)/.test(name))
      .map(([name, result]) => `${name}: ${result.detail}`);
    assert.deepEqual(escaped, []);
    assert.deepEqual(compareSnapshots(before, snapshotRepository(repo)), [], "the user's checkout and .git are byte-identical");
    for (const name of ['gitStatus', 'gitLog', 'gitCommit'])
      assert.equal(results[name]?.ok, true, `${name} works in the agent's own git in the container: ${results[name]?.detail}`);
    assert.equal(git(repo, 'rev-list', '--count', `${change.baseSha}..${change.branch}`), '1', "the agent's own commits are not imported");
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    const isolation = evidence.evidence.isolation!;
    assert.equal(isolation.backend, 'container');
    assert.match(isolation.probes.find((probe) => probe.name === 'push')?.detail ?? '', /git push to your repository failed/);
    assert.equal(isolation.verified, true, JSON.stringify(isolation.probes));
    assert.equal(isolation.image, 'localhost/agent-lanes-sandbox:test');
    assert.match(isolation.imageDigest ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(isolation.limits, { cpus: 1, memoryMb: 512, pids: 128, timeoutSeconds: 1800 });
    const left = spawnSync('podman', ['ps', '--all', '--quiet', '--filter', `label=agent-lanes.change=${change.id}`], { encoding: 'utf8' });
    assert.equal(left.stdout.trim(), '', 'the container is removed after the run');
  });
});

describe('Agent confinement: egress only to the hosts policy allows (real bubblewrap, real proxy)', function () {
  this.timeout(120_000);
  let env: Setup;
  let allowedServer: Server;
  let port: number;
  before(async () => {
    allowedServer = createServer((_request, response) => response.end('allowed host'));
    await new Promise<void>((done) => allowedServer.listen(0, '127.0.0.1', () => done()));
    port = (allowedServer.address() as { port: number }).port;
  });
  after(() => allowedServer.close());
  afterEach(async () => env?.close());

  it('lets the agent reach an allowed host through the proxy, refuses the rest, and records each refusal', async () => {
    env = await setup({ policy: orgPolicy(`    network: { allow: ["127.0.0.1:${port}"] }`) });
    const { ctx, lane } = env;
    const agent = hostileAgent({
      proxyHosts: [`127.0.0.1:${port}`, 'exfiltrate.example:443', `localhost:${port}`],
      connect: [{ host: '127.0.0.1', port }],
    });
    const { change } = await lane.start({ task: 'Reach out', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const results = JSON.parse(readFileSync(join(change.worktreePath, 'hostile-results.json'), 'utf8')) as Record<
      string,
      { ok: boolean; detail: string }
    >;
    assert.equal(results[`proxy:127.0.0.1:${port}`]?.ok, true, 'the allowed host is reachable through the proxy');
    assert.equal(results['proxy:exfiltrate.example:443']?.detail, '403');
    assert.equal(results[`proxy:localhost:${port}`]?.detail, '403', 'a name is not the IP literal the policy lists');
    assert.equal(results[`connect:127.0.0.1:${port}`]?.ok, false, 'no way around the proxy');

    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    const network = evidence.evidence.isolation!.network;
    assert.deepEqual(network.allow, [`127.0.0.1:${port}`]);
    assert.deepEqual(
      network.refused.map((record) => `${record.host}:${record.port}`).sort(),
      ['exfiltrate.example:443', `localhost:${port}`],
      "the canary's own probe is not the agent's",
    );
    assert.equal(network.refusedTotal, 2);
    assert.equal(evidence.evidence.isolation!.probes.find((probe) => probe.name === 'proxyRefuses')?.outcome, 'refused');
    await ctx.audit.flush();
    const refusals = readFileSync(ctx.storage.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { action: string; details: { action?: string; subject?: string; at?: string } })
      .filter((event) => event.action === 'policy.decision' && event.details.action === 'agentEgress');
    assert.deepEqual(refusals.map((event) => event.details.subject).sort(), ['exfiltrate.example:443', `localhost:${port}`]);
    assert.ok(refusals.every((event) => typeof event.details.at === 'string'));
  });
});
