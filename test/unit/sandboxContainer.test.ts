import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PreparationEvidence, TaskEvidence } from '../../src/core/evidence';
import type { ResolvedTask } from '../../src/core/sandbox/lanesConfig';
import { ContainerSandbox, resolveDevcontainerCli } from '../../src/infra/sandbox/containerSandbox';
import { type ContainerEngine, detectEngine } from '../../src/infra/sandbox/engine';
import { runTaskSequence, sha256, type TaskSequenceOptions } from '../../src/infra/sandbox/taskRun';
import { type PrepareRequest, SandboxError } from '../../src/infra/sandbox/types';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';

function sh(cwd: string, command: string, args: string[]): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function task(id: string, command: string, extra: Partial<ResolvedTask> = {}): ResolvedTask {
  return { id, command, timeoutSeconds: 60, test: false, required: true, source: 'repository', ...extra };
}

function newId(): string {
  return randomBytes(4).toString('hex');
}

async function sandboxError(promise: Promise<unknown>): Promise<SandboxError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SandboxError, `expected a SandboxError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the sandbox to refuse');
}

describe('sandbox container (real podman)', function () {
  this.timeout(180_000);
  let root: string;
  let repo: string;
  let logDir: string;
  let engine: ContainerEngine;
  let sandbox: ContainerSandbox;
  const changeIds: string[] = [];

  /** A linked worktree of the test repository, as a change has. */
  function worktree(files: Record<string, string> = {}): { changeId: string; path: string } {
    const changeId = newId();
    changeIds.push(changeId);
    const path = join(root, 'worktrees', changeId);
    sh(repo, 'git', ['worktree', 'add', '-q', '-b', `lanes/${changeId}`, path, 'main']);
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(path, name, '..'), { recursive: true });
      writeFileSync(join(path, name), text);
    }
    return { changeId, path };
  }

  /** The lane's path: prepare the sandbox, then the one task runner. */
  async function run(
    changeId: string,
    path: string,
    tasks: ResolvedTask[],
    extra: Partial<Pick<PrepareRequest, 'source' | 'policy' | 'signal'> & Pick<TaskSequenceOptions, 'onTaskOutput' | 'onProgress'>> = {},
    target: ContainerSandbox = sandbox,
  ): Promise<{ preparation?: PreparationEvidence; tasks: TaskEvidence[] }> {
    const { source = { prepare: [] }, policy = {}, signal, onTaskOutput, onProgress } = extra;
    const prepared = await target.prepare({
      changeId,
      worktreePath: path,
      source,
      policy,
      logDir,
      signal,
      onOutput: onTaskOutput ? (text) => onTaskOutput('prepare', text) : undefined,
    });
    return {
      preparation: prepared.preparation,
      tasks: await runTaskSequence(prepared, tasks, { logDir, signal, onTaskOutput, onProgress }),
    };
  }

  async function containerOf(changeId: string): Promise<string> {
    const containers = (await sandbox.listSandboxContainers()).filter(
      (container) => container.changeId === changeId && container.role === 'change',
    );
    assert.equal(containers.length, 1, `one container for ${changeId}`);
    return containers[0]!.id;
  }

  before(async function () {
    this.timeout(600_000);
    const detection = await detectEngine('podman');
    assert.ok(detection.found, detection.found ? '' : detection.message);
    engine = detection.engine;
    // Builds the image from Debian packages the first time; skipped when it exists.
    execFileSync('bash', ['scripts/build-sandbox-image.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const cli = await resolveDevcontainerCli({ extensionRoot: process.cwd() });
    assert.ok('path' in cli, 'error' in cli ? cli.error : '');
    root = mkdtempSync(join(tmpdir(), 'lanes-sandbox-'));
    repo = join(root, 'repo');
    logDir = join(root, 'storage', 'logs');
    mkdirSync(repo);
    sh(repo, 'git', ['init', '-q', '-b', 'main']);
    writeFileSync(join(repo, 'README.md'), 'sample\n');
    writeFileSync(join(repo, 'check.sh'), 'test -f feature.txt && echo "  1 passing (1ms)" || { echo "  1 failing"; exit 1; }\n');
    sh(repo, 'git', ['add', '.']);
    sh(repo, 'git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', 'base']);
    sandbox = new ContainerSandbox({
      engine,
      devcontainerCli: cli.path,
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: IMAGE,
      upTimeoutMs: 120_000,
    });
  });

  after(async () => {
    for (const changeId of changeIds) await sandbox?.removeSandbox(changeId).catch(() => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('runs a passing task with the network off and records its evidence', async () => {
    const { changeId, path } = worktree();
    const output: string[] = [];
    // A worktree's .git file names the host repository's git folder, which is not mounted: tasks get no git.
    const command =
      'echo "  3 passing (5ms)"; echo "  1 pending"; pwd; id -un; test -e "$(sed "s/^gitdir: //" .git)" && echo GITDIR-VISIBLE || echo GITDIR-HIDDEN';
    const result = await run(changeId, path, [task('unit', command)], {
      onTaskOutput: (id, text) => output.push(`${id}:${text}`),
    });
    const [evidence] = result.tasks;
    assert.equal(evidence!.outcome, 'passed', evidence!.message);
    assert.equal(evidence!.exitCode, 0);
    assert.equal(evidence!.isolation, 'container');
    assert.equal(evidence!.networkMode, 'none');
    assert.equal(evidence!.image, IMAGE);
    assert.match(evidence!.imageId ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(evidence!.counts, { passed: 3, failed: 0, skipped: 1, format: 'mocha' });
    const stored = readFileSync(evidence!.logFile!, 'utf8');
    assert.match(stored, new RegExp(`/workspaces/${changeId}\\nroot\\nGITDIR-HIDDEN\\n`));
    assert.equal(evidence!.logDigest, sha256(stored));
    assert.ok(!evidence!.logFile!.startsWith(path), 'the log is stored outside the worktree');
    assert.ok(output.some((line) => line.startsWith('unit:') && line.includes('3 passing')));
    assert.equal(result.preparation?.networkMode, 'none');
    assert.deepEqual(result.preparation?.reachable, []);
    assert.equal(result.preparation?.outcome, 'passed');
  });

  it('starts a repository without devcontainer.json with a plain podman run -d, with the same flags, mounts and user as through the CLI', async () => {
    // No dev containers CLI at all: the direct path must not need it.
    const direct = new ContainerSandbox({
      engine,
      devcontainerCli: join(root, 'no-such-devcontainer-cli'),
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: IMAGE,
    });
    const policy = { limits: { cpus: 1, memoryMb: 256, pids: 128 } };
    const a = worktree();
    const first = await run(a.changeId, a.path, [task('unit', 'pwd; id -un; echo hi > written.txt')], { policy }, direct);
    assert.equal(first.tasks[0]!.outcome, 'passed', first.tasks[0]!.message);
    assert.equal(readFileSync(join(a.path, 'written.txt'), 'utf8'), 'hi\n', 'the worktree is mounted writable');
    const prepLog = readFileSync(first.preparation!.logFile!, 'utf8');
    assert.match(prepLog, /── podman run -d /);
    assert.doesNotMatch(prepLog, /devcontainer up/);
    // The same generated configuration through the CLI (devcontainer.json naming only the image).
    const b = worktree();
    const viaCli = await run(b.changeId, b.path, [task('unit', 'true')], {
      policy,
      source: { prepare: [], devcontainer: { text: JSON.stringify({ image: IMAGE }), path: '.devcontainer/devcontainer.json' } },
    });
    assert.equal(viaCli.tasks[0]!.outcome, 'passed', viaCli.tasks[0]!.message);
    assert.match(readFileSync(viaCli.preparation!.logFile!, 'utf8'), /devcontainer up/);
    type Inspected = {
      Id: string;
      Config: { User: string; Labels: Record<string, string> };
      HostConfig: Record<string, unknown>;
      Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
      NetworkSettings: { Networks?: Record<string, unknown> | null };
    };
    const inspect = async (changeId: string) =>
      (JSON.parse(sh(root, engine.path, ['container', 'inspect', await containerOf(changeId)])) as Inspected[])[0]!;
    const [directInfo, cliInfo] = [await inspect(a.changeId), await inspect(b.changeId)];
    const hardening = (info: Inspected) => ({
      network: info.HostConfig.NetworkMode,
      networks: Object.keys(info.NetworkSettings.Networks ?? {}),
      privileged: info.HostConfig.Privileged,
      capAdd: info.HostConfig.CapAdd ?? [],
      capDrop: info.HostConfig.CapDrop ?? [],
      securityOpt: info.HostConfig.SecurityOpt ?? [],
      devices: info.HostConfig.Devices ?? [],
      pids: info.HostConfig.PidsLimit,
      memory: info.HostConfig.Memory,
      cpus: info.HostConfig.NanoCpus,
      pidMode: info.HostConfig.PidMode,
      ipcMode: info.HostConfig.IpcMode,
      usernsMode: info.HostConfig.UsernsMode,
      user: info.Config.User,
      mounts: info.Mounts.map((mount) => ({ type: mount.Type, destination: mount.Destination.replace(/[0-9a-f]{8}$/, 'X'), rw: mount.RW })),
    });
    assert.deepEqual(hardening(directInfo), hardening(cliInfo));
    assert.equal(directInfo.HostConfig.NetworkMode, 'none');
    assert.deepEqual(directInfo.HostConfig.CapAdd ?? [], []);
    assert.equal(directInfo.HostConfig.Privileged, false);
    assert.equal(directInfo.HostConfig.PidsLimit, 128);
    assert.equal(directInfo.HostConfig.Memory, 256 * 1024 * 1024);
    assert.deepEqual(
      directInfo.Mounts.map((mount) => [mount.Type, mount.Source, mount.Destination]),
      [['bind', realpathSync(a.path), `/workspaces/${a.changeId}`]],
    );
    assert.equal(directInfo.Config.Labels['dev.agentlanes.change'], a.changeId);
    assert.equal(directInfo.Config.Labels['dev.agentlanes.role'], 'change');
    // Found and reused on the next run, as a CLI-made container is.
    const again = await run(a.changeId, a.path, [task('unit', 'true')], { policy }, direct);
    assert.equal(again.tasks[0]!.outcome, 'passed');
    assert.equal(await containerOf(a.changeId), directInfo.Id);
  });

  it('reads an image once for direct starts, and reads it again when its name points at another image since', async () => {
    const image = `localhost/agent-lanes-retag:${newId()}`;
    sh(root, 'podman', ['tag', IMAGE, image]);
    // The real podman, each call written down, to count the image reads.
    const calls = join(root, `engine-calls-${newId()}.txt`);
    const wrapper = join(root, `engine-${newId()}.sh`);
    writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${engine.path}' "$@"\n`, { mode: 0o755 });
    const direct = new ContainerSandbox({
      engine: { ...engine, path: wrapper },
      devcontainerCli: join(root, 'no-such-devcontainer-cli'),
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: image,
    });
    const imageReads = () =>
      readFileSync(calls, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('image inspect')).length;
    try {
      for (const { changeId, path } of [worktree(), worktree()]) {
        const result = await run(changeId, path, [task('t', 'true')], {}, direct);
        assert.equal(result.tasks[0]!.outcome, 'passed', result.tasks[0]!.message);
      }
      assert.equal(imageReads(), 1, 'the second direct start did not read the image again');
      // The name now points at an image whose label asks for every capability: it must be read, and refused.
      const context = join(root, `image-${newId()}`);
      mkdirSync(context);
      writeFileSync(join(context, 'Containerfile'), `FROM ${IMAGE}\nLABEL devcontainer.metadata='[{"privileged":true}]'\n`);
      sh(context, 'podman', ['build', '-q', '--network=none', '-t', image, context]);
      const c = worktree();
      const error = await sandboxError(run(c.changeId, c.path, [task('t', 'echo ran > ran.txt')], {}, direct));
      assert.equal(error.kind, 'refused');
      assert.match(error.message, /privileged/);
      assert.ok(!existsSync(join(c.path, 'ran.txt')), 'no task ran');
      assert.equal(imageReads(), 2);
      assert.deepEqual(
        (await direct.listSandboxContainers()).filter((container) => container.changeId === c.changeId),
        [],
        'its container was removed',
      );
    } finally {
      execFileSync('podman', ['rmi', '-f', image], { stdio: 'ignore' });
    }
  });

  it('says an image read earlier is missing once it was removed, as for one never read', async () => {
    const image = `localhost/agent-lanes-removed:${newId()}`;
    sh(root, 'podman', ['tag', IMAGE, image]);
    const direct = new ContainerSandbox({
      engine,
      devcontainerCli: join(root, 'no-such-devcontainer-cli'),
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: image,
    });
    const a = worktree();
    assert.equal((await run(a.changeId, a.path, [task('t', 'true')], {}, direct)).tasks[0]!.outcome, 'passed');
    await direct.removeSandbox(a.changeId);
    execFileSync('podman', ['rmi', image], { stdio: 'ignore' });
    const b = worktree();
    const error = await sandboxError(run(b.changeId, b.path, [task('t', 'true')], {}, direct));
    assert.equal(error.kind, 'imageMissing', error.message);
    assert.match(error.message, new RegExp(`The image ${image} does not exist on this machine`));
  });

  it('records a failing task with its exit code, and reuses the container', async () => {
    const { changeId, path } = worktree({ 'data.txt': 'worktree file\n' });
    const first = await run(changeId, path, [task('read', 'cat data.txt && echo written > out.txt')]);
    assert.equal(first.tasks[0]!.outcome, 'passed');
    assert.equal(readFileSync(join(path, 'out.txt'), 'utf8'), 'written\n', 'the task writes to the worktree');
    const container = await containerOf(changeId);
    const second = await run(changeId, path, [task('fail', 'echo boom >&2; exit 3')]);
    assert.equal(second.tasks[0]!.outcome, 'failed');
    assert.equal(second.tasks[0]!.exitCode, 3);
    assert.match(readFileSync(second.tasks[0]!.logFile!, 'utf8'), /boom/);
    assert.equal(await containerOf(changeId), container, 'the same container serves both runs');
  });

  it('fails a network attempt inside the container, and the evidence shows network none', async () => {
    const { changeId, path } = worktree();
    const probe = `node -e "const s=require('net').connect({host:'1.1.1.1',port:53,timeout:3000});s.on('connect',()=>{console.log('CONNECTED');process.exit(0)});s.on('timeout',()=>{console.log('TIMEOUT');process.exit(2)});s.on('error',e=>{console.log('NETWORK ERROR',e.code);process.exit(1)})"`;
    const result = await run(changeId, path, [task('net', probe)]);
    const evidence = result.tasks[0]!;
    assert.equal(evidence.outcome, 'failed');
    assert.equal(evidence.networkMode, 'none');
    const log = readFileSync(evidence.logFile!, 'utf8');
    assert.match(log, /NETWORK ERROR (ENETUNREACH|EHOSTUNREACH)/);
    assert.doesNotMatch(log, /CONNECTED/);
  });

  it('prepares once with the network policy allows, then runs tasks with the network disconnected', async () => {
    const { changeId, path } = worktree();
    const source = { prepare: ['grep -q eth0 /proc/net/dev && echo prepared-with-network', 'echo x >> /tmp/prepare-count'] };
    const policy = { preparationNetwork: 'open' as const };
    const interfaces = task('interfaces', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; wc -l < /tmp/prepare-count');
    const first = await run(changeId, path, [interfaces], { source, policy });
    assert.equal(first.preparation?.networkMode, 'bridge');
    assert.deepEqual(first.preparation?.reachable, ['any host']);
    assert.deepEqual(first.preparation?.commands, source.prepare);
    assert.match(readFileSync(first.preparation!.logFile!, 'utf8'), /prepared-with-network/);
    assert.equal(first.tasks[0]!.networkMode, 'none');
    assert.equal(readFileSync(first.tasks[0]!.logFile!, 'utf8'), 'lo\n1\n', 'only loopback during tasks; prepared once');
    const second = await run(changeId, path, [interfaces], { source, policy });
    assert.equal(readFileSync(second.tasks[0]!.logFile!, 'utf8'), 'lo\n1\n', 'the second run does not prepare again');
    assert.deepEqual(second.preparation, first.preparation);
  });

  it('refuses a privileged devcontainer.json with the reason, and starts nothing', async () => {
    const { changeId, path } = worktree();
    const devcontainer = { path: '.devcontainer/devcontainer.json', text: JSON.stringify({ image: IMAGE, runArgs: ['--privileged'] }) };
    const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
    assert.equal(error.kind, 'refused');
    assert.match(error.message, /\.devcontainer\/devcontainer\.json asks for more than the sandbox allows/);
    assert.match(error.message, /runArgs\[0\]: --privileged: runs the container with every capability/);
    assert.deepEqual(
      (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId),
      [],
    );
  });

  it('reports a devcontainer.json syntax error with the file and position', async () => {
    const { changeId, path } = worktree();
    const devcontainer = {
      path: '.devcontainer/devcontainer.json',
      label: '.devcontainer/devcontainer.json (base abc1234)',
      text: '{\n  "image": "x",\n  "runArgs": [\n}\n',
    };
    const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
    assert.equal(error.kind, 'configSyntax');
    assert.match(error.message, /^\.devcontainer\/devcontainer\.json \(base abc1234\) has a syntax error at line 4, column 1/);
  });

  it('says so when the image does not exist, without trying to pull it', async () => {
    const { changeId, path } = worktree();
    const devcontainer = { path: '.devcontainer/devcontainer.json', text: '{ "image": "localhost/agent-lanes-missing:1" }' };
    const started = Date.now();
    const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
    assert.equal(error.kind, 'imageMissing');
    assert.match(error.message, /The image localhost\/agent-lanes-missing:1 does not exist on this machine.*build-sandbox-image\.sh/);
    assert.equal(error.preparation?.outcome, 'failed');
    assert.ok(Date.now() - started < 10_000, 'no pull retries');
  });

  it('kills a task at its time limit, in the container too, and records it as timed out', async () => {
    const { changeId, path } = worktree();
    const result = await run(changeId, path, [
      task('hang', 'echo started; sleep 300', { timeoutSeconds: 2 }),
      task('after', 'echo still runs'),
    ]);
    const [hang, after] = result.tasks;
    assert.equal(hang!.outcome, 'timedOut');
    assert.ok(hang!.durationMs >= 2_000 && hang!.durationMs < 15_000, `duration ${hang!.durationMs}`);
    assert.match(hang!.message!, /time limit of 2 s/);
    assert.match(readFileSync(hang!.logFile!, 'utf8'), /started/);
    assert.equal(after!.outcome, 'passed', 'later tasks still run');
    const sleeping = sh(root, 'podman', [
      'exec',
      await containerOf(changeId),
      'sh',
      '-c',
      'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "',
    ]);
    assert.doesNotMatch(sleeping, /sleep 300/);
  });

  it('cancels a running task, stops it in the container, and skips the rest', async () => {
    const { changeId, path } = worktree();
    const controller = new AbortController();
    const running = run(changeId, path, [task('long', 'sleep 200'), task('next', 'true')], {
      signal: controller.signal,
      onProgress: (progress) => {
        if (progress.kind === 'taskStarted') setTimeout(() => controller.abort(), 1_000);
      },
    });
    const result = await running;
    assert.deepEqual(
      result.tasks.map((t) => t.outcome),
      ['cancelled', 'skipped'],
    );
    assert.ok(result.tasks[0]!.durationMs < 10_000);
    const processes = sh(root, 'podman', [
      'exec',
      await containerOf(changeId),
      'sh',
      '-c',
      'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "',
    ]);
    assert.doesNotMatch(processes, /sleep 200/);
  });

  it('caps a log of megabytes with a marker and keeps the tail', async () => {
    const { changeId, path } = worktree();
    const command = `node -e "const line='x'.repeat(99)+'\\n'; for (let i = 0; i < 80000; i++) process.stdout.write(line); console.log('  7 passing (9ms)'); console.log('THE END')"`;
    const result = await run(changeId, path, [task('loud', command)]);
    const evidence = result.tasks[0]!;
    assert.equal(evidence.outcome, 'passed');
    assert.equal(evidence.logTruncated, true);
    const stored = readFileSync(evidence.logFile!, 'utf8');
    assert.ok(stored.length <= 5 * 1024 * 1024 + 200, `stored ${stored.length} characters of 8 MB`);
    assert.match(stored, /\[agent-lanes: log capped at 5242880 characters; \d+ characters omitted here/);
    assert.ok(stored.endsWith('THE END\n'));
    assert.deepEqual(evidence.counts, { passed: 7, failed: 0, skipped: 0, format: 'mocha' });
    assert.equal(evidence.logDigest, sha256(stored));
  });

  it('redacts secrets in the stored and the streamed log', async () => {
    const { changeId, path } = worktree();
    const streamed: string[] = [];
    const token = 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8';
    const result = await run(changeId, path, [task('leak', `echo "token=${token}"`)], { onTaskOutput: (_id, text) => streamed.push(text) });
    const evidence = result.tasks[0]!;
    const stored = readFileSync(evidence.logFile!, 'utf8');
    assert.doesNotMatch(stored + streamed.join(''), new RegExp(token));
    assert.match(stored, /\[REDACTED:/);
    assert.equal(evidence.redaction.total, 1);
  });

  it('reports a container removed by hand mid-run, and the next run recreates it', async () => {
    const { changeId, path } = worktree();
    await run(changeId, path, [task('warm', 'true')]);
    const container = await containerOf(changeId);
    const running = run(changeId, path, [task('victim', 'sleep 60'), task('later', 'true')], {
      onProgress: (progress) => {
        if (progress.kind === 'taskStarted' && progress.task.id === 'victim')
          setTimeout(() => sh(root, 'podman', ['rm', '-f', '-t', '0', container]), 1_500);
      },
    });
    const result = await running;
    assert.equal(result.tasks[0]!.outcome, 'error');
    assert.match(result.tasks[0]!.message!, /was removed while the task ran\. Run the tasks again/);
    assert.equal(result.tasks[1]!.outcome, 'skipped');
    const again = await run(changeId, path, [task('after', 'echo fine')]);
    assert.equal(again.tasks[0]!.outcome, 'passed');
    assert.notEqual(await containerOf(changeId), container);
  });

  it('starts a container that was stopped (a reboot) and keeps its preparation and its network off', async () => {
    const { changeId, path } = worktree();
    const policy = { preparationNetwork: 'open' as const };
    const source = { prepare: ['echo once >> /tmp/prepared'] };
    const check = task('check', 'wc -l < /tmp/prepared; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "');
    await run(changeId, path, [check], { source, policy });
    const container = await containerOf(changeId);
    sh(root, 'podman', ['stop', '-t', '0', container]);
    const again = await run(changeId, path, [check], { source, policy });
    assert.equal(await containerOf(changeId), container);
    assert.equal(again.tasks[0]!.networkMode, 'none');
    assert.equal(readFileSync(again.tasks[0]!.logFile!, 'utf8'), '1\nlo\n');
  });

  it('fails the preparation with its log when a prepare command fails, and runs no task', async () => {
    const { changeId, path } = worktree();
    const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { prepare: ['echo installing; exit 4'] } }));
    assert.equal(error.kind, 'preparationFailed');
    assert.match(error.message, /The prepare command "echo installing; exit 4" failed with exit code 4; no task ran/);
    assert.equal(error.preparation?.outcome, 'failed');
    assert.match(readFileSync(error.preparation!.logFile!, 'utf8'), /installing/);
    assert.deepEqual(
      (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId),
      [],
      'a half-prepared container is not kept',
    );
  });

  it('runs the test tasks on the base commit and records whether they fail there', async () => {
    const { changeId, path } = worktree({ 'feature.txt': 'the change\n' });
    const tests = [task('feature', 'sh check.sh', { test: true }), task('readme', 'test -f README.md', { test: true })];
    const onChange = await run(changeId, path, tests);
    assert.deepEqual(
      onChange.tasks.map((t) => t.outcome),
      ['passed', 'passed'],
    );
    const base = sh(repo, 'git', ['rev-parse', 'main']).trim();
    const result = await sandbox.runOnBase({
      changeId,
      repoRoot: repo,
      baseSha: base,
      headSha: base,
      overlay: { checkout: [], remove: [] },
      changeWorktreePath: path,
      source: { prepare: [] },
      tasks: tests,
      policy: {},
      logDir,
    });
    assert.deepEqual(
      [...result.failsOnBase],
      [
        ['feature', true],
        ['readme', false],
      ],
    );
    assert.equal(result.tasks[0]!.outcome, 'failed');
    assert.match(result.tasks[0]!.logFile!, /base-feature\.log$/);
    assert.doesNotMatch(sh(repo, 'git', ['worktree', 'list']), /base-worktrees/, 'the base worktree is removed');
    assert.deepEqual(
      (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId).map((c) => c.role),
      ['change'],
      'the base container is removed',
    );
  });

  it('gets the base sandbox ready while the change runs, and nothing the change’s tasks leave behind reaches the base run', async () => {
    const { changeId, path } = worktree({ 'feature.txt': 'the change\n' });
    const base = sh(repo, 'git', ['rev-parse', 'main']).trim();
    // Started before the change's tasks, as the lane does.
    const runner = await sandbox.startOnBase({
      changeId,
      repoRoot: repo,
      baseSha: base,
      headSha: base,
      overlay: { checkout: [], remove: [] },
      changeWorktreePath: path,
      source: { prepare: [] },
      policy: {},
      logDir,
    });
    try {
      // A hostile change: build output in its worktree, files in /tmp and the home folder, a process left running,
      // and a try at every folder under /workspaces and the state folder's base worktrees.
      const plant =
        'mkdir -p dist && echo built > dist/out.txt; echo x > /tmp/leak; echo x > "$HOME/leak"; ' +
        '(setsid sh -c "while :; do for d in /workspaces/* ' +
        join(root, 'storage') +
        '/sandbox/base-worktrees/*/*; do echo x > \\"\\$d/feature.txt\\" 2>/dev/null; echo x > \\"\\$d/leak\\" 2>/dev/null; done; sleep 0.2; done" </dev/null >/dev/null 2>&1 &); ' +
        'sleep 1; ls /workspaces';
      const onChange = await run(changeId, path, [task('plant', plant)]);
      assert.equal(onChange.tasks[0]!.outcome, 'passed', onChange.tasks[0]!.message);
      const look =
        'for f in feature.txt leak dist/out.txt /tmp/leak "$HOME/leak"; do test -e "$f" && echo "LEAKED $f"; done; ' +
        'ps -eo args | grep -q "[w]hile :" && echo "LEAKED process"; sh check.sh';
      const result = await runner.run([task('feature', look, { test: true })]);
      const log = readFileSync(result.tasks[0]!.logFile!, 'utf8');
      assert.doesNotMatch(log, /LEAKED/, log);
      assert.equal(result.failsOnBase.get('feature'), true, 'the change’s feature file is not on the base');
    } finally {
      await runner.dispose();
    }
    assert.doesNotMatch(sh(repo, 'git', ['worktree', 'list']), /base-worktrees/, 'the base worktree is removed');
    assert.deepEqual(
      (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId).map((c) => c.role),
      ['change'],
      'the base container is removed',
    );
  });

  it('runs two requests for the same change one after the other, in one container', async () => {
    const { changeId, path } = worktree();
    const [first, second] = await Promise.all([run(changeId, path, [task('a', 'echo a')]), run(changeId, path, [task('b', 'echo b')])]);
    assert.equal(first.tasks[0]!.outcome, 'passed');
    assert.equal(second.tasks[0]!.outcome, 'passed');
    assert.ok(second.tasks[0]!.startedAt >= first.tasks[0]!.startedAt);
    await containerOf(changeId);
  });

  it('lists sandbox containers and removes a change’s on discard', async () => {
    const { changeId, path } = worktree();
    await run(changeId, path, [task('t', 'true')]);
    const listed = (await sandbox.listSandboxContainers()).find((c) => c.changeId === changeId);
    assert.equal(listed?.state, 'running');
    assert.equal(listed?.image, IMAGE);
    assert.equal(await sandbox.removeSandbox(changeId), 1);
    assert.equal(
      (await sandbox.listSandboxContainers()).find((c) => c.changeId === changeId),
      undefined,
    );
    assert.equal(await sandbox.removeSandbox(changeId), 0);
  });

  it('builds a "build" configuration from the base commit’s Dockerfile, with no network', async () => {
    const { changeId, path } = worktree({ '.devcontainer/Dockerfile': 'FROM scratch\n' });
    const devcontainer = {
      path: '.devcontainer/devcontainer.json',
      text: JSON.stringify({ build: { dockerfile: 'Dockerfile', context: '..' }, updateRemoteUserUID: false }),
    };
    const baseDockerfile = `FROM ${IMAGE}\nRUN echo built-from-base > /built.txt && (cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /build-net.txt)\n`;
    const result = await run(changeId, path, [task('built', 'cat /built.txt /build-net.txt')], {
      source: {
        devcontainer,
        prepare: [],
        readBaseFile: async (file) => (file === '.devcontainer/Dockerfile' ? baseDockerfile : undefined),
      },
    });
    assert.equal(result.tasks[0]!.outcome, 'passed', result.tasks[0]!.message);
    assert.equal(readFileSync(result.tasks[0]!.logFile!, 'utf8'), 'built-from-base\nlo\n');
    const built = result.tasks[0]!.image!;
    assert.match(built, /vsc-/);
    await sandbox.removeSandbox(changeId);
    assert.equal(
      sh(root, 'podman', ['images', '-q', '--filter', `reference=${built}`]).trim(),
      '',
      'the built image goes with its container',
    );
  });

  it('stops a devcontainer up that hangs, at its time limit, and says what happened', async () => {
    const { changeId, path } = worktree();
    const hangingCli = join(root, 'hanging-devcontainer');
    writeFileSync(hangingCli, '#!/bin/sh\necho "Container started" >&2\nexec sleep 120\n', { mode: 0o755 });
    const hanging = new ContainerSandbox({
      engine,
      devcontainerCli: hangingCli,
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: IMAGE,
      upTimeoutMs: 1_500,
    });
    const started = Date.now();
    // A devcontainer.json, so the container is made by the CLI (without one the sandbox starts it directly).
    const source = { prepare: [], devcontainer: { text: JSON.stringify({ image: IMAGE }), path: '.devcontainer/devcontainer.json' } };
    const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source }, hanging));
    assert.equal(error.kind, 'upTimedOut');
    assert.match(
      error.message,
      /devcontainer up did not finish within 2 s \(it can hang after "Container started": devcontainers\/cli#1236\)/,
    );
    assert.equal(error.preparation?.outcome, 'timedOut');
    assert.match(readFileSync(error.preparation!.logFile!, 'utf8'), /Container started/);
    assert.ok(Date.now() - started < 10_000);
  });

  describe('issue 13 §6: nothing of the repository runs before the created container is checked', () => {
    const FEATURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'devcontainer-features');

    async function noContainerOf(changeId: string): Promise<void> {
      assert.deepEqual(
        (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId),
        [],
      );
    }

    it('refuses runArgs -v=/host/dir:/hostdir before up: its postCreateCommand never writes into the host folder', async () => {
      const { changeId, path } = worktree();
      const hostDir = join(root, `host-${changeId}`);
      mkdirSync(hostDir);
      const devcontainer = {
        path: '.devcontainer/devcontainer.json',
        text: JSON.stringify({ image: IMAGE, runArgs: [`-v=${hostDir}:/hostdir`], postCreateCommand: 'echo pwned > /hostdir/pwned.txt' }),
      };
      const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
      assert.equal(error.kind, 'refused');
      assert.match(error.message, new RegExp(`runArgs\\[0\\]: -v=${hostDir}:/hostdir: mounts ${hostDir} from the host`));
      assert.match(error.message, /policy can allow it: lanes\.sandbox\.devcontainer\.allowedMounts/);
      assert.ok(!existsSync(join(hostDir, 'pwned.txt')), 'the host folder was not written');
      await noContainerOf(changeId);
    });

    it('refuses "privileged": "true" before up: no setup command runs with every capability', async () => {
      const { changeId, path } = worktree();
      const devcontainer = {
        path: '.devcontainer/devcontainer.json',
        text: JSON.stringify({ image: IMAGE, privileged: 'true', postCreateCommand: 'ls /dev | wc -l > dev-entries.txt' }),
      };
      const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
      assert.equal(error.kind, 'refused');
      assert.match(error.message, /- privileged: runs the container with every capability/);
      assert.ok(!existsSync(join(path, 'dev-entries.txt')), 'the postCreateCommand did not run');
      await noContainerOf(changeId);
    });

    it('runs lifecycle commands only after the created container was inspected: a build from an image that asks for privileges runs none', async () => {
      const { changeId, path } = worktree();
      // The base image's metadata asks for privileged; the CLI merges it into a build's container, and only the inspection of the created container sees it.
      const image = `localhost/agent-lanes-privileged-base:${changeId}`;
      const context = join(root, `image-${changeId}`);
      mkdirSync(context);
      writeFileSync(join(context, 'Containerfile'), `FROM ${IMAGE}\nLABEL devcontainer.metadata='[{"privileged":true}]'\n`);
      sh(context, 'podman', ['build', '-q', '--network=none', '-t', image, context]);
      const devcontainer = {
        path: '.devcontainer/devcontainer.json',
        text: JSON.stringify({
          build: { dockerfile: 'Dockerfile', context: '..' },
          updateRemoteUserUID: false,
          onCreateCommand: 'echo on-create >> lifecycle.txt',
          postCreateCommand: 'echo post-create >> lifecycle.txt',
        }),
      };
      try {
        const error = await sandboxError(
          run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [], readBaseFile: async () => `FROM ${image}\n` } }),
        );
        assert.equal(error.kind, 'refused');
        assert.match(error.message, /it runs privileged/);
        assert.ok(!existsSync(join(path, 'lifecycle.txt')), 'no lifecycle command ran in the refused container');
        await noContainerOf(changeId);
      } finally {
        execFileSync('podman', ['rmi', '-f', image], { stdio: 'ignore' });
      }
    });

    it('refuses an image whose devcontainer.metadata label asks for privileges before up', async () => {
      const { changeId, path } = worktree();
      const image = `localhost/agent-lanes-privileged-metadata:${changeId}`;
      const context = join(root, `image-${changeId}`);
      mkdirSync(context);
      writeFileSync(
        join(context, 'Containerfile'),
        `FROM ${IMAGE}\nLABEL devcontainer.metadata='[{"privileged":true,"entrypoint":"/bin/true","postCreateCommand":"echo label >> lifecycle.txt"}]'\n`,
      );
      sh(context, 'podman', ['build', '-q', '--network=none', '-t', image, context]);
      try {
        const devcontainer = { path: '.devcontainer/devcontainer.json', text: JSON.stringify({ image }) };
        const error = await sandboxError(run(changeId, path, [task('t', 'true')], { source: { devcontainer, prepare: [] } }));
        assert.equal(error.kind, 'refused');
        assert.match(error.message, /so no container was started/);
        assert.match(error.message, /label devcontainer\.metadata\[0\]: privileged: runs the container with every capability/);
        assert.doesNotMatch(readFileSync(error.preparation!.logFile!, 'utf8'), /devcontainer up/);
        assert.ok(!existsSync(join(path, 'lifecycle.txt')));
        await noContainerOf(changeId);
      } finally {
        execFileSync('podman', ['rmi', '-f', image], { stdio: 'ignore' });
      }
    });

    it('runs the lifecycle commands of an accepted container once each, in order, before the prepare commands', async () => {
      const { changeId, path } = worktree();
      const devcontainer = {
        path: '.devcontainer/devcontainer.json',
        text: JSON.stringify({
          image: IMAGE,
          onCreateCommand: 'echo on-create >> lifecycle.txt',
          postCreateCommand: ['sh', '-c', "echo 'post create' >> lifecycle.txt"],
          postStartCommand: { a: 'echo post-start >> lifecycle.txt' },
        }),
      };
      const result = await run(changeId, path, [task('t', 'cat lifecycle.txt')], {
        source: { devcontainer, prepare: ['echo prepare >> lifecycle.txt'] },
      });
      assert.equal(result.tasks[0]!.outcome, 'passed', result.tasks[0]!.message);
      assert.equal(readFileSync(join(path, 'lifecycle.txt'), 'utf8'), 'on-create\npost create\npost-start\nprepare\n');
      assert.match(readFileSync(result.preparation!.logFile!, 'utf8'), /--skip-post-create[\s\S]*── onCreateCommand: echo on-create/);
    });

    it('installs a harmless local feature from the base commit, and refuses docker-in-docker by its metadata', async () => {
      const { changeId, path } = worktree();
      const files: Record<string, string> = {
        '.devcontainer/features/harmless/devcontainer-feature.json': readFileSync(
          join(FEATURES, 'harmless', 'devcontainer-feature.json'),
          'utf8',
        ),
        '.devcontainer/features/harmless/install.sh': readFileSync(join(FEATURES, 'harmless', 'install.sh'), 'utf8'),
        '.devcontainer/features/dind/devcontainer-feature.json': readFileSync(
          join(FEATURES, 'docker-in-docker', 'devcontainer-feature.json'),
          'utf8',
        ),
      };
      const source = (features: Record<string, unknown>) => ({
        devcontainer: {
          path: '.devcontainer/devcontainer.json',
          text: JSON.stringify({ image: IMAGE, updateRemoteUserUID: false, features }),
        },
        prepare: [],
        readBaseFile: async (file: string) => files[file],
        listBaseFiles: async (folder: string) => Object.keys(files).filter((file) => file.startsWith(`${folder}/`)),
      });
      const policy = { preparationNetwork: 'open' as const };
      const refused = await sandboxError(
        run(changeId, path, [task('t', 'true')], { source: source({ './features/harmless': {}, './features/dind': {} }), policy }),
      );
      assert.equal(refused.kind, 'refused');
      assert.match(
        refused.message,
        /features\["\.\/features\/dind"\] \(devcontainer-feature\.json\): privileged: runs the container with every capability/,
      );
      await noContainerOf(changeId);
      const result = await run(changeId, path, [task('feature', 'cat /feature-installed.txt; echo "$FROM_FEATURE"')], {
        source: source({ './features/harmless': {} }),
        policy,
      });
      assert.equal(result.tasks[0]!.outcome, 'passed', result.tasks[0]!.message);
      assert.equal(readFileSync(result.tasks[0]!.logFile!, 'utf8'), 'installed-by-feature\nyes\n');
    });

    it('refuses a build context that a symbolic link in the worktree points outside it', async () => {
      const { changeId, path } = worktree();
      symlinkSync('/', join(path, 'ctx'));
      const devcontainer = {
        path: '.devcontainer/devcontainer.json',
        text: JSON.stringify({ build: { dockerfile: 'Dockerfile', context: '../ctx' } }),
      };
      const error = await sandboxError(
        run(changeId, path, [task('t', 'true')], {
          source: { devcontainer, prepare: [], readBaseFile: async () => `FROM ${IMAGE}\nCOPY etc/hostname /leaked\n` },
        }),
      );
      assert.equal(error.kind, 'refused');
      assert.match(error.message, /leads to \/, outside the change's worktree/);
      await noContainerOf(changeId);
    });
  });

  it('uses the base commit’s devcontainer.json, not the worktree’s', async () => {
    const { changeId, path } = worktree({
      '.devcontainer/devcontainer.json': JSON.stringify({ image: IMAGE, runArgs: ['--privileged'], containerEnv: { FROM: 'worktree' } }),
    });
    const devcontainer = {
      path: '.devcontainer/devcontainer.json',
      text: JSON.stringify({ image: IMAGE, containerEnv: { FROM: 'base' }, remoteEnv: { EXTRA: 'yes' } }),
    };
    const result = await run(changeId, path, [task('env', 'echo "$FROM $EXTRA"')], { source: { devcontainer, prepare: [] } });
    assert.equal(readFileSync(result.tasks[0]!.logFile!, 'utf8'), 'base yes\n');
    assert.ok(!existsSync(join(path, '.devcontainer', 'devcontainer.lanes.json')));
  });
});

