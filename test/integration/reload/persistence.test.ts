import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { labelOf, lanesApi, waitFor } from '../util';

describe('After VS Code is opened again on the same repository', () => {
  it('shows the change that was recorded in the previous session', async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    const roots = await waitFor(async () => {
      const nodes = await api.tree.getChildren();
      return nodes.length ? nodes : undefined;
    }, 'lanes to appear');
    assert.equal(labelOf(api, roots[0]!), 'Draft (1)');
    const [change] = await api.tree.getChildren(roots[0]);
    assert.equal(api.tree.getTreeItem(change!).label, 'Add a greeting function');
  });
});
