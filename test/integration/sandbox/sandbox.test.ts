import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { Change } from '../../../src/core/change';
import type { Evidence } from '../../../src/core/evidence';
import type { SandboxRunOutcome } from '../../../src/infra/lanes/sandbox/sandboxLane';
import type { RepoContext } from '../../../src/vscode/repositories';
import { EXTENSION_ID, labelOf, lanesApi, waitFor } from '../util';

const IMAGE = 'localhost/agent-lanes-sandbox:test';
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=Lanes Tester', '-c', 'user.email=tester@example.com', ...args], { cwd, encoding: 'utf8' }).trim();
const podman = (...args: string[]) => execFileSync('podman', args, { encoding: 'utf8' }).trim();
const containersOf = (changeId: string) =>
  podman('ps', '-a', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`).split('\n').filter(Boolean);

const MAIN_TASKS = `# The greeting change adds test/greeting.test.js and src/greeting.js: with the change's test
# file put over the base, both tasks fail there (no src/greeting.js), so its tests exercise it.
tasks:
  - id: unit
    command: node --test test/
    test: true
  - id: greeting
    command: node test/greeting.test.js
    test: true
`;

const CHECKS_TASKS = `tasks:
  - id: unit
    command: node --test test/
  - id: network
    command: node scripts/reach-network.js
  - id: style
    command: echo "style nit"; exit 1
    required: false
`;

/** A task that tries to reach the internet: it must fail inside the sandbox. */
const NETWORK_SCRIPT = `require('node:net')
  .connect(80, '1.1.1.1')
  .on('connect', () => { console.log('network reachable'); process.exit(0); })
  .on('error', (error) => { console.error('network error: ' + error.code); process.exit(7); });
`;

describe('Sandbox lane in a real VS Code (real podman, real image)', function () {
  this.timeout(180_000);
  let repoRoot: string;
  let repo: RepoContext;

  /** Commits files on a new branch from main without touching the checkout. */
  function commitOnBranch(branch: string, files: Record<string, string>): void {
    const scratch = mkdtempSync(join(tmpdir(), 'lanes-sandbox-base-'));
    const path = join(scratch, 'wt');
    git(repoRoot, 'worktree', 'add', '-q', '-b', branch, path, 'main');
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(path, name)), { recursive: true });
      writeFileSync(join(path, name), text);
    }
    git(path, 'add', '-A');
    git(path, 'commit', '-q', '-m', `Sandbox fixture: ${branch}`);
    git(repoRoot, 'worktree', 'remove', '--force', path);
    rmSync(scratch, { recursive: true, force: true });
  }

  async function draft(task: string, base?: string): Promise<Change> {
    const api = await lanesApi();
    const change = await vscode.commands.executeCommand<Change | undefined>('agentLanes.newDraft', {
      task,
      agentId: 'scripted',
      ...(base ? { base } : {}),
    });
    assert.ok(change, `the draft "${task}" was created`);
    const done = await waitFor(
      () => {
        const found = api.registry.findChange(change.id)?.change;
        return found?.agentRun && found.agentRun.state !== 'running' ? found : undefined;
      },
      `the agent of ${change.id}`,
      45_000,
    );
    assert.equal(done.agentRun?.state, 'succeeded', done.agentRun?.message);
    return done;
  }

  async function evidenceOf(changeId: string): Promise<Evidence> {
    const read = await repo.evidence.read(changeId);
    assert.equal(read.kind, 'ok');
    return (read as { evidence: Evidence }).evidence;
  }

  function audit(changeId: string): { action: string; details: Record<string, unknown> }[] {
    return readFileSync(repo.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: Record<string, unknown> })
      .filter((event) => event.changeId === changeId);
  }

  async function treeDescription(
    changeId: string,
  ): Promise<{ lane: string; description: string; contextValue: string; why: vscode.TreeItem[] }> {
    const api = await lanesApi();
    for (const laneNode of await api.tree.getChildren()) {
      for (const node of await api.tree.getChildren(laneNode)) {
        if (node.kind === 'change' && node.change.id === changeId) {
          const item = api.tree.getTreeItem(node);
          const why = (await api.tree.getChildren(node)).map((child) => api.tree.getTreeItem(child));
          return { lane: labelOf(api, laneNode), description: String(item.description), contextValue: String(item.contextValue), why };
        }
      }
    }
    assert.fail(`change ${changeId} is not in the tree`);
  }

  before(async function () {
    this.timeout(600_000);
    const extension = vscode.extensions.getExtension(EXTENSION_ID)!;
    // Builds the test image from Debian packages the first time; skipped when it exists.
    execFileSync('bash', [join(extension.extensionPath, 'scripts', 'build-sandbox-image.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    const config = vscode.workspace.getConfiguration('agentLanes');
    await config.update('sandbox.containerEngine', 'podman', vscode.ConfigurationTarget.Global);
    await config.update('sandbox.defaultImage', IMAGE, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    await api.registry.ensureDiscovered();
    repo = api.registry.repositories()[0]!;
    repoRoot = repo.root;
    mkdirSync(join(repoRoot, '.lanes'), { recursive: true });
    writeFileSync(join(repoRoot, '.lanes', 'lanes.yaml'), MAIN_TASKS);
    git(repoRoot, 'add', '.lanes/lanes.yaml');
    git(repoRoot, 'commit', '-q', '-m', 'Declare the sandbox tasks');
    commitOnBranch('sandbox-checks', { '.lanes/lanes.yaml': CHECKS_TASKS, 'scripts/reach-network.js': NETWORK_SCRIPT });
    commitOnBranch('sandbox-privileged', {
      '.devcontainer/devcontainer.json': `{\n  // asks for every capability of the host\n  "image": "${IMAGE}",\n  "runArgs": ["--privileged"]\n}\n`,
    });
    commitOnBranch('sandbox-slow', { '.lanes/lanes.yaml': 'tasks:\n  - id: hang\n    command: sleep 300\n    timeoutSeconds: 3\n' });
    commitOnBranch('sandbox-long', {
      '.lanes/lanes.yaml': 'tasks:\n  - id: long\n    command: echo started; sleep 300\n  - id: after\n    command: echo never\n',
    });
  });

  after(async () => {
    for (const change of repo?.store.all() ?? []) {
      await repo.lanes.sandbox
        .removeContainers(change.id)
        .catch((error: Error) => console.log(`Removing the containers of ${change.id}: ${error.message}`));
    }
    const config = vscode.workspace.getConfiguration('agentLanes');
    for (const key of ['sandbox.containerEngine', 'sandbox.defaultImage'])
      await config.update(key, undefined, vscode.ConfigurationTarget.Global);
  });

  it('Promote runs the tasks in the dev container with the network off, runs the new tests on the base and moves the change to Review', async () => {
    const change = await draft('Add a greeting function and a test');
    const outcome = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.promote', { changeId: change.id });
    assert.ok(outcome, 'the run finished');
    assert.equal(outcome.verdict, 'passed', outcome.message);
    assert.equal(outcome.promoted, true, outcome.message);
    const api = await lanesApi();
    const moved = api.registry.findChange(change.id)!.change;
    assert.equal(moved.lane, 'review');
    assert.deepEqual(
      moved.history.map((h) => `${h.from}>${h.to}`),
      ['draft>sandbox', 'sandbox>review'],
    );
    assert.equal(moved.sandbox?.verdict, 'passed');
    assert.equal(moved.sandbox?.headSha, change.headSha);

    const evidence = await evidenceOf(change.id);
    const tasks = new Map(evidence.tasks.map((task) => [task.id, task]));
    for (const task of tasks.values()) {
      assert.equal(task.outcome, 'passed', `${task.id}: ${task.message ?? ''}`);
      assert.equal(task.isolation, 'container');
      assert.equal(task.networkMode, 'none');
      assert.equal(task.image, IMAGE);
      assert.match(task.logDigest, /^sha256:[0-9a-f]{64}$/);
    }
    // "Tests fail without the change": the change's test file ran on the base, per task and, for node's runner, per file.
    assert.equal(tasks.get('greeting')?.failsOnBase, true);
    assert.equal(tasks.get('unit')?.failsOnBase, true);
    assert.deepEqual(tasks.get('unit')?.baseFiles, [{ path: 'test/greeting.test.js', failsOnBase: true }]);
    assert.deepEqual(evidence.baseRun?.testFiles, ['test/greeting.test.js']);
    assert.deepEqual(evidence.flags.filter((flag) => flag.kind === 'testsDoNotExercise').length, 0);
    assert.equal(evidence.preparation?.networkMode, 'none');
    assert.deepEqual(evidence.preparation?.reachable, []);

    const events = audit(change.id);
    assert.equal(events.filter((e) => e.action === 'task.run').length, 4, 'two tasks on the change, two on the base');
    assert.ok(events.some((e) => e.action === 'sandbox.prepare' && e.details.isolation === 'container'));
    assert.deepEqual(
      events.filter((e) => e.action === 'lane.transition').map((e) => e.details.to),
      ['sandbox', 'review'],
    );
    assert.equal(containersOf(change.id).length, 1, 'one container for the change; the base-commit one is removed');

    // The stored, redacted log opens from "Show Task Log".
    const editor = await vscode.commands.executeCommand<vscode.TextEditor | undefined>('agentLanes.showTaskLog', {
      changeId: change.id,
      taskId: 'greeting',
    });
    assert.ok(editor);
    assert.equal(editor.document.uri.fsPath, tasks.get('greeting')!.logFile);
    assert.match(editor.document.getText(), /greeting test passed/);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  let failedChange: Change;

  it('a failing required task keeps the change in Sandbox, and the tree says which; a network attempt fails inside; an optional failure does not block', async () => {
    failedChange = await draft('Add a greeting function and a test', 'sandbox-checks');
    const outcome = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.runSandboxTasks', {
      changeId: failedChange.id,
    });
    assert.ok(outcome);
    assert.equal(outcome.verdict, 'failed');
    assert.equal(outcome.promoted, false);
    const api = await lanesApi();
    const stored = api.registry.findChange(failedChange.id)!.change;
    assert.equal(stored.lane, 'sandbox');
    assert.deepEqual(stored.sandbox?.failedTasks, ['network']);
    assert.match(stored.sandbox?.message ?? '', /network \(failed, exit 7\)/);
    assert.match(stored.sandbox?.message ?? '', /not required and failed: style/);

    const network = outcome.tasks.find((task) => task.id === 'network')!;
    assert.equal(network.networkMode, 'none');
    assert.equal(network.exitCode, 7);
    assert.match(readFileSync(network.logFile!, 'utf8'), /network error: E[A-Z]+/);
    assert.equal(outcome.tasks.find((task) => task.id === 'style')?.required, false);

    const row = await treeDescription(failedChange.id);
    assert.match(row.lane, /^Sandbox/);
    assert.match(row.description, /^network failed · scripted · /);
    assert.equal(row.contextValue, 'change.sandbox');
    // Why, in full, in a row of its own under the change (the description is cut at the view's default width); a click shows the log.
    assert.equal(row.why.length, 1);
    assert.match(String(row.why[0]!.label), /network/);
    assert.equal(row.why[0]!.command?.command, 'agentLanes.showTaskLog');

    // Promote again: the tasks run again in the same container, with the same verdict.
    const [container] = containersOf(failedChange.id);
    const again = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.promote', { changeId: failedChange.id });
    assert.equal(again?.verdict, 'failed');
    assert.equal(api.registry.findChange(failedChange.id)!.change.lane, 'sandbox');
    assert.deepEqual(containersOf(failedChange.id), [container]);
  });

  it('refuses a devcontainer.json of the base that asks for --privileged, with the reason, and the change stays in Draft', async () => {
    const change = await draft('Add a greeting function and a test', 'sandbox-privileged');
    const outcome = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.promote', { changeId: change.id });
    assert.equal(outcome, undefined);
    const api = await lanesApi();
    assert.equal(api.registry.findChange(change.id)!.change.lane, 'draft');
    assert.deepEqual(containersOf(change.id), []);
    const refusal = audit(change.id).find((e) => e.action === 'sandbox.prepare');
    assert.equal(refusal?.details.outcome, 'refused');
    assert.match(String(refusal?.details.reason), /devcontainer\.json \(base [0-9a-f]{7}\)[\s\S]*--privileged/);
  });

  it('kills a task that hangs at its time limit and records it as timed out', async () => {
    const change = await draft('Add a greeting function and a test', 'sandbox-slow');
    const started = Date.now();
    const outcome = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.runSandboxTasks', {
      changeId: change.id,
    });
    assert.ok(outcome);
    assert.ok(Date.now() - started < 60_000, 'the run did not wait for the task');
    const [hang] = outcome.tasks;
    assert.equal(hang?.outcome, 'timedOut');
    assert.match(hang?.message ?? '', /time limit of 3 s/);
    const stored = (await lanesApi()).registry.findChange(change.id)!.change;
    assert.equal(stored.lane, 'sandbox');
    assert.match(stored.sandbox?.message ?? '', /hang \(timed out\)/);
  });

  it('Stop Sandbox Tasks cancels the running task in its container and skips the rest', async () => {
    const change = await draft('Add a greeting function and a test', 'sandbox-long');
    const run = vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.runSandboxTasks', { changeId: change.id });
    const api = await lanesApi();
    await waitFor(() => api.registry.findChange(change.id)?.change.sandbox?.verdict === 'running', 'the run to start');
    const container = await waitFor(() => containersOf(change.id)[0], 'the container', 60_000);
    const sleeping = () =>
      podman(
        'exec',
        container,
        'sh',
        '-c',
        'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done | grep -c "^sleep 300" || true',
      );
    await waitFor(() => sleeping() === '1', 'the task to start', 60_000);
    assert.equal((await treeDescription(change.id)).contextValue, 'change.sandbox.sandboxRunning');
    assert.equal(await vscode.commands.executeCommand('agentLanes.stopSandboxTasks', { changeId: change.id }), true);
    const outcome = await run;
    assert.ok(outcome);
    assert.deepEqual(
      outcome.tasks.map((task) => `${task.id}:${task.outcome}`),
      ['long:cancelled', 'after:skipped'],
    );
    assert.equal(sleeping(), '0', 'the task is gone from the container');
    const stored = api.registry.findChange(change.id)!.change;
    assert.equal(stored.sandbox?.verdict, 'error');
    assert.match((await treeDescription(change.id)).description, /^sandbox cancelled · /);
  });

  it("Discard removes the change's container; a container left for a closed change is found and removed", async () => {
    await vscode.commands.executeCommand('agentLanes.discard', { changeId: failedChange.id }, { confirmed: true });
    const api = await lanesApi();
    assert.equal(api.registry.findChange(failedChange.id)!.change.lane, 'closed');
    await waitFor(() => containersOf(failedChange.id).length === 0, 'the container to be removed');
    await waitFor(
      () => audit(failedChange.id).some((e) => e.action === 'cleanup' && e.details.sandbox === true && e.details.containersRemoved === 1),
      'the cleanup in the audit log',
    );

    const leftover = podman(
      'run',
      '-d',
      '--network=none',
      '--label',
      `dev.agentlanes.change=${failedChange.id}`,
      '--label',
      'dev.agentlanes.role=change',
      IMAGE,
      'sleep',
      '300',
    );
    const found = await api.sandbox.findOrphans();
    assert.deepEqual(
      found.flatMap((entry) => entry.orphans.map((orphan) => orphan.container.id)),
      [leftover],
    );
    assert.equal(await vscode.commands.executeCommand('agentLanes.cleanupSandboxes', { confirmed: true }), 1);
    assert.deepEqual(containersOf(failedChange.id), []);
  });

  it('without a container engine: the process sandbox when policy allows it, labelled; else says what to install', async () => {
    const config = vscode.workspace.getConfiguration('agentLanes');
    await config.update('sandbox.containerEngine', 'docker', vscode.ConfigurationTarget.Global);
    // The user's own restriction, given to the policy service as agentLanes.policy.user would be
    // (writing a user setting here would make this remote window drop the machine-scoped agents setting).
    const api = await lanesApi();
    await api.policy.service.updateSettings({ user: { lanes: { sandbox: { processSandbox: 'forbidden' } } } });
    assert.equal(api.policy.service.effective.policy.lanes.sandbox.processSandbox, 'forbidden');
    const change = await draft('Add a greeting function and a test');
    assert.equal(await vscode.commands.executeCommand('agentLanes.promote', { changeId: change.id }), undefined);
    assert.equal(api.registry.findChange(change.id)!.change.lane, 'draft');

    await api.policy.service.updateSettings({});
    assert.equal(api.policy.service.effective.policy.lanes.sandbox.processSandbox, 'allowed');
    const outcome = await vscode.commands.executeCommand<SandboxRunOutcome | undefined>('agentLanes.promote', { changeId: change.id });
    assert.ok(outcome);
    assert.equal(outcome.isolation, 'process');
    assert.ok(outcome.tasks.length > 0 && outcome.tasks.every((task) => task.isolation === 'process' && task.networkMode === 'none'));
    assert.match(outcome.preparation?.notes?.join('\n') ?? '', /process sandbox.*lesser isolation/);
    await config.update('sandbox.containerEngine', 'podman', vscode.ConfigurationTarget.Global);
  });
});
