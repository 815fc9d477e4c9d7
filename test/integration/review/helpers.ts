import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Logger } from '../../../src/core/logger';
import type { HostMessage, ResponseMessage, ReviewModel } from '../../../src/core/review/reviewProtocol';
import type { LaneContext } from '../../../src/infra/lanes/laneContext';
import { ReviewLane } from '../../../src/infra/lanes/review/reviewLane';
import { PolicyService } from '../../../src/infra/policy/policyService';
import type { RepoContext } from '../../../src/vscode/repositories';
import { ReviewController, type ReviewPanel } from '../../../src/vscode/review';
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

export interface AuditedAction {
  action: string;
  changeId: string | undefined;
  details: Record<string, unknown>;
  actor: string;
}

export interface TestReview {
  controller: ReviewController;
  logger: RecordingLogger;
  /** Who the reviewer is; tests change it. */
  identity: { value: string | undefined };
  /** Adds user-level policy (as the "agentLanes.policy.user" setting holds it) to REVIEW_POLICY, until reset. */
  restrictPolicy(extra: Record<string, unknown>): Promise<void>;
  /** Back to REVIEW_POLICY alone. */
  resetPolicy(): Promise<void>;
  /** The events of a change in the repository's audit log. */
  audits(changeId: string): Promise<AuditedAction[]>;
  repo: RepoContext;
  /** The repository's lane context with this review's policy service: decisions recorded through it use the tests' policy. */
  context: LaneContext;
  /** Addresses the review opened outside VS Code (the pull request link), in order. */
  opened: string[];
  dispose(): void;
}

/** The review tests' user-level policy: evidence required as the review shows it, and no self-approval. */
export const REVIEW_POLICY = {
  lanes: {
    evidence: { required: ['filesTouched', 'tests', 'prompt', 'agent', 'baseAndHead'] },
    approvals: { forbidSelfApproval: true },
  },
};

/**
 * A review controller of its own (the extension's registers the command), with
 * real parts: the extension's registry, stores and audit log, evidence on disk,
 * a real Review lane on the repository's context with a policy service of its
 * own (its user level set by the tests), git hashes of the real worktrees,
 * real lane moves; only who the reviewer is is settable.
 */
export async function testReview(): Promise<TestReview> {
  const api = await lanesApi();
  await api.registry.ensureDiscovered();
  const repo = await waitFor(() => api.registry.repositories()[0], 'the workspace repository');
  const logger = recordingLogger();
  const identity: TestReview['identity'] = { value: 'reviewer@example.invalid' };
  const policy = new PolicyService(
    { user: REVIEW_POLICY },
    { cacheFile: join(repo.storage.root, `review-test-policy-${process.pid}.json`), logger },
  );
  const context: LaneContext = { ...repo.lanes.context, policy };
  const lane = new ReviewLane(context, repo.lanes.draft);
  const opened: string[] = [];
  const extension = vscode.extensions.getExtension(EXTENSION_ID)!;
  const controller = new ReviewController(extension.extensionUri, {
    logger,
    registry: api.registry,
    laneFor: () => lane,
    reviewer: async () => identity.value,
    // The browser is outside the test: what would be opened is recorded instead.
    openExternal: async (uri) => {
      opened.push(uri.toString(true));
      return true;
    },
  });
  return {
    controller,
    logger,
    identity,
    repo,
    context,
    opened,
    restrictPolicy: async (extra) => {
      await policy.updateSettings({ user: { ...REVIEW_POLICY, ...extra } });
    },
    resetPolicy: async () => {
      await policy.updateSettings({ user: REVIEW_POLICY });
    },
    audits: async (changeId) => {
      const { events } = await repo.lanes.context.audit.readAll();
      return events
        .filter((event) => event.changeId === changeId)
        .map((event) => ({ action: event.action, changeId: event.changeId, details: event.details ?? {}, actor: event.actor.id }));
    },
    dispose: () => {
      controller.dispose();
      policy.dispose();
    },
  };
}

/** Opens a review and waits until its webview has drawn the full model (after the first one from stored facts). */
export async function openAndRender(review: TestReview, changeId: string): Promise<ReviewPanel> {
  const panel = await review.controller.openReview(review.repo, changeId);
  if (!panel) throw new Error(`No review opened for ${changeId}`);
  await fullyRendered(panel);
  return panel;
}

/** The full model, once the webview has drawn something: the one git and the hashes were read for. */
export function fullyRendered(panel: ReviewPanel): Promise<ReviewModel> {
  return waitFor(
    () => (panel.counters.rendered > 0 && panel.currentModel && !panel.currentModel.provisional ? panel.currentModel : undefined),
    `the review of ${panel.changeId} to render`,
    60_000,
  );
}

let nextTestRequestId = 1_000_000_000;

/**
 * Sends a message as the webview would and returns the response the host posted for it.
 * A request's id is replaced by one the webview never uses (its own count from 1, and it
 * loads the diff on screen at once), so the answer found is this request's.
 */
export async function send(panel: ReviewPanel, message: Record<string, unknown>): Promise<ResponseMessage | undefined> {
  const sent = typeof message.id === 'number' ? { ...message, id: nextTestRequestId++ } : message;
  const posted: HostMessage[] = [];
  const subscription = panel.onDidPost((m) => posted.push(m));
  try {
    await panel.handleMessage(sent);
  } finally {
    subscription.dispose();
  }
  return posted.find((m): m is ResponseMessage => m.type === 'response' && m.id === sent.id);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
