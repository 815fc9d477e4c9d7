import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import type { LanesShellApi } from '../../../src/vscode/extension';
import type { LanesApi } from '../../../src/vscode/lanes';
import type { ReviewPanel } from '../../../src/vscode/review';
import { seedChange } from '../../integration/review/seed';

const FILES = 2_000;
const LINES_PER_FILE = 25;

/** 2,000 files of 25 new lines each: 50,000 changed lines, spread over 40 folders. */
function generatedFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < FILES; i++) {
    const lines = Array.from(
      { length: LINES_PER_FILE },
      (_, line) => `export const value${i}_${line} = ${i * LINES_PER_FILE + line}; // generated line ${line}`,
    );
    files[`src/module${i % 40}/file${i}.ts`] = `${lines.join('\n')}\n`;
  }
  return files;
}

/**
 * Runs inside the real VS Code: from "Agent Lanes: Open Review" to the webview's
 * report that it drew the evidence and the file list, for a change of 2,000
 * files and 50,000 changed lines.
 */
export async function run(): Promise<void> {
  const extension = vscode.extensions.getExtension<LanesShellApi>('agent-lanes.agent-lanes');
  if (!extension) throw new Error('Agent Lanes is not loaded');
  const api: LanesApi = (extension.isActive ? extension.exports : await extension.activate()).lanes();
  await api.registry.ensureDiscovered();
  const repo = api.registry.repositories()[0];
  if (!repo) throw new Error('The benchmark workspace is not a git repository');
  const seeded = await seedChange(repo, { id: randomBytes(4).toString('hex'), title: 'Generated: 2,000 files', files: generatedFiles() });
  if (seeded.listing.totals.files !== FILES || seeded.listing.totals.additions !== FILES * LINES_PER_FILE) {
    throw new Error(`The generated change has ${seeded.listing.totals.files} files and ${seeded.listing.totals.additions} added lines`);
  }

  const measure = async (): Promise<{ totalMs: number; webviewMs: number; createdMs: number; modelMs: number }> => {
    const opened = new Promise<ReviewPanel>((resolve) => {
      const subscription = api.review.onDidOpenPanel((panel) => {
        subscription.dispose();
        resolve(panel);
      });
    });
    const started = performance.now();
    const command = vscode.commands.executeCommand('agentLanes.openReview', { repoRoot: repo.root, changeId: seeded.change.id });
    const panel = await opened;
    const createdMs = performance.now() - started;
    let modelMs = -1;
    const posted = panel.onDidPost((message) => {
      if (message.type === 'model' && modelMs < 0) modelMs = performance.now() - started;
    });
    const rendered = await panel.whenRendered();
    const totalMs = performance.now() - started;
    posted.dispose();
    console.log(
      `review bench: panel created at ${createdMs.toFixed(0)} ms, model sent at ${modelMs.toFixed(0)} ms, drawn at ${totalMs.toFixed(0)} ms`,
    );
    await command;
    if (rendered.files !== FILES) throw new Error(`The webview drew ${rendered.files} files, not ${FILES}`);
    panel.dispose();
    return { totalMs, webviewMs: rendered.ms, createdMs, modelMs };
  };

  const first = await measure();
  console.log(`review bench: first open ${first.totalMs.toFixed(0)} ms (webview drawing ${first.webviewMs.toFixed(0)} ms)`);
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      'review.firstRender2000FilesMs': Math.round(first.totalMs),
      'review.webviewDraw2000FilesMs': Math.round(first.webviewMs),
      // Where the time goes: the panel exists, the host sent the first model (header, evidence, file list).
      'review.panelCreated2000FilesMs': Math.round(first.createdMs),
      'review.modelSent2000FilesMs': Math.round(first.modelMs),
    })}`,
  );
}
