import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { lanesApi } from '../util';

describe('A folder that is not a git repository', () => {
  it('shows the "not a git repository" welcome state, without an error', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    assert.deepEqual(await api.tree.getChildren(), []);
    assert.equal(api.tree.state, 'noRepository');
    const [problem] = api.registry.folderProblems();
    assert.equal(problem?.kind, 'notRepository');
    assert.match(problem?.message ?? '', /is not a git repository\. Run "git init"/);
  });
});
