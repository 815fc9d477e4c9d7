import * as vscode from 'vscode';
import type { LanesApi } from '../../../src/vscode/extension';

/** Runs inside the real VS Code: reports how long activate() took in this window. */
export async function run(): Promise<void> {
  const extension = vscode.extensions.getExtension<LanesApi>('agent-lanes.agent-lanes');
  if (!extension) throw new Error('Agent Lanes is not loaded');
  const api = extension.isActive ? extension.exports : await extension.activate();
  console.log(
    `BENCH_RESULT ${JSON.stringify({ 'activation.ms': api.activationMs, 'activation.withModuleLoadMs': api.loadAndActivateMs ?? -1 })}`,
  );
}
