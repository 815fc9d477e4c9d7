import * as vscode from 'vscode';
import type { Change } from '../../src/core/change';
import type { LanesShellApi } from '../../src/vscode/extension';
import type { LanesApi } from '../../src/vscode/lanes';
import type { LanesNode } from '../../src/vscode/lanesTree';

export const EXTENSION_ID = 'agent-lanes.agent-lanes';

/** The start-up shell's api: activation figures, and the lanes on first use. */
export async function shellApi(): Promise<LanesShellApi> {
  const extension = vscode.extensions.getExtension<LanesShellApi>(EXTENSION_ID);
  if (!extension) throw new Error(`Extension ${EXTENSION_ID} is not loaded`);
  return extension.isActive ? extension.exports : await extension.activate();
}

/** The loaded lanes (loading them if no view or command has yet). */
export async function lanesApi(): Promise<LanesApi> {
  return (await shellApi()).lanes();
}

export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The labels of the tree's nodes, as a person would read them. */
export function labelOf(api: LanesApi, node: LanesNode): string {
  const item = api.tree.getTreeItem(node);
  const label = typeof item.label === 'string' ? item.label : (item.label?.label ?? '');
  return item.description ? `${label} (${String(item.description)})` : label;
}

export function sampleChange(overrides: Partial<Change> = {}): Change {
  const now = new Date().toISOString();
  return {
    id: 'a1b2c3d4',
    title: 'Add a greeting function',
    task: 'Add a greeting function and a test for it.',
    agentId: 'scripted-agent',
    baseRef: 'main',
    baseSha: '0000000000000000000000000000000000000000',
    branch: 'lanes/a1b2c3d4-add-a-greeting-function',
    worktreePath: '/nonexistent/worktree',
    lane: 'draft',
    createdAt: now,
    updatedAt: now,
    history: [],
    ...overrides,
  };
}
