import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { lanesApi } from '../util';

describe('No workspace folder', () => {
  it('shows the open-a-folder welcome state and runs commands without errors', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    assert.deepEqual(await api.tree.getChildren(), []);
    assert.equal(api.tree.state, 'noFolder');
    await vscode.commands.executeCommand('agentLanes.refresh');
    assert.equal(api.registry.repositories().length, 0);
  });
});
