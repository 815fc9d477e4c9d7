import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Change } from '../../src/core/change';
import { verifyAuditFile } from '../../src/infra/audit/log';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { describeSandboxVerdict, SandboxInputError, SandboxLane, type SandboxSettings } from '../../src/infra/lanes/sandbox/sandboxLane';
import { PolicyService } from '../../src/infra/policy/policyService';
import { SandboxError } from '../../src/infra/sandbox/types';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const root = resolve(__dirname, '..', '..', '..');
const scriptedAgent = join(root, 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
const podman = (...args: string[]) => execFileSync('podman', args, { encoding: 'utf8' }).trim();
const containersOf = (changeId: string) =>
  podman('ps', '-a', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`).split('\n').filter(Boolean);

const LANES_YAML = `tasks:
  - id: unit
    command: node --test test/
    test: true
  - id: greeting
    command: node test/greeting.test.js
    test: true
`;

interface Fixture {
  ctx: LaneContext;
  draft: DraftLane;
  sandbox: SandboxLane;
  repo: string;
  policy: PolicyService;
}

const made: string[] = [];
const lanes: SandboxLane[] = [];

async function fixture(options: { lanesYaml?: string; settings?: Partial<SandboxSettings>; userPolicy?: unknown } = {}): Promise<Fixture> {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-sandbox-lane-')));
  made.push(base);
  const repo = createSampleRepository(join(base, 'app'));
  mkdirSync(join(repo, '.lanes'));
  writeFileSync(join(repo, '.lanes', 'lanes.yaml'), options.lanesYaml ?? LANES_YAML);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'Declare the sandbox tasks');
  const ctx = await createLaneContext(base, repo, { policySettings: options.userPolicy ? { user: options.userPolicy } : {} });
  const policy = ctx.policy;
  const sandbox = new SandboxLane(ctx, {
    settings: { engine: 'podman', defaultImage: IMAGE, extensionRoot: root, ...options.settings },
    upTimeoutMs: 120_000,
  });
  lanes.push(sandbox);
  return { ctx, draft: new DraftLane(ctx), sandbox, repo, policy };
}

async function drafted(f: Fixture, task = 'Add a greeting function and a test'): Promise<Change> {
  const { change } = await f.draft.start({ task, agent: { kind: 'cli', config: agent }, actor: user, createdBy: user.id });
  const outcome = await f.draft.runAgent(change.id, agent, user);
  assert.equal(outcome.outcome, 'committed', outcome.message);
  return outcome.change;
}

async function auditActions(f: Fixture, changeId: string): Promise<{ action: string; details: Record<string, unknown> }[]> {
  return readFileSync(f.ctx.storage.auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: Record<string, unknown> })
    .filter((event) => event.changeId === changeId);
}

describe('Sandbox lane service (real podman, real git)', function () {
  this.timeout(240_000);

  before(function () {
    this.timeout(600_000);
    execFileSync('bash', [join(root, 'scripts', 'build-sandbox-image.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  });

  after(async () => {
    for (const lane of lanes) {
      for (const change of (lane as unknown as { ctx: LaneContext }).ctx.store.all())
        await lane.removeContainers(change.id).catch(() => undefined);
      lane.dispose();
    }
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  it('promotes a draft to Sandbox, runs its tasks with the network off, runs the tests on the base and promotes to Review', async () => {
    const f = await fixture();
    const change = await drafted(f);
    const progress: string[] = [];
    const output: string[] = [];
    const outcome = await f.sandbox.run(change.id, user, {
      onProgress: (p) =>
        progress.push(p.kind === 'taskStarted' ? `start:${p.task.id}` : p.kind === 'promoted' ? `promoted:${p.to}` : p.kind),
      onTaskOutput: (id, text) => output.push(`${id}|${text}`),
    });
    assert.equal(outcome.verdict, 'passed', outcome.message);
    assert.equal(outcome.promoted, true, outcome.message);
    assert.equal(outcome.change.lane, 'review');
    assert.equal(outcome.isolation, 'container');
    assert.deepEqual(progress, [
      'promoted:sandbox',
      'preparing',
      'start:unit',
      'taskFinished',
      'start:greeting',
      'taskFinished',
      'baseRun',
      'promoted:review',
    ]);
    assert.ok(
      output.some((line) => line.startsWith('greeting|') && line.includes('greeting test passed')),
      'task output is streamed with its task id',
    );
    assert.ok(
      output.some((line) => line.startsWith('base:greeting|')),
      'the base run is streamed too',
    );

    const stored = f.ctx.store.get(change.id)!;
    assert.equal(stored.sandbox?.verdict, 'passed');
    assert.equal(stored.sandbox?.headSha, change.headSha);
    assert.deepEqual(stored.sandbox?.failedTasks, []);
    assert.deepEqual(
      stored.history.map((h) => `${h.from}>${h.to}`),
      ['draft>sandbox', 'sandbox>review'],
    );

    const read = await f.ctx.evidence.read(change.id);
    assert.equal(read.kind, 'ok');
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    const byId = new Map(evidence!.tasks.map((task) => [task.id, task]));
    assert.equal(byId.get('unit')?.outcome, 'passed');
    assert.equal(byId.get('unit')?.networkMode, 'none');
    assert.equal(byId.get('unit')?.image, IMAGE);
    assert.equal(byId.get('unit')?.counts?.format, 'node');
    // The change's new test runs against the base commit's other files, and fails there:
    // `node --test test/` included (it would pass on the bare base, which has no such test).
    assert.equal(byId.get('greeting')?.failsOnBase, true);
    assert.equal(byId.get('unit')?.failsOnBase, true);
    assert.deepEqual(byId.get('unit')?.baseFiles, [{ path: 'test/greeting.test.js', failsOnBase: true }], 'reported per test file');
    assert.equal(byId.get('greeting')?.baseFiles, undefined, 'a plain node script names no file');
    assert.deepEqual(evidence!.baseRun, { baseSha: change.baseSha, testFiles: ['test/greeting.test.js'], removedTestFiles: [] });
    assert.deepEqual(
      evidence!.flags.filter((flag) => flag.kind === 'testsDoNotExercise'),
      [],
    );
    assert.equal(evidence!.preparation?.networkMode, 'none');
    assert.equal(readFileSync(byId.get('greeting')!.logFile!, 'utf8').includes('greeting test passed'), true);

    const events = await auditActions(f, change.id);
    const actions = events.map((event) => event.action);
    assert.equal(actions.filter((a) => a === 'task.run').length, 4, actions.join(', '));
    assert.equal(actions.filter((a) => a === 'sandbox.prepare').length, 1);
    assert.deepEqual(
      events.filter((e) => e.action === 'lane.transition').map((e) => e.details.to),
      ['sandbox', 'review'],
    );
    const decided = events.filter((e) => e.action === 'policy.decision').map((e) => e.details.action);
    assert.deepEqual(decided.slice(-6), ['gate.draftToSandbox', 'runTask', 'runTask', 'runTask', 'runTask', 'gate.sandboxToReview']);
    const unitRun = events.find((e) => e.action === 'task.run' && e.details.id === 'unit')!;
    assert.deepEqual(Object.keys(unitRun.details).sort(), [
      'durationMs',
      'exitCode',
      'id',
      'isolation',
      'logDigest',
      'networkMode',
      'outcome',
      'required',
    ]);
    assert.equal((await verifyAuditFile(f.ctx.storage.auditFile)).ok, true);
    assert.equal(describeSandboxVerdict(stored.sandbox), 'tasks passed');
    assert.equal(containersOf(change.id).length, 1, 'one container for the change; the base container is gone');
  });

  it('flags a change whose new test passes without it, naming the test file', async () => {
    const f = await fixture({ lanesYaml: 'tasks:\n  - id: unit\n    command: node --test test/\n    test: true\n' });
    const change = await drafted(
      f,
      [
        'Add a helper and a test that does not use it',
        '@write src/helper.js module.exports = () => 42;\\n',
        "@write test/trivial.test.js require('node:assert').ok(true);\\n",
      ].join('\n'),
    );
    const outcome = await f.sandbox.run(change.id, user);
    assert.equal(outcome.verdict, 'passed', outcome.message);
    const read = await f.ctx.evidence.read(change.id);
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    const unit = evidence!.tasks.find((task) => task.id === 'unit')!;
    assert.equal(unit.failsOnBase, false);
    assert.deepEqual(unit.baseFiles, [{ path: 'test/trivial.test.js', failsOnBase: false }]);
    assert.deepEqual(evidence!.baseRun?.testFiles, ['test/trivial.test.js']);
    assert.deepEqual(
      evidence!.flags.filter((flag) => flag.kind === 'testsDoNotExercise').map((flag) => flag.detail),
      [
        'The test task "unit" passes on the base commit too, with the change\'s test files (test/trivial.test.js): the change\'s tests do not fail without the change.',
      ],
    );
  });

  it("flags the agent's claim that the tests pass when the sandbox's test task fails", async () => {
    const f = await fixture({
      lanesYaml: 'tasks:\n  - id: unit\n    command: node --test test/\n    test: true\n    required: false\n',
    });
    const change = await drafted(
      f,
      [
        'Add a broken test and say all is well',
        "@write test/broken.test.js require('node:assert').equal(1, 2);\\n",
        '@summary Added a test. All tests pass.',
      ].join('\n'),
    );
    const outcome = await f.sandbox.run(change.id, user);
    assert.equal(outcome.verdict, 'passed', 'an optional task does not block: only the claim is wrong');
    const read = await f.ctx.evidence.read(change.id);
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    assert.equal(evidence!.tasks[0]!.outcome, 'failed');
    assert.deepEqual(
      evidence!.flags.filter((flag) => flag.kind === 'unbackedClaim').map((flag) => flag.detail),
      ['The agent says "All tests pass.", but the sandbox\'s unit (node --test test/): failed: the claim is not backed.'],
    );
    // The stop condition asks for a person's approval by default.
    const stored = f.ctx.store.get(change.id)!;
    assert.equal(stored.lane, 'review');
  });

  it('a failing required task keeps the change in Sandbox with the reason; an optional failure is shown, not blocking', async () => {
    const f = await fixture({
      lanesYaml:
        'tasks:\n  - id: unit\n    command: node --test test/\n  - id: must-pass\n    command: echo "boom"; exit 3\n  - id: style\n    command: exit 1\n    required: false\n',
    });
    const change = await drafted(f);
    const outcome = await f.sandbox.run(change.id, user);
    assert.equal(outcome.verdict, 'failed');
    assert.equal(outcome.promoted, false);
    assert.equal(outcome.change.lane, 'sandbox');
    assert.deepEqual(outcome.change.sandbox?.failedTasks, ['must-pass']);
    assert.match(outcome.change.sandbox?.message ?? '', /must-pass \(failed, exit 3\).*not required and failed: style/);
    assert.equal(describeSandboxVerdict(outcome.change.sandbox), 'must-pass failed');

    // Running again reuses the container and gives the same verdict.
    const [container] = containersOf(change.id);
    const again = await f.sandbox.run(change.id, user);
    assert.equal(again.verdict, 'failed');
    assert.deepEqual(containersOf(change.id), [container]);

    // The repository makes the task optional in a later base: it then passes with the optional failure shown.
    const relaxed = await fixture({
      lanesYaml: 'tasks:\n  - id: unit\n    command: node --test test/\n  - id: style\n    command: exit 1\n    required: false\n',
    });
    const second = await drafted(relaxed);
    const passed = await relaxed.sandbox.run(second.id, user);
    assert.equal(passed.verdict, 'passed', passed.message);
    assert.equal(passed.promoted, true);
    assert.equal(describeSandboxVerdict(passed.change.sandbox), 'tasks passed · style failed (not required)');
  });

  it('runs the tasks policy requires first, ignores a repository task that would replace one, and checks the kill switch before every task', async () => {
    const userPolicy = { lanes: { sandbox: { requiredTasks: [{ id: 'policy-check', command: 'echo from-policy' }] } } };
    const f = await fixture({
      userPolicy,
      lanesYaml:
        'tasks:\n  - id: policy-check\n    command: echo from-repository\n  - id: first\n    command: echo one\n  - id: second\n    command: echo two\n',
    });
    const change = await drafted(f);
    const outcome = await f.sandbox.run(change.id, user, {
      onProgress: (p) => {
        // The organisation pulls the kill switch while the first repository task runs.
        if (p.kind === 'taskFinished' && p.evidence.id === 'first')
          void f.policy.updateSettings({ user: { ...userPolicy, killSwitch: { disableSandbox: true } } });
      },
    });
    assert.deepEqual(
      outcome.tasks.map((t) => `${t.id}:${t.outcome}`),
      ['policy-check:passed', 'first:passed', 'second:skipped'],
    );
    assert.equal(outcome.tasks[0]!.command, 'echo from-policy');
    assert.match(outcome.tasks[2]!.message ?? '', /kill switch/);
    assert.equal(outcome.verdict, 'error');
    assert.equal(outcome.change.lane, 'sandbox');
    assert.match(outcome.preparation?.notes?.join('\n') ?? '', /task "policy-check" is ignored/);
    const events = await auditActions(f, change.id);
    assert.equal(events.filter((e) => e.action === 'task.run').length, 2, 'no side effect after the kill switch');
    assert.ok(events.some((e) => e.action === 'policy.decision' && e.details.action === 'runTask' && e.details.effect === 'block'));

    // While the switch is on, nothing starts.
    const blocked = await f.sandbox.run(change.id, user);
    assert.equal(blocked.verdict, 'error');
    assert.ok(blocked.tasks.every((t) => t.outcome === 'skipped'));
  });

  it('refuses a privileged devcontainer.json of the base before the change moves, and names the reason', async () => {
    const f = await fixture();
    mkdirSync(join(f.repo, '.devcontainer'));
    writeFileSync(join(f.repo, '.devcontainer', 'devcontainer.json'), `{ "image": "${IMAGE}", "runArgs": ["--privileged"] }\n`);
    git(f.repo, 'add', '-A');
    git(f.repo, 'commit', '-q', '-m', 'A privileged dev container');
    const change = await drafted(f);
    await assert.rejects(
      f.sandbox.run(change.id, user),
      (error: Error) => error instanceof SandboxError && error.kind === 'refused' && /privileged/.test(error.message),
    );
    assert.equal(f.ctx.store.get(change.id)!.lane, 'draft');
    assert.deepEqual(containersOf(change.id), []);
    const events = await auditActions(f, change.id);
    assert.ok(events.some((e) => e.action === 'sandbox.prepare' && e.details.outcome === 'refused'));
  });

  it('refuses a hostile Docker Compose file of the base before the change moves, naming the service and the field', async () => {
    const f = await fixture();
    mkdirSync(join(f.repo, '.devcontainer'));
    writeFileSync(join(f.repo, '.devcontainer', 'devcontainer.json'), `{ "dockerComposeFile": "docker-compose.yml", "service": "app" }\n`);
    writeFileSync(
      join(f.repo, '.devcontainer', 'docker-compose.yml'),
      `services:\n  app:\n    image: ${IMAGE}\n    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n  db:\n    image: ${IMAGE}\n    privileged: true\n`,
    );
    git(f.repo, 'add', '-A');
    git(f.repo, 'commit', '-q', '-m', 'A hostile Compose dev container');
    const change = await drafted(f);
    await assert.rejects(
      f.sandbox.run(change.id, user),
      (error: Error) =>
        error instanceof SandboxError &&
        error.kind === 'refused' &&
        /services\.app\.volumes\[0\]: \/var\/run\/docker\.sock/.test(error.message) &&
        /services\.db\.privileged: .*lanes\.sandbox\.devcontainer\.allowPrivileged/.test(error.message),
    );
    assert.equal(f.ctx.store.get(change.id)!.lane, 'draft');
    assert.deepEqual(containersOf(change.id), []);
    const events = await auditActions(f, change.id);
    assert.ok(events.some((e) => e.action === 'sandbox.prepare' && e.details.outcome === 'refused'));
  });

  it("says where a devcontainer.json of the base is broken, and records a missing image as the run's error", async () => {
    const broken = await fixture();
    mkdirSync(join(broken.repo, '.devcontainer'));
    writeFileSync(join(broken.repo, '.devcontainer', 'devcontainer.json'), `{\n  "image": "${IMAGE}"\n  "runArgs": []\n}\n`);
    git(broken.repo, 'add', '-A');
    git(broken.repo, 'commit', '-q', '-m', 'A broken dev container');
    const change = await drafted(broken);
    await assert.rejects(
      broken.sandbox.run(change.id, user),
      (error: Error) =>
        error instanceof SandboxError &&
        error.kind === 'configSyntax' &&
        /devcontainer\.json \(base [0-9a-f]{7}\) has a syntax error at line 3, column 3/.test(error.message),
    );
    assert.equal(broken.ctx.store.get(change.id)!.lane, 'draft');

    const missing = await fixture({ settings: { defaultImage: 'localhost/agent-lanes-no-such-image:1' } });
    const other = await drafted(missing);
    const outcome = await missing.sandbox.run(other.id, user);
    assert.equal(outcome.verdict, 'error');
    assert.equal(outcome.change.lane, 'sandbox');
    assert.match(outcome.change.sandbox?.message ?? '', /The image localhost\/agent-lanes-no-such-image:1 does not exist on this machine/);
    assert.ok(outcome.tasks.every((task) => task.outcome === 'skipped'));
    assert.equal(describeSandboxVerdict(outcome.change.sandbox), 'sandbox error');
    assert.deepEqual(containersOf(other.id), []);
  });

  it('refuses what cannot run: no commits, a dirty worktree, a second run at once, a bad lanes.yaml', async () => {
    const f = await fixture();
    const { change: empty } = await f.draft.start({
      task: 'Change nothing',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: user.id,
    });
    await assert.rejects(
      f.sandbox.run(empty.id, user),
      (error: Error) => error instanceof SandboxInputError && /no changes yet/.test(error.message),
    );

    const change = await drafted(f);
    writeFileSync(join(change.worktreePath, 'README.md'), 'edited by hand\n');
    await assert.rejects(
      f.sandbox.run(change.id, user),
      (error: Error) => error instanceof SandboxInputError && /uncommitted edits \(README\.md\).*Finish Draft/.test(error.message),
    );
    git(change.worktreePath, 'checkout', '--', 'README.md');
    const first = f.sandbox.run(change.id, user);
    await assert.rejects(
      f.sandbox.run(change.id, user),
      (error: Error) => error instanceof SandboxInputError && /already running/.test(error.message),
    );
    assert.equal((await first).verdict, 'passed');

    const bad = await fixture({ lanesYaml: 'tasks:\n  - id: unit\n    command: echo hi\n    timeoutSeconds: soon\n' });
    const badChange = await drafted(bad);
    await assert.rejects(
      bad.sandbox.run(badChange.id, user),
      (error: Error) =>
        error instanceof SandboxInputError && /lanes\.yaml \(base [0-9a-f]{7}\): tasks\[0\]\.timeoutSeconds \(line 4/.test(error.message),
    );
    assert.equal(bad.ctx.store.get(badChange.id)!.lane, 'draft');
  });

  it('kills a task at its time limit and stops a cancelled run in the container', async () => {
    const f = await fixture({
      lanesYaml:
        'tasks:\n  - id: hang\n    command: sleep 120\n    timeoutSeconds: 2\n  - id: long\n    command: echo started; sleep 120\n  - id: after\n    command: echo never\n',
    });
    const change = await drafted(f);
    const controller = new AbortController();
    const outcome = await f.sandbox.run(change.id, user, {
      signal: controller.signal,
      onTaskOutput: (id, text) => {
        if (id === 'long' && text.includes('started')) controller.abort();
      },
    });
    assert.deepEqual(
      outcome.tasks.map((t) => `${t.id}:${t.outcome}`),
      ['hang:timedOut', 'long:cancelled', 'after:skipped'],
    );
    assert.equal(outcome.verdict, 'error');
    assert.match(outcome.change.sandbox?.message ?? '', /^Cancelled/);
    assert.equal(describeSandboxVerdict(outcome.change.sandbox), 'sandbox cancelled');
    const [container] = containersOf(change.id);
    assert.equal(
      podman(
        'exec',
        container!,
        'sh',
        '-c',
        'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done | grep -c "^sleep 120" || true',
      ),
      '0',
      'nothing is left running in the container',
    );
  });

  it('removes the container when the change is discarded, and finds containers of closed changes as orphans', async () => {
    const f = await fixture({ lanesYaml: 'tasks:\n  - id: fail\n    command: exit 1\n' });
    const change = await drafted(f);
    await f.sandbox.run(change.id, user);
    assert.equal(containersOf(change.id).length, 1);
    await f.draft.discard(change.id, user);
    await f.sandbox.settled();
    assert.deepEqual(containersOf(change.id), []);
    const events = await auditActions(f, change.id);
    assert.ok(events.some((e) => e.action === 'cleanup' && e.details.sandbox === true && e.details.containersRemoved === 1));

    // A container of the closed change that survived (made here by hand) is an orphan.
    const leftover = podman(
      'run',
      '-d',
      '--network=none',
      '--label',
      `dev.agentlanes.change=${change.id}`,
      '--label',
      'dev.agentlanes.role=change',
      IMAGE,
      'sleep',
      '300',
    );
    const orphans = await f.sandbox.findOrphans();
    assert.deepEqual(
      orphans.map((o) => [o.container.id, o.changeId]),
      [[leftover, change.id]],
    );
    assert.match(orphans[0]!.reason, /discarded/);
    assert.equal(await f.sandbox.removeOrphans(orphans, user), 1);
    assert.deepEqual(containersOf(change.id), []);
  });

  it('without an engine: the process sandbox when policy allows it (labelled), else what to install', async () => {
    const f = await fixture({ settings: { engine: 'docker' } });
    const change = await drafted(f);
    const outcome = await f.sandbox.run(change.id, user);
    assert.equal(outcome.isolation, 'process');
    assert.ok(outcome.tasks.every((t) => t.isolation === 'process' && t.networkMode === 'none'));
    assert.match(outcome.notice ?? '', /process sandbox/);
    assert.match(outcome.preparation?.notes?.join('\n') ?? '', /lesser isolation/);

    const forbidden = await fixture({
      settings: { engine: 'docker' },
      userPolicy: { lanes: { sandbox: { processSandbox: 'forbidden' } } },
    });
    const other = await drafted(forbidden);
    await assert.rejects(
      forbidden.sandbox.run(other.id, user),
      (error: Error) => error instanceof SandboxError && error.kind === 'noSandbox' && /Install a container engine/.test(error.message),
    );
    assert.equal(forbidden.ctx.store.get(other.id)!.lane, 'draft');
  });
});
