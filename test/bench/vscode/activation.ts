import * as vscode from 'vscode';
import type { LanesShellApi } from '../../../src/vscode/extension';

const EXTENSION_ID = 'agent-lanes.agent-lanes';

interface PerformanceMark {
  name: string;
  startTime: number;
}

/**
 * Runs inside the real VS Code: how long activation took in this window, as
 * a user pays it — from the moment the extension host began loading the main
 * file (its `code/extHost/willLoadExtensionCode/<id>` mark, Date.now() clock)
 * to the end of activate(), reading and compiling the bundle included; the
 * sum VS Code's Running Extensions view reports as load plus activation.
 */
export async function run(): Promise<void> {
  const extension = vscode.extensions.getExtension<LanesShellApi>(EXTENSION_ID);
  if (!extension) throw new Error('Agent Lanes is not loaded');
  const shell = extension.isActive ? extension.exports : await extension.activate();
  const marks = (globalThis as { MonacoPerformanceMarks?: { getMarks(): PerformanceMark[] } }).MonacoPerformanceMarks?.getMarks() ?? [];
  const willLoad = marks.find((mark) => mark.name === `code/extHost/willLoadExtensionCode/${EXTENSION_ID}`);
  if (!willLoad) throw new Error('The extension host left no willLoadExtensionCode mark for Agent Lanes');
  // The first use afterwards, for context: loading and building the lanes.
  const began = performance.now();
  shell.lanes();
  const lanesLoadMs = performance.now() - began;
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      'activation.ms': shell.activationMs,
      'activation.withModuleLoadMs': shell.activatedAt - willLoad.startTime,
      'activation.lanesFirstUseMs': lanesLoadMs,
    })}`,
  );
}
