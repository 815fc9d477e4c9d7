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

  it('names a change record that cannot be read, below the lanes of the changes that can', async () => {
    const api = await lanesApi();
    const roots = await api.tree.getChildren();
    const last = api.tree.getTreeItem(roots.at(-1)!);
    assert.equal(last.label, '1 change record could not be read');
    assert.match(String(last.tooltip), /deadbeef[\\/]change\.json is not valid JSON .*left as it is/);
    assert.equal(roots.filter((node) => node.kind === 'lane').length, 4, 'the lanes still show');
  });
});
