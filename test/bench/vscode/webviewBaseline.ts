import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';

/**
 * Runs inside the real VS Code: the floor under the review's first render —
 * a webview panel with one line of static HTML, from createWebviewPanel to the
 * page's report (after its first animation frame) that it drew. This is VS
 * Code's own cost of starting a webview in a new window (the iframe, its
 * service worker, the page's load), which no extension can cut; bench.mjs
 * divides the review's first render by it (`review.firstRenderRatio`).
 */
export async function run(): Promise<void> {
  const started = performance.now();
  const panel = vscode.window.createWebviewPanel('agentLanesBench.bareWebview', 'Bare webview', vscode.ViewColumn.One, {
    enableScripts: true,
  });
  const drawn = new Promise<void>((resolve) => {
    const subscription = panel.webview.onDidReceiveMessage(() => {
      subscription.dispose();
      resolve();
    });
  });
  panel.webview.html = `<!DOCTYPE html><html><body><h1>Review</h1><p>One line of static content.</p>
<script>const api = acquireVsCodeApi(); requestAnimationFrame(() => setTimeout(() => api.postMessage('drawn'), 0));</script></body></html>`;
  await drawn;
  const ms = performance.now() - started;
  panel.dispose();
  console.log(`BENCH_RESULT ${JSON.stringify({ 'review.bareWebviewFirstPaintMs': Math.round(ms) })}`);
}
