import * as vscode from 'vscode';
import { type Change, LANE_LABELS } from '../../core/change';
import { Emitter } from '../../core/events';
import { type ReviewGlance, reviewGlance } from '../../core/review/reviewModel';
import { ReviewPanelStateSchema } from '../../core/review/reviewProtocol';
import { EvidenceStore } from '../../infra/storage/evidenceStore';
import { LaneError } from '../../core/errors';
import { showError } from '../commandKit';
import type { RepoContext } from '../repositories';
import { ApprovalGuard } from './approvalGuard';
import { ReviewContentProvider } from './contentProvider';
import type { GateVerdict } from '../../infra/lanes/review/reviewLane';
import { reviewWebviewOptions, staticMessageHtml } from './html';
import { ReviewPanel, type ReviewServices } from './panel';
import { Commands, REVIEW_VIEW_TYPE } from '../constants';

export { ReviewPanel, type ReviewServices } from './panel';
export { ApprovalGuard } from './approvalGuard';

/** The review surface: panels by change, the approval guard, and what the tree shows. */
export class ReviewController implements vscode.Disposable {
  private readonly panels = new Map<string, ReviewPanel>();
  private readonly verdicts = new Map<string, { updatedAt: string; verdict: GateVerdict }>();
  private readonly pendingVerdicts = new Set<string>();
  private readonly glanceChanged = new Emitter<void>();
  private readonly opened = new Emitter<ReviewPanel>();
  /** Fires when a review panel is created or restored, before its webview has loaded. */
  readonly onDidOpenPanel = this.opened.event;
  /** Fires when a glance changed; the tree refreshes on it. */
  readonly onDidChangeGlance = this.glanceChanged.event;
  readonly approvals: ApprovalGuard;
  /** Serves the read-only documents (a file at a reviewed commit) that the review's diff editors show. */
  readonly contentProvider: ReviewContentProvider;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly services: ReviewServices,
  ) {
    this.approvals = new ApprovalGuard(services, (repo, changeId) => void this.openReview(repo, changeId));
    this.contentProvider = new ReviewContentProvider(services.registry, services.logger);
  }

  private static key(repoRoot: string, changeId: string): string {
    return `${repoRoot}\0${changeId}`;
  }

  /** The open review of a change, if any. */
  panelFor(repoRoot: string, changeId: string): ReviewPanel | undefined {
    return this.panels.get(ReviewController.key(repoRoot, changeId));
  }

  get openPanels(): ReviewPanel[] {
    return [...this.panels.values()];
  }

  /** Opens (or reveals) the review of a change. */
  async openReview(repo: RepoContext, changeId: string, options: { preserveFocus?: boolean } = {}): Promise<ReviewPanel | undefined> {
    const existing = this.panelFor(repo.root, changeId);
    if (existing) {
      existing.panel.reveal(undefined, options.preserveFocus);
      existing.scheduleRefresh();
      return existing;
    }
    const change = repo.store.get(changeId);
    if (!change) {
      showError(
        this.services.logger,
        new LaneError('noChange', `There is no change ${changeId} in ${repo.name}; refresh the Lanes view and try again.`),
        'Opening the review',
      );
      return undefined;
    }
    const panel = vscode.window.createWebviewPanel(
      REVIEW_VIEW_TYPE,
      `Review: ${change.title}`,
      { viewColumn: vscode.ViewColumn.Active, preserveFocus: options.preserveFocus ?? false },
      { ...reviewWebviewOptions(this.extensionUri), enableFindWidget: true },
    );
    return this.attach(panel, repo, changeId);
  }

  private attach(panel: vscode.WebviewPanel, repo: RepoContext, changeId: string): ReviewPanel {
    const review = new ReviewPanel(panel, repo, changeId, this.services, this.extensionUri);
    const key = ReviewController.key(repo.root, changeId);
    this.panels.set(key, review);
    review.onDidDispose(() => {
      if (this.panels.get(key) === review) this.panels.delete(key);
    });
    this.opened.fire(review);
    review.onDidPost((message) => {
      if (message.type !== 'model') return;
      // The open review already evaluated the gate: the tree reuses its verdict.
      const { verdict, policyLabel } = message.model;
      const change = repo.store.get(changeId);
      if (change)
        this.verdicts.set(key, {
          updatedAt: change.updatedAt,
          verdict: { ready: verdict.ready, reasons: verdict.reasons, decisions: [], requiredEvidence: [], policyLabel },
        });
      this.glanceChanged.fire();
    });
    return review;
  }

  /**
   * The review state of a change for the tree, from what is known now; when
   * the gate has not been evaluated for this version of the change, it is
   * evaluated in the background and onDidChangeGlance fires.
   */
  glance(repo: RepoContext, change: Change): ReviewGlance {
    const key = ReviewController.key(repo.root, change.id);
    const known = this.verdicts.get(key);
    if (change.lane === 'review' && !change.approval && known?.updatedAt !== change.updatedAt && !this.pendingVerdicts.has(key)) {
      this.pendingVerdicts.add(key);
      void this.evaluateInBackground(repo, change, key);
    }
    return reviewGlance(change, known?.updatedAt === change.updatedAt ? known.verdict : undefined);
  }

  private async evaluateInBackground(repo: RepoContext, change: Change, key: string): Promise<void> {
    try {
      const read = await new EvidenceStore(repo.storage).read(change.id);
      const verdict = await this.services.laneFor(repo).evaluateGate(change, read.kind === 'ok' ? read.evidence : undefined);
      this.verdicts.set(key, { updatedAt: change.updatedAt, verdict });
      this.glanceChanged.fire();
    } catch (error) {
      this.services.logger.warn(
        `Could not evaluate the review gate of change ${change.id} for the Lanes view: ${(error as Error).message}`,
      );
    } finally {
      this.pendingVerdicts.delete(key);
    }
  }

  /**
   * The command: a tree node, `{ repoRoot, changeId }`, or nothing (then a picker of every change, those in
   * Review first). Any change opens: outside Review its review is read-only.
   */
  async openFromCommand(arg?: unknown): Promise<boolean> {
    await this.services.registry.ensureDiscovered();
    const target = this.targetOf(arg);
    if (target === 'invalid') {
      this.services.logger.warn(`Agent Lanes: Open Review was given an argument it does not understand: ${safeDescribe(arg)}`);
      showError(
        this.services.logger,
        new LaneError(
          'invalidTarget',
          'Agent Lanes: Open Review did not understand what to open. Run it from the Lanes view or from the Command Palette.',
        ),
        'Opening the review',
      );
      return false;
    }
    if (target) {
      const repo = this.services.registry.byRoot(target.repoRoot);
      if (!repo) {
        showError(
          this.services.logger,
          new LaneError('notARepository', `${target.repoRoot} is not a repository of this workspace; open its folder first.`),
          'Opening the review',
        );
        return false;
      }
      return (await this.openReview(repo, target.changeId)) !== undefined;
    }
    // Every change can be read; the ones in Review (the ones to decide on) come first.
    const order: Record<Change['lane'], number> = { review: 0, pullRequest: 1, release: 2, sandbox: 3, draft: 4, closed: 5 };
    const candidates = this.services.registry
      .repositories()
      .flatMap((repo) => repo.store.all().map((change) => ({ repo, change })))
      .sort((a, b) => order[a.change.lane] - order[b.change.lane] || b.change.updatedAt.localeCompare(a.change.updatedAt));
    if (!candidates.length) {
      void vscode.window.showInformationMessage(
        'There is no change to review yet: start an agent in a lane ("Agent Lanes: New Draft…") and its change appears here.',
      );
      return false;
    }
    const many = this.services.registry.repositories().length > 1;
    const picked = await vscode.window.showQuickPick(
      candidates.map(({ repo, change }) => ({
        label: change.title,
        description: `${many ? `${repo.name} · ` : ''}${change.agentId} · ${laneWords(change)}`,
        detail: `${change.id} · ${change.lane === 'review' ? reviewGlance(change).text : 'read-only'}`,
        repo,
        change,
      })),
      {
        title: 'Open Review',
        placeHolder: 'Pick a change: those in Review first (the others open read-only)',
        matchOnDescription: true,
        matchOnDetail: true,
      },
    );
    if (!picked) return false;
    return (await this.openReview(picked.repo, picked.change.id)) !== undefined;
  }

  private targetOf(arg: unknown): { repoRoot: string; changeId: string } | undefined | 'invalid' {
    if (arg === undefined || arg === null) return undefined;
    if (typeof arg !== 'object') return 'invalid';
    const value = arg as Record<string, unknown>;
    if (value.kind === 'change') {
      const repo = value.repo as { root?: unknown } | undefined;
      const change = value.change as { id?: unknown } | undefined;
      if (typeof repo?.root === 'string' && typeof change?.id === 'string') return { repoRoot: repo.root, changeId: change.id };
      return 'invalid';
    }
    if (typeof value.repoRoot === 'string' && typeof value.changeId === 'string')
      return { repoRoot: value.repoRoot, changeId: value.changeId };
    return 'invalid';
  }

  /** Restores a review panel after a reload, from the state its webview saved. */
  async restore(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const parsed = ReviewPanelStateSchema.safeParse(state);
    const fail = (message: string) => {
      this.services.logger.warn(`Could not restore a review panel: ${message}`);
      panel.webview.options = { enableScripts: false, localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'media')] };
      panel.webview.html = staticMessageHtml(panel.webview, this.extensionUri, 'Review unavailable', message);
    };
    if (!parsed.success) return fail('This review cannot be restored. Open it again from the Lanes view.');
    await this.services.registry.ensureDiscovered();
    const repo = this.services.registry.byRoot(parsed.data.repoRoot);
    if (!repo) return fail(`${parsed.data.repoRoot} is no longer a repository of this workspace, so its review cannot be shown.`);
    if (!repo.store.get(parsed.data.changeId)) return fail(`Change ${parsed.data.changeId} no longer exists in ${repo.name}.`);
    const existing = this.panelFor(repo.root, parsed.data.changeId);
    if (existing) {
      panel.dispose();
      existing.panel.reveal();
      return;
    }
    this.attach(panel, repo, parsed.data.changeId);
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) panel.dispose();
    this.panels.clear();
    this.approvals.dispose();
    this.glanceChanged.dispose();
    this.opened.dispose();
  }
}

function laneWords(change: Change): string {
  return change.lane === 'closed' ? `Closed${change.closedReason ? ` (${change.closedReason})` : ''}` : LANE_LABELS[change.lane];
}

function safeDescribe(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Registers the review's Open Review command and returns the controller the
 * rest of the extension talks to. The start-up shell registers the panel
 * serializer (reviews come back after a reload) and the read-only documents
 * the diff editors show, and forwards them to the controller and `contentProvider`.
 */
export function registerReview(context: vscode.ExtensionContext, services: ReviewServices): ReviewController {
  const controller = new ReviewController(context.extensionUri, services);
  context.subscriptions.push(
    controller,
    vscode.commands.registerCommand(Commands.openReview, (arg?: unknown) => controller.openFromCommand(arg)),
  );
  return controller;
}
