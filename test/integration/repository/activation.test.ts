import * as assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { labelOf, lanesApi, sampleChange, shellApi, waitFor } from '../util';

/** Whether the extension host has read the lanes bundle (dist/lanes.js) yet. */
const lanesBundleLoaded = () => Object.keys(require.cache).some((path) => /[\\/]dist[\\/]lanes\.js$/.test(path));

describe('Agent Lanes in a git repository', () => {
  it('activates and contributes its commands with the Lanes category', async () => {
    const shell = await shellApi();
    assert.ok(shell.activationMs > 0, 'activation time is measured');
    const commands = await vscode.commands.getCommands(true);
    for (const id of ['agentLanes.newDraft', 'agentLanes.refresh', 'agentLanes.showPolicyState']) {
      assert.ok(commands.includes(id), `${id} is registered`);
    }
  });

  it('loads only the shell at start-up; the lanes load on first use and keep every command', async () => {
    assert.equal(lanesBundleLoaded(), false, 'the lanes bundle is not read while the Lanes view is hidden and no command ran');
    const before = (await vscode.commands.getCommands(true)).filter((id) => id.startsWith('agentLanes.')).sort();
    const api = await lanesApi();
    assert.ok(lanesBundleLoaded(), 'the lanes bundle is read on first use');
    assert.equal(api, await lanesApi(), 'the lanes load once');
    const after = (await vscode.commands.getCommands(true)).filter((id) => id.startsWith('agentLanes.')).sort();
    assert.deepEqual(after, before, 'the real commands replace the stand-ins one for one');
  });

  it('does no git work before the view is shown', async () => {
    const api = await lanesApi();
    assert.equal(api.registry.hasDiscovered, false, 'repositories are discovered lazily');
  });

  it('shows the welcome state when the repository has no changes yet', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    await waitFor(() => api.registry.hasDiscovered, 'discovery');
    const roots = await api.tree.getChildren();
    assert.deepEqual(roots, []);
    assert.equal(api.tree.state, 'empty');
    assert.equal(api.registry.repositories().length, 1);
    assert.match(api.statusBar.text, /local policy/);
  });

  it('shows the four lanes with counts once a change exists, and persists it', async () => {
    const api = await lanesApi();
    const repo = api.registry.repositories()[0]!;
    await repo.store.add(sampleChange());
    const roots = await waitFor(async () => {
      const nodes = await api.tree.getChildren();
      return nodes.length ? nodes : undefined;
    }, 'lanes to appear');
    assert.deepEqual(
      roots.map((n) => labelOf(api, n)),
      ['Draft (1)', 'Sandbox (0)', 'Review (0)', 'Pull request (0)'],
    );
    assert.equal(api.tree.state, 'ready');
    const draft = await api.tree.getChildren(roots[0]);
    assert.equal(draft.length, 1);
    const item = api.tree.getTreeItem(draft[0]!);
    assert.equal(item.label, 'Add a greeting function');
    assert.match(String(item.description), /^scripted-agent · just now$/);
    assert.ok(item.tooltip instanceof vscode.MarkdownString && item.tooltip.value.includes('a1b2c3d4'));
    assert.equal(item.contextValue, 'change.draft');
  });

  it('refuses an illegal move with a readable reason and keeps the change where it was', async () => {
    const api = await lanesApi();
    const repo = api.registry.repositories()[0]!;
    const result = await repo.store.transition('a1b2c3d4', 'reject', { type: 'user', id: 'tester' });
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.reason : '', /only a change in Review can be rejected/);
    assert.equal(repo.store.get('a1b2c3d4')?.lane, 'draft');
  });

  it('leaves a change record broken by hand for the next session (the reload scenario reads it)', async () => {
    const api = await lanesApi();
    const repo = api.registry.repositories()[0]!;
    mkdirSync(repo.storage.changeDir('deadbeef'), { recursive: true });
    writeFileSync(repo.storage.changeRecordFile('deadbeef'), '{ "id": "deadbeef", "title": ');
  });
});
