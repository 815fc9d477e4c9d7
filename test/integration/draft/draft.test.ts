import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Change } from '../../../src/core/change';
import { labelOf, lanesApi, waitFor } from '../util';

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

async function draft(task: string, extra: Record<string, unknown> = {}): Promise<Change> {
  const change = await vscode.commands.executeCommand<Change | undefined>('agentLanes.newDraft', { task, agentId: 'scripted', ...extra });
  assert.ok(change, `the draft "${task}" was created`);
  return change;
}

async function settled(changeId: string): Promise<Change> {
  const api = await lanesApi();
  return waitFor(
    () => {
      const found = api.registry.findChange(changeId)?.change;
      return found?.agentRun && found.agentRun.state !== 'running' ? found : undefined;
    },
    `the agent of ${changeId} to finish`,
    45_000,
  );
}

describe('Draft lane in a real VS Code', () => {
  let repoRoot: string;
  let statusBefore: string;
  let headBefore: string;

  before(async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    await api.registry.ensureDiscovered();
    repoRoot = api.registry.repositories()[0]!.root;
    statusBefore = git(repoRoot, 'status', '--porcelain');
    headBefore = git(repoRoot, 'rev-parse', 'HEAD');
  });

  it('New Draft creates a worktree outside the workspace, runs the agent and records the diff and flags', async () => {
    const api = await lanesApi();
    const change = await draft('Add a greeting function and a test');
    assert.ok(!change.worktreePath.startsWith(repoRoot), 'the worktree is outside the workspace folder');
    assert.ok(!vscode.workspace.getWorkspaceFolder(vscode.Uri.file(change.worktreePath)), 'and outside every workspace folder');
    const done = await settled(change.id);
    assert.equal(done.agentRun?.state, 'succeeded', done.agentRun?.message);
    assert.equal(done.baseSha, headBefore);
    const repo = api.registry.repositories()[0]!;
    const evidence = await repo.evidence.read(change.id);
    assert.equal(evidence.kind, 'ok');
    if (evidence.kind === 'ok') {
      assert.deepEqual(evidence.evidence.diff?.files.map((f) => f.path).sort(), ['src/greeting.js', 'test/greeting.test.js']);
      assert.equal(evidence.evidence.checkout?.untouched, true);
      // The extension host ran the agent inside bubblewrap, verified by the canary first.
      assert.equal(evidence.evidence.isolation?.backend, 'process');
      assert.equal(evidence.evidence.isolation?.verified, true, JSON.stringify(evidence.evidence.isolation?.probes));
    }
    const roots = await api.tree.getChildren();
    assert.equal(labelOf(api, roots[0]!), 'Draft (1)');
    const [node] = await api.tree.getChildren(roots[0]);
    assert.match(String(api.tree.getTreeItem(node!).description), /^scripted · just now$/);
    assert.equal(git(repoRoot, 'status', '--porcelain'), statusBefore, "the user's checkout is untouched");
    assert.equal(git(repoRoot, 'rev-parse', 'HEAD'), headBefore);
  });

  it('Open Changes shows the change in the multi-diff editor, base against the lane branch', async () => {
    const api = await lanesApi();
    const [change] = api.registry.repositories()[0]!.store.all();
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.commands.executeCommand('agentLanes.openChanges', { changeId: change!.id });
    const tab = await waitFor(() => vscode.window.tabGroups.activeTabGroup.activeTab, 'the changes editor');
    assert.match(tab.label, new RegExp(`Change ${change!.id}`));
    // The multi-diff tab's input type is not in the stable API; its resources are read through the tab's JSON.
    const resources =
      (JSON.parse(JSON.stringify(tab.input)) as { textDiffs?: { original: { scheme: string }; modified: { path: string } }[] }).textDiffs ??
      [];
    assert.deepEqual(resources.map((d) => d.modified.path.split('/').pop()).sort(), ['greeting.js', 'greeting.test.js']);
    assert.equal(resources[0]!.original.scheme, 'agent-lanes-git');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('flags secret-like content and a new dependency', async () => {
    const api = await lanesApi();
    const change = await draft('Write a secret and add a dependency');
    await settled(change.id);
    const evidence = await api.registry.repositories()[0]!.evidence.read(change.id);
    const kinds = evidence.kind === 'ok' ? evidence.evidence.flags.map((f) => f.kind) : [];
    assert.ok(kinds.includes('secretLike'), `flags: ${kinds.join(', ')}`);
    assert.ok(kinds.includes('newDependency'), `flags: ${kinds.join(', ')}`);
  });

  it('marks a draft whose agent changed nothing, and one whose agent exited non-zero', async () => {
    const nothing = await settled((await draft('Change nothing')).id);
    assert.equal(nothing.agentRun?.state, 'noChanges');
    const failing = await settled((await draft('Fail please: exit 3')).id);
    assert.equal(failing.agentRun?.state, 'failed');
    assert.match(failing.agentRun?.message ?? '', /3/);
  });

  it('gives an agent its secret from SecretStorage by name, only once set, and redacts it from the log', async () => {
    const api = await lanesApi();
    const change = await draft('Use the API key', { agentId: 'secret-printer' });
    assert.equal(api.registry.findChange(change.id)?.change.agentRun, undefined, 'without its secret the agent is not started');
    const secret = 'sk-integration-7Hq2Lm9Xv4Tz';
    await vscode.commands.executeCommand('agentLanes.setAgentSecret', {
      agentId: 'secret-printer',
      name: 'LANES_TEST_API_KEY',
      value: secret,
    });
    await vscode.commands.executeCommand('agentLanes.runAgent', { changeId: change.id });
    const done = await settled(change.id);
    assert.equal(done.agentRun?.state, 'succeeded', done.agentRun?.message);
    assert.equal(git(repoRoot, 'show', `${done.branch}:secret-length.txt`), String(secret.length), 'the agent had the value');
    const repo = api.registry.repositories()[0]!;
    const log = readFileSync(join(repo.storage.changeDir(change.id), 'agent.log'), 'utf8');
    assert.match(log, /key=\S*REDACTED/);
    assert.doesNotMatch(log, new RegExp(secret));
    await vscode.commands.executeCommand('agentLanes.setAgentSecret', { agentId: 'secret-printer', name: 'LANES_TEST_API_KEY', value: '' });
  });

  it('refuses a base that does not exist and leaves no half state', async () => {
    const api = await lanesApi();
    const before = api.registry.repositories()[0]!.store.all().length;
    const result = await vscode.commands.executeCommand('agentLanes.newDraft', { task: 'x', base: 'no-such-ref', agentId: 'scripted' });
    assert.equal(result, undefined);
    assert.equal(api.registry.repositories()[0]!.store.all().length, before);
    assert.equal(git(repoRoot, 'branch', '--list', 'lanes/*').split('\n').filter(Boolean).length, before);
  });

  it('lets a chat agent draft only inside the worktree through the language model tools', async () => {
    const api = await lanesApi();
    const change = await vscode.commands.executeCommand<Change>('agentLanes.newDraft', {
      task: 'Chat drafted change',
      agentId: 'vscode-chat',
    });
    assert.ok(change);
    const invoke = async (name: string, input: object) => {
      const result = await vscode.lm.invokeTool(name, { input, toolInvocationToken: undefined });
      return result.content.map((part) => (part instanceof vscode.LanguageModelTextPart ? part.value : '')).join('');
    };
    assert.match(await invoke('agentLanes_writeFile', { changeId: change.id, path: '../escape.txt', content: 'x' }), /^Error: .*\.\./);
    assert.match(
      await invoke('agentLanes_writeFile', { changeId: change.id, path: `${repoRoot}/README.md`, content: 'x' }),
      /^Error: .*absolute/i,
    );
    assert.match(
      await invoke('agentLanes_writeFile', { changeId: change.id, path: 'docs/notes.md', content: '# Notes\n' }),
      /Created docs\/notes\.md/,
    );
    assert.match(await invoke('agentLanes_readFile', { changeId: change.id, path: 'docs/notes.md' }), /# Notes/);
    assert.match(
      await invoke('agentLanes_reportEvidence', { changeId: change.id, summary: 'Added notes', assumptions: ['none'] }),
      /Recorded/,
    );
    await vscode.commands.executeCommand('agentLanes.finishDraft', { changeId: change.id });
    const done = api.registry.findChange(change.id)!.change;
    assert.ok(done.headSha && done.headSha !== done.baseSha, 'the chat draft was committed');
    assert.equal(existsSync(`${repoRoot}/docs/notes.md`), false);
  });

  it('Discard removes the worktree and branch and keeps the record', async () => {
    const api = await lanesApi();
    const change = await draft('Add a greeting function and a test');
    await settled(change.id);
    await vscode.commands.executeCommand('agentLanes.discard', { changeId: change.id }, { confirmed: true });
    const closed = api.registry.findChange(change.id)!.change;
    assert.equal(closed.lane, 'closed');
    assert.equal(existsSync(change.worktreePath), false);
    assert.equal(git(repoRoot, 'branch', '--list', change.branch), '');
  });

  it('reconcile finds a worktree deleted by hand', async () => {
    const change = await draft('Change nothing');
    await settled(change.id);
    rmSync(change.worktreePath, { recursive: true, force: true });
    const api = await lanesApi();
    const findings = await api.drafts.reconcile({ quietWhenClean: true }).catch(() => []);
    assert.ok(
      findings.some((f) => f.changeId === change.id && f.kind === 'worktreeMissing'),
      JSON.stringify(findings),
    );
  });
});
