import * as vscode from 'vscode';
import type { Logger } from '../../../src/core/logger';
import type { HostMessage, ResponseMessage } from '../../../src/core/review/reviewProtocol';
import { worktreeDiffHash } from '../../../src/infra/review/reviewDiff';
import type { RepoContext } from '../../../src/vscode/repositories';
import { type GateVerdict, ReviewController, type ReviewDeps, type ReviewPanel } from '../../../src/vscode/review';
import { builtinReviewGate, createDefaultReviewDeps } from '../../../src/vscode/review/defaultDeps';
import { EXTENSION_ID, lanesApi, waitFor } from '../util';

export interface RecordingLogger extends Logger {
  lines: string[];
}

export function recordingLogger(): RecordingLogger {
  const lines: string[] = [];
  const write =
    (level: string) =>
    (message: string | Error, ...args: unknown[]) => {
      lines.push(
        `[${level}] ${message instanceof Error ? message.message : message} ${args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ')}`.trim(),
      );
    };
  return { lines, trace: write('trace'), debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

export interface TestReview {
  controller: ReviewController;
  deps: ReviewDeps;
  logger: RecordingLogger;
  audits: { action: string; changeId: string; details: Record<string, unknown>; actor: string }[];
  /** Who the reviewer is; tests change it. */
  identity: { value: string | undefined };
  /** A gate to use instead of the built-in one. */
  gate: { value: GateVerdict | undefined };
  repo: RepoContext;
}

/**
 * A review controller of its own (the extension's registers the command), with
 * real parts: the extension's registry and stores, evidence on disk, git
 * hashes of the real worktrees, real lane moves; identity and gate settable.
 */
export async function testReview(): Promise<TestReview> {
  const api = await lanesApi();
  await api.registry.ensureDiscovered();
  const repo = await waitFor(() => api.registry.repositories()[0], 'the workspace repository');
  const logger = recordingLogger();
  const audits: TestReview['audits'] = [];
  const identity: TestReview['identity'] = { value: 'reviewer@example.invalid' };
  const gate: TestReview['gate'] = { value: undefined };
  const defaults = createDefaultReviewDeps(logger, api.registry);
  const deps: ReviewDeps = {
    ...defaults,
    evaluateGate: async (_repo, _change, evidence) => gate.value ?? builtinReviewGate(evidence),
    currentDiffHash: (_repo, change) => worktreeDiffHash(change.worktreePath, change.baseSha),
    whoAmI: async () => identity.value,
    audit: async (_repo, action, changeId, details, actor) => {
      audits.push({ action, changeId, details, actor: actor.id });
    },
  };
  const extension = vscode.extensions.getExtension(EXTENSION_ID)!;
  const controller = new ReviewController(extension.extensionUri, deps);
  return { controller, deps, logger, audits, identity, gate, repo };
}

/** Opens a review and waits until its webview has drawn the model. */
export async function openAndRender(review: TestReview, changeId: string): Promise<ReviewPanel> {
  const panel = await review.controller.openReview(review.repo, changeId);
  if (!panel) throw new Error(`No review opened for ${changeId}`);
  await waitFor(() => panel.counters.rendered > 0 && panel.currentModel, `the review of ${changeId} to render`, 30_000);
  return panel;
}

/** Sends a message as the webview would and returns the response the host posted for it. */
export async function send(panel: ReviewPanel, message: Record<string, unknown>): Promise<ResponseMessage | undefined> {
  const posted: HostMessage[] = [];
  const subscription = panel.onDidPost((m) => posted.push(m));
  try {
    await panel.handleMessage(message);
  } finally {
    subscription.dispose();
  }
  return posted.find((m): m is ResponseMessage => m.type === 'response' && m.id === message.id);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
