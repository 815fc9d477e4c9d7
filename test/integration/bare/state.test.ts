import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { lanesApi } from '../util';

describe('A bare repository', () => {
  it('shows the bare-repository welcome state with what to do', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    assert.deepEqual(await api.tree.getChildren(), []);
    assert.equal(api.tree.state, 'bareRepository');
    assert.match(api.registry.folderProblems()[0]?.message ?? '', /bare git repository.*Open a clone/);
  });
});
