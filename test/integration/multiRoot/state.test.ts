import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { labelOf, lanesApi, sampleChange } from '../util';

describe('Several workspace folders', () => {
  it('gives each repository its own lanes and names the folder that is not one', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    const roots = await api.tree.getChildren();
    assert.deepEqual(
      roots.map((n) => labelOf(api, n)),
      ['repo-a (0 open)', 'repo-b (0 open)', 'notes (not a git repository)'],
    );
    const [repoA, repoB] = api.registry.repositories();
    assert.notEqual(repoA!.storage.changesDir, repoB!.storage.changesDir, 'each repository has its own store');
    await repoB!.store.add(sampleChange({ id: 'bbbbbbbb', title: 'Only in repo B' }));
    const lanesA = await api.tree.getChildren(roots[0]);
    const lanesB = await api.tree.getChildren((await api.tree.getChildren())[1]);
    assert.equal(labelOf(api, lanesA[0]!), 'Draft (0)');
    assert.equal(labelOf(api, lanesB[0]!), 'Draft (1)');
  });
});