describe('sandbox engine and CLI detection', function () {
  this.timeout(30_000);

  it('finds podman when asked, and auto finds one', async () => {
    const podman = await detectEngine('podman');
    assert.ok(podman.found);
    assert.equal(podman.engine.kind, 'podman');
    const auto = await detectEngine('auto');
    assert.ok(auto.found);
  });

  it('says how to install an engine when there is none', async () => {
    const none = await detectEngine('auto', { pathVariable: '/nonexistent' });
    assert.equal(none.found, false);
    if (none.found) return;
    assert.match(none.message, /No container engine was found \(docker: not on PATH; podman: not on PATH\)/);
    assert.match(none.message, /apt-get install -y podman/);
    assert.match(none.message, /Docker/);
  });

  it('names a configured engine that is missing', async () => {
    const docker = await detectEngine('docker', { pathVariable: '/nonexistent' });
    assert.equal(docker.found, false);
    if (!docker.found) assert.match(docker.message, /The container engine "docker" \(agentLanes\.sandbox\.containerEngine\) is not usable/);
  });

  it('finds the dev containers CLI and explains a wrong setting', async () => {
    const development = await resolveDevcontainerCli({ extensionRoot: process.cwd(), pathVariable: '/nonexistent' });
    assert.ok('path' in development && development.path.endsWith('node_modules/.bin/devcontainer'));
    const wrong = await resolveDevcontainerCli({ settingPath: '/nowhere/devcontainer' });
    assert.ok('error' in wrong && /devcontainerCliPath is "\/nowhere\/devcontainer".*npm install -g @devcontainers\/cli/.test(wrong.error));
    const missing = await resolveDevcontainerCli({ pathVariable: '/nonexistent' });
    assert.ok('error' in missing && /was not found\. Install it with `npm install -g @devcontainers\/cli`/.test(missing.error));
  });
});
