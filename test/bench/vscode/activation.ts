import * as vscode from 'vscode';
import type { LanesShellApi } from '../../../src/vscode/extension';

const EXTENSION_ID = 'agent-lanes.agent-lanes';

interface PerformanceMark {
  name: string;
  startTime: number;
}

/**
 * Runs inside the real VS Code: how long activation took in this window, as
 * a user pays it and as VS Code's Running Extensions view adds it up — the
 * time the extension host spent loading the main file (its
 * `code/extHost/willLoadExtensionCode/<id>` and `didLoadExtensionCode/<id>`
 * marks: reading and compiling the bundle) plus the time spent in activate().
 * The wait between the two, while the host activates other extensions, is
 * not Agent Lanes' and is reported apart.
 */
export async function run(): Promise<void> {
  const extension = vscode.extensions.getExtension<LanesShellApi>(EXTENSION_ID);
  if (!extension) throw new Error('Agent Lanes is not loaded');
  const shell = extension.isActive ? extension.exports : await extension.activate();
  const marks = (globalThis as { MonacoPerformanceMarks?: { getMarks(): PerformanceMark[] } }).MonacoPerformanceMarks?.getMarks() ?? [];
  const markOf = (name: string): number => {
    const mark = marks.find((candidate) => candidate.name === `code/extHost/${name}/${EXTENSION_ID}`);
    if (!mark) throw new Error(`The extension host left no ${name} mark for Agent Lanes`);
    return mark.startTime;
  };
  const willLoad = markOf('willLoadExtensionCode');
  const codeLoadingMs = markOf('didLoadExtensionCode') - willLoad;
  // The first use afterwards, for context: loading and building the lanes.
  const began = performance.now();
  shell.lanes();
  const lanesLoadMs = performance.now() - began;
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      'activation.ms': shell.activationMs,
      'activation.withModuleLoadMs': codeLoadingMs + shell.activationMs,
      'activation.codeLoadingMs': codeLoadingMs,
      'activation.hostQueueMs': Math.max(0, shell.activatedAt - willLoad - codeLoadingMs - shell.activationMs),
      'activation.lanesFirstUseMs': lanesLoadMs,
    })}`,
  );
}
