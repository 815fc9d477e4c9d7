import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Actor, Change } from '../../core/change';
import { Emitter } from '../../core/events';
import { hashEvidence } from '../../core/evidence';
import { type EvidenceSource, approvalRefusal, buildEvidenceView, decisionView, filesFromAnalysis } from '../../core/review/reviewModel';
import { buildVerdict, gateDecisionForReview, pullRequestView, readOnlyReason } from '../../core/review/verdict';
import {
  type FileDiff,
  type HostMessage,
  type ReviewModel,
  type WebviewRequest,
  parseWebviewMessage,
} from '../../core/review/reviewProtocol';
import type { Logger } from '../../core/logger';
import { type GateVerdict, type ReviewLane, ReviewRefusal } from '../../infra/lanes/review/reviewLane';
import { EvidenceStore } from '../../infra/storage/evidenceStore';
import { type ReviewDiffListing, listReviewDiff, loadFileDiffs, resolveReviewHead, worktreeDiffHash } from '../../infra/review/reviewDiff';
import type { RepoContext, RepositoryRegistry } from '../repositories';
import { reviewContentUri } from './contentProvider';
import { reviewHtml, reviewWebviewOptions } from './html';
import { pathExists } from '../../infra/storage/fileStore';

const REFRESH_DELAY_MS = 150;
const WORKTREE_CHECK_DELAY_MS = 500;
/** Invalid messages beyond this many are counted, not each logged. */
const LOGGED_IGNORES = 20;

/** What the review needs from the extension: the repository's Review lane, and who the reviewer is. */
export interface ReviewServices {
  readonly logger: Logger;
  readonly registry: RepositoryRegistry;
  /** The Review lane of a repository: every rule of an approval lives there. */
  laneFor(repo: RepoContext): ReviewLane;
  /** Who the reviewer is in a repository; undefined when it cannot be told. */
  reviewer(repo: RepoContext): Promise<string | undefined>;
  /** Opens an address outside VS Code (the pull request); vscode.env.openExternal when not given. */
  openExternal?(uri: vscode.Uri): Thenable<boolean>;
}

/** Everything a review model is made from, read fresh. */
interface ReviewFacts {
  change: Change;
  evidence: EvidenceSource;
  listing: ReviewDiffListing | { error: string };
  gate: GateVerdict;
  approver: string | undefined;
  approverPending: boolean;
  forbidSelfApproval: boolean;
  worktreeExists: boolean;
  /** Built from the stored diff analysis before git listed the commits: shown, never approved. */
  provisional?: boolean;
}

/** How long the first model waits for the webview to ask for it before the full read starts anyway. */
const FIRST_MODEL_WAIT_MS = 2_000;

type RequestResult = { message?: string; files?: FileDiff[] };

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';

/**
 * One change's review: the webview panel, its messages, and the actions.
 * The model is built from the store, the evidence file and git, and sent
 * again whenever one of them changes.
 */
export class ReviewPanel implements vscode.Disposable {
  private facts: ReviewFacts | undefined;
  private identity: { settled: boolean; value: string | undefined } = { settled: false, value: undefined };
  private model: ReviewModel | undefined;
  private generation = 0;
  private building: Promise<ReviewFacts | undefined> | undefined;
  private listingCache: ReviewDiffListing | undefined;
  /** The worktree's diff hash on disk, for the listing it was compared with. */
  private worktreeHash: { listingHash: string; hash: string } | undefined;
  private webviewReady = false;
  private busy = false;
  private disposed = false;
  private refreshTimer: NodeJS.Timeout | undefined;
  private worktreeTimer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly posted = new Emitter<HostMessage>();
  private readonly rendered = new Emitter<{ files: number; ms: number }>();
  private readonly disposedEmitter = new Emitter<void>();
  /** Every message sent to the webview (tests watch it). */
  readonly onDidPost = this.posted.event;
  /** The webview drew a model: header, evidence, file list. */
  readonly onDidRender = this.rendered.event;
  readonly onDidDispose = this.disposedEmitter.event;
  /** Messages handled and ignored, and models drawn, for the log and the tests. */
  readonly counters = { handled: 0, ignored: 0, rendered: 0 };

  constructor(
    readonly panel: vscode.WebviewPanel,
    readonly repo: RepoContext,
    readonly changeId: string,
    private readonly services: ReviewServices,
    extensionUri: vscode.Uri,
  ) {
    const change = repo.store.get(changeId);
    panel.title = `Review: ${change?.title ?? changeId}`;
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'lanes.svg');
    panel.webview.options = reviewWebviewOptions(extensionUri);
    panel.webview.html = reviewHtml(panel.webview, extensionUri, { changeId, repoRoot: repo.root, title: panel.title });
    this.disposables.push(
      panel.webview.onDidReceiveMessage((raw: unknown) => void this.handleMessage(raw)),
      panel.onDidDispose(() => this.dispose()),
    );
    const storeSubscription = repo.store.onDidChange((changed) => {
      if (!changed || changed.id === changeId) this.scheduleRefresh();
    });
    this.disposables.push({ dispose: () => storeSubscription.dispose() });
    const evidenceWatcher = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(vscode.Uri.file(repo.storage.changeDir(changeId)), 'evidence.json'),
    );
    evidenceWatcher.onDidCreate(() => this.scheduleRefresh());
    evidenceWatcher.onDidChange(() => this.scheduleRefresh());
    evidenceWatcher.onDidDelete(() => this.scheduleRefresh());
    this.disposables.push(evidenceWatcher);
    if (change) {
      const worktreeWatcher = vscode.workspace.createFileSystemWatcher(
        new vscode.RelativePattern(vscode.Uri.file(change.worktreePath), '**/*'),
      );
      const onWorktree = (uri: vscode.Uri) => {
        if (!/[\\/]\.git$/.test(uri.fsPath)) this.scheduleWorktreeCheck();
      };
      worktreeWatcher.onDidCreate(onWorktree);
      worktreeWatcher.onDidChange(onWorktree);
      worktreeWatcher.onDidDelete(onWorktree);
      this.disposables.push(worktreeWatcher);
    }
    // Build the first model while the webview loads, from what is stored (the
    // change, its evidence and the diff analysis of draft finish), and send it
    // as soon as the webview asks; git and the hashes follow. Who the reviewer
    // is can take a while (a sign-in provider), so it does not hold up either.
    this.building = this.start();
    void this.lookUpIdentity();
  }

  /** The first model, then the full one. Resolves with the full facts. */
  private async start(): Promise<ReviewFacts | undefined> {
    let preview: ReviewModel | undefined;
    try {
      preview = await this.buildPreview();
    } catch (error) {
      this.services.logger.warn(`Review of ${this.changeId}: the first model could not be built (${firstLine(error)}); reading everything`);
    }
    if (preview && !this.disposed && !this.model) {
      this.model = preview;
      // Sent at once, even while the webview still loads: VS Code holds messages until the page is there,
      // so the model does not wait for the page's "ready" to travel to the extension host and back.
      this.post({ type: 'model', model: preview });
      if (!this.webviewReady) this.sentBeforeReady = preview;
      // git's work and the hashes wait until the first model is drawn: the extension host's
      // messages to and from the webview would queue behind them.
      if (!this.disposed && this.counters.rendered === 0) await this.renderedOrTimeout(FIRST_MODEL_WAIT_MS);
    }
    return this.refresh();
  }

  /** The first model, posted before the page said it was ready (the page gets it without asking). */
  private sentBeforeReady: ReviewModel | undefined;

  private renderedOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        subscription.dispose();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const subscription = this.rendered.event(done);
    });
  }

  /**
   * The review as the stored facts tell it: the change, its evidence (not
   * hashed yet), the gate, and the file list of the diff analysis stored at
   * draft finish. Undefined when there is no stored analysis to show.
   */
  private async buildPreview(): Promise<ReviewModel | undefined> {
    const change = this.repo.store.get(this.changeId);
    if (!change) return undefined;
    // Reads the policy of the change's base (git) while the evidence is read; the gate then finds it cached.
    const selfApproval = this.lane.forbidsSelfApproval(change).catch(() => true);
    const read = await this.repo.evidence.read(this.changeId);
    if (read.kind !== 'ok' || !read.evidence.diff || !read.evidence.headSha) return undefined;
    const evidence = read.evidence;
    const diff = evidence.diff!;
    const source: EvidenceSource = { kind: 'ok', evidence, hash: null };
    const forbidSelfApproval = await selfApproval;
    const gate = await this.evaluateGate(change, source);
    return this.toModel({
      change,
      evidence: source,
      listing: {
        hash: diff.hash,
        baseSha: evidence.base.sha,
        headSha: evidence.headSha!,
        files: filesFromAnalysis(diff.files),
        totals: diff.totals,
      },
      gate,
      approver: this.identity.value,
      approverPending: !this.identity.settled,
      forbidSelfApproval,
      worktreeExists: true,
      provisional: true,
    });
  }

  private get lane(): ReviewLane {
    return this.services.laneFor(this.repo);
  }

  private async lookUpIdentity(): Promise<void> {
    let value: string | undefined;
    try {
      value = await this.services.reviewer(this.repo);
    } catch (error) {
      this.services.logger.warn(`Could not tell who the reviewer is: ${firstLine(error)}`);
    }
    this.identity = { settled: true, value };
    const facts = this.facts;
    if (this.disposed || !facts) return;
    this.facts = { ...facts, approver: value, approverPending: false };
    this.model = this.toModel(this.facts);
    if (this.webviewReady) this.post({ type: 'model', model: this.model });
  }

  /** The model last sent (or about to be sent) to the webview. */
  get currentModel(): ReviewModel | undefined {
    return this.model;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Resolves when the webview next reports a drawn model. */
  whenRendered(): Promise<{ files: number; ms: number }> {
    return new Promise((resolve) => {
      const subscription = this.rendered.event((value) => {
        subscription.dispose();
        resolve(value);
      });
    });
  }

  // -------------------------------------------------------------------------
  // Building the model

  scheduleRefresh(): void {
    if (this.disposed) return;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    }, REFRESH_DELAY_MS);
  }

  /** Reads everything again, sends the new model, and returns the facts it was built from. */
  refresh(): Promise<ReviewFacts | undefined> {
    const generation = ++this.generation;
    const building = this.collectFacts().then(
      (facts) => {
        if (this.disposed || generation !== this.generation) return facts;
        // The identity may have arrived while the facts were read.
        if (facts) Object.assign(facts, { approver: this.identity.value, approverPending: !this.identity.settled });
        this.facts = facts;
        if (!facts) {
          this.model = undefined;
          this.post({
            type: 'notice',
            level: 'error',
            message: `Change ${this.changeId} no longer exists in ${this.repo.name}; close this review.`,
          });
          return facts;
        }
        this.model = this.toModel(facts);
        this.panel.title = `Review: ${facts.change.title}`;
        if (this.webviewReady) this.post({ type: 'model', model: this.model });
        this.scheduleWorktreeCheck(0);
        return facts;
      },
      (error: unknown) => {
        this.services.logger.error(`Could not build the review of change ${this.changeId}`, error);
        this.post({
          type: 'notice',
          level: 'error',
          message: `The review could not be built: ${firstLine(error)}. See "Agent Lanes: Show Log".`,
        });
        return undefined;
      },
    );
    this.building = building;
    return building;
  }

  private async collectFacts(): Promise<ReviewFacts | undefined> {
    const change = this.repo.store.get(this.changeId);
    if (!change) return undefined;
    const [evidence, listing, worktreeExists] = await Promise.all([
      this.readEvidence(),
      this.readListing(change),
      pathExists(change.worktreePath),
    ]);
    const approver = this.identity.value;
    const approverPending = !this.identity.settled;
    const gate = await this.evaluateGate(change, evidence);
    let forbidSelfApproval = true;
    try {
      forbidSelfApproval = await this.lane.forbidsSelfApproval(change);
    } catch (error) {
      this.services.logger.error('Could not read whether policy forbids self-approval; treating it as forbidden', error);
    }
    return { change, evidence, listing, gate, approver, approverPending, forbidSelfApproval, worktreeExists };
  }

  private async readEvidence(): Promise<EvidenceSource> {
    try {
      const read = await new EvidenceStore(this.repo.storage).read(this.changeId);
      if (read.kind === 'ok') return { kind: 'ok', evidence: read.evidence, hash: hashEvidence(read.evidence) };
      if (read.kind === 'invalid') this.services.logger.warn(`Review of ${this.changeId}: ${read.message}`);
      return read;
    } catch (error) {
      this.services.logger.error(`Could not read the evidence of change ${this.changeId}`, error);
      return { kind: 'invalid', message: `The evidence file could not be read (${firstLine(error)}).` };
    }
  }

  private async readListing(change: Change): Promise<ReviewDiffListing | { error: string }> {
    try {
      const head = await resolveReviewHead(this.repo.root, change);
      const cached = this.listingCache;
      if (cached && cached.baseSha === change.baseSha && cached.headSha === head) return cached;
      const listing = await listReviewDiff(this.repo.root, change.baseSha, head);
      this.listingCache = listing;
      return listing;
    } catch (error) {
      this.services.logger.error(`Could not list the diff of change ${change.id}`, error);
      return {
        error: `git could not list the diff of ${change.baseSha.slice(0, 10)}..${(change.headSha ?? change.branch).slice(0, 10)}: ${firstLine(error)}`,
      };
    }
  }

  private async evaluateGate(change: Change, evidence: EvidenceSource): Promise<GateVerdict> {
    try {
      return await this.lane.evaluateGate(change, evidence.kind === 'ok' ? evidence.evidence : undefined);
    } catch (error) {
      this.services.logger.error(`Could not evaluate the review gate of change ${change.id}`, error);
      return {
        ready: false,
        reasons: [`policy could not be evaluated (${firstLine(error)}); see "Agent Lanes: Show Log"`],
        decisions: [],
        requiredEvidence: [],
        policyLabel: 'policy unavailable',
      };
    }
  }

  private refusalFor(facts: ReviewFacts, worktreeDiffHash: string | undefined): string | undefined {
    const listing = 'hash' in facts.listing ? facts.listing : undefined;
    const evidence = facts.evidence.kind === 'ok' ? facts.evidence.evidence : undefined;
    return approvalRefusal({
      change: facts.change,
      gate: facts.gate,
      evidence: { state: facts.evidence.kind, ...(facts.evidence.kind === 'invalid' ? { message: facts.evidence.message } : {}) },
      diff: listing ? { state: 'ok' } : { state: 'error', message: 'error' in facts.listing ? facts.listing.error : '' },
      approver: facts.approver,
      approverPending: facts.approverPending,
      forbidSelfApproval: facts.forbidSelfApproval,
      worktreeExists: facts.worktreeExists,
      ...(listing ? { reviewedDiffHash: listing.hash } : {}),
      ...(evidence?.diff ? { evidenceDiffHash: evidence.diff.hash } : {}),
      ...(worktreeDiffHash !== undefined ? { worktreeDiffHash } : {}),
    });
  }

  private toModel(facts: ReviewFacts): ReviewModel {
    const { change, gate } = facts;
    const listing = 'hash' in facts.listing ? facts.listing : undefined;
    const worktreeHash = listing && this.worktreeHash?.listingHash === listing.hash ? this.worktreeHash.hash : undefined;
    const refusal = this.refusalFor(facts, worktreeHash);
    const inReview = change.lane === 'review';
    const notInReview = `Change ${change.id} is not in Review.`;
    const warnings: string[] = [];
    // A closed change's worktree is removed on purpose, and a pull request (or a merged change in Release) no longer needs it.
    if (!facts.worktreeExists && change.lane !== 'closed' && change.lane !== 'pullRequest' && change.lane !== 'release')
      warnings.push(
        `The worktree ${change.worktreePath} no longer exists. The diff is shown from the change's commits; it cannot be approved until the worktree is restored ("Agent Lanes: Reconcile").`,
      );
    if (facts.evidence.kind === 'invalid') warnings.push(facts.evidence.message);
    const evidenceDiff = facts.evidence.kind === 'ok' ? facts.evidence.evidence.diff : undefined;
    if (listing && evidenceDiff && evidenceDiff.hash !== listing.hash)
      warnings.push('The evidence was recorded for another diff than the one shown: run the sandbox tasks again.');
    if (worktreeHash !== undefined && listing && worktreeHash !== listing.hash)
      warnings.push('The worktree has changes that are not in the reviewed commits (uncommitted or newer work).');
    if ('error' in facts.listing) warnings.push(facts.listing.error);
    const evidence = buildEvidenceView(facts.evidence, gate.requiredEvidence, listing?.hash ?? null);
    const verdict = buildVerdict({
      change,
      gate,
      refusal,
      evidence,
      files: listing ? listing.files.map((file) => file.path) : [],
      warnings,
    });
    const readOnly = readOnlyReason(change);
    const pullRequest = pullRequestView(change);
    return {
      changeId: change.id,
      repoName: this.repo.name,
      title: change.title,
      task: change.task,
      agentId: change.agentId,
      lane: change.lane,
      ...(change.closedReason ? { closedReason: change.closedReason } : {}),
      branch: change.branch,
      ...(change.createdBy ? { createdBy: change.createdBy } : {}),
      createdAt: change.createdAt,
      policyLabel: gate.policyLabel,
      verdict: {
        ...verdict,
        // The gate as it stands now, in Review only (elsewhere the change's own decisions are in the evidence).
        decisions: inReview ? gate.decisions.map((decision) => decisionView(gateDecisionForReview(decision, change))) : [],
      },
      ...(readOnly ? { readOnly } : {}),
      ...(facts.provisional ? { provisional: true as const } : {}),
      ...(pullRequest ? { pullRequest } : {}),
      ...(change.approval ? { approval: change.approval } : {}),
      actions: {
        approve: facts.provisional
          ? { enabled: false, reason: 'The diff is still being read from git; Approve is available in a moment.' }
          : refusal
            ? { enabled: false, reason: refusal }
            : { enabled: true },
        requestChanges: inReview ? { enabled: true } : { enabled: false, reason: notInReview },
        reject: inReview ? { enabled: true } : { enabled: false, reason: notInReview },
      },
      warnings,
      requestedChanges: change.requestedChanges ?? [],
      evidence,
      diff: listing
        ? {
            state: 'ok',
            hash: listing.hash,
            baseSha: listing.baseSha,
            headSha: listing.headSha,
            totals: listing.totals,
            files: listing.files.map(({ oldBlob: _old, newBlob: _new, ...entry }) => entry),
          }
        : { state: 'error', message: 'error' in facts.listing ? facts.listing.error : 'The diff could not be read.' },
    };
  }

  /** Compares the worktree on disk with the reviewed commits, to warn about work the review does not show. */
  private scheduleWorktreeCheck(delay = WORKTREE_CHECK_DELAY_MS): void {
    if (this.disposed) return;
    if (this.worktreeTimer) clearTimeout(this.worktreeTimer);
    this.worktreeTimer = setTimeout(() => {
      this.worktreeTimer = undefined;
      void this.checkWorktree();
    }, delay);
  }

  private async checkWorktree(): Promise<void> {
    const facts = this.facts;
    if (!facts || !('hash' in facts.listing)) return;
    const listingHash = facts.listing.hash;
    const stillThere = await pathExists(facts.change.worktreePath);
    if (stillThere !== facts.worktreeExists) {
      this.scheduleRefresh();
      return;
    }
    if (!stillThere) return;
    let hash: string;
    try {
      hash = await worktreeDiffHash(facts.change.worktreePath, facts.change.baseSha);
    } catch (error) {
      this.services.logger.warn(`Could not compare the worktree of change ${this.changeId} with the review: ${firstLine(error)}`);
      return;
    }
    const previous = this.worktreeHash;
    this.worktreeHash = { listingHash, hash };
    if (this.disposed || this.facts !== facts) return;
    if (previous?.listingHash === listingHash && previous.hash === hash) return;
    this.model = this.toModel(facts);
    if (this.webviewReady) this.post({ type: 'model', model: this.model });
  }

  // -------------------------------------------------------------------------
  // Messages

  private post(message: HostMessage): void {
    if (this.disposed) return;
    this.posted.fire(message);
    this.panel.webview
      .postMessage(message)
      .then(undefined, (error: unknown) =>
        this.services.logger.warn(`Could not send a message to the review of ${this.changeId}: ${firstLine(error)}`),
      );
  }

  private ignore(why: string): void {
    this.counters.ignored++;
    if (this.counters.ignored <= LOGGED_IGNORES) this.services.logger.warn(`Review of change ${this.changeId}: ignored ${why}.`);
    else if (this.counters.ignored % 1000 === 0)
      this.services.logger.warn(`Review of change ${this.changeId}: ${this.counters.ignored} messages ignored so far.`);
  }

  /**
   * Handles one message from the webview. Anything that does not parse, or
   * names another change, is logged and ignored: nothing is done for it.
   */
  async handleMessage(raw: unknown): Promise<void> {
    if (this.disposed) return;
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) return this.ignore(`an invalid message (${parsed.error})`);
    const message = parsed.message;
    if (message.changeId !== this.changeId)
      return this.ignore(`a ${message.type} message naming change ${message.changeId}, not this panel's`);
    this.counters.handled++;
    switch (message.type) {
      case 'ready':
        return this.onReady();
      case 'rendered':
        this.services.logger.debug(`Review of ${this.changeId} rendered ${message.files} files in ${message.ms.toFixed(0)} ms`);
        this.counters.rendered++;
        this.rendered.fire({ files: message.files, ms: message.ms });
        return;
      case 'webviewError':
        this.services.logger.error(`The review webview of change ${this.changeId} reported: ${message.message}`);
        return;
      default:
        return this.answer(message);
    }
  }

  private async onReady(): Promise<void> {
    this.webviewReady = true;
    const early = this.sentBeforeReady;
    this.sentBeforeReady = undefined;
    // The first model (or the full one) goes out at once, unless the page already has it; a full one still
    // being read follows when it is built. A page that loads again (VS Code drops hidden ones) asks again.
    if (this.model) {
      if (this.model !== early) this.post({ type: 'model', model: this.model });
      return;
    }
    await this.building;
    if (this.model) this.post({ type: 'model', model: this.model });
    else if (!this.facts)
      this.post({
        type: 'notice',
        level: 'error',
        message: `Change ${this.changeId} no longer exists in ${this.repo.name}; close this review.`,
      });
  }

  private async answer(request: WebviewRequest): Promise<void> {
    try {
      const result = await this.perform(request);
      this.post({ type: 'response', id: request.id, ok: true, ...result });
    } catch (error) {
      if (error instanceof ReviewRefusal) {
        this.services.logger.info(`Review of change ${this.changeId}: ${request.type} refused: ${error.message}`);
        this.post({ type: 'response', id: request.id, ok: false, error: error.message });
      } else {
        this.services.logger.error(`Review of change ${this.changeId}: ${request.type} failed`, error);
        this.post({ type: 'response', id: request.id, ok: false, error: `${firstLine(error)}. See "Agent Lanes: Show Log" for details.` });
      }
    }
  }

  private perform(request: WebviewRequest): Promise<RequestResult> {
    switch (request.type) {
      case 'loadFiles':
        return this.loadFiles(request.paths);
      case 'openFileDiff':
        return this.openFileDiff(request.path);
      case 'openChanges':
        return this.openChanges();
      case 'openPullRequest':
        return this.openPullRequest();
      case 'refresh':
        return this.refresh().then(() => ({}));
      case 'approve':
        return this.exclusive(() => this.approve(request.diffHash, request.evidenceHash));
      case 'requestChanges':
        return this.exclusive(() => this.requestChanges(request.comment));
      case 'reject':
        return this.exclusive(() => this.reject(request.comment));
    }
  }

  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy) throw new ReviewRefusal('Another review action is still running; wait for it to finish.');
    this.busy = true;
    try {
      return await work();
    } finally {
      this.busy = false;
    }
  }

  private async currentListing(): Promise<ReviewDiffListing> {
    await this.building;
    const listing = this.facts?.listing;
    if (!listing || !('hash' in listing)) throw new ReviewRefusal('The diff of this change could not be read; refresh the review.');
    return listing;
  }

  private async loadFiles(paths: readonly string[]): Promise<RequestResult> {
    const listing = await this.currentListing();
    return { files: await loadFileDiffs(this.repo.root, listing, paths) };
  }

  private async openFileDiff(path: string): Promise<RequestResult> {
    const listing = await this.currentListing();
    const file = listing.files.find((f) => f.path === path);
    if (!file) throw new ReviewRefusal(`${path} is not part of the reviewed diff.`);
    if (file.display === 'submodule')
      throw new ReviewRefusal(`${path} is a submodule: there is no file content to compare (${file.note ?? ''}).`);
    const change = this.facts?.change;
    if (file.display === 'binary') {
      const onDisk = change ? join(change.worktreePath, path) : undefined;
      if (!onDisk || !(await pathExists(onDisk)))
        throw new ReviewRefusal(`${path} is binary and is not in the worktree any more, so it cannot be opened.`);
      await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(onDisk), { preview: true });
      return {};
    }
    const left = reviewContentUri(this.repo.root, file.oldPath ?? file.path, file.oldBlob);
    const right = reviewContentUri(this.repo.root, file.path, file.newBlob);
    const title = `${file.path} (${listing.baseSha.slice(0, 7)} ↔ ${listing.headSha.slice(0, 7)})`;
    await vscode.commands.executeCommand('vscode.diff', left, right, title, { preview: true });
    return {};
  }

  private async openChanges(): Promise<RequestResult> {
    const listing = await this.currentListing();
    const change = this.facts?.change;
    const root = change?.worktreePath ?? this.repo.root;
    const resources = listing.files
      .filter((file) => file.display !== 'submodule')
      .map((file) => [
        vscode.Uri.file(join(root, file.path)),
        file.oldBlob ? reviewContentUri(this.repo.root, file.oldPath ?? file.path, file.oldBlob) : undefined,
        file.newBlob ? reviewContentUri(this.repo.root, file.path, file.newBlob) : undefined,
      ]);
    await vscode.commands.executeCommand('vscode.changes', `Review: ${change?.title ?? this.changeId}`, resources);
    return {};
  }

  /** Opens the pull request the change's record names, in the browser; only an https address is opened. */
  private async openPullRequest(): Promise<RequestResult> {
    const pr = this.repo.store.get(this.changeId)?.pullRequest;
    if (!pr) throw new ReviewRefusal(`Change ${this.changeId} has no pull request on record.`);
    let uri: vscode.Uri;
    try {
      uri = vscode.Uri.parse(pr.url, true);
    } catch {
      throw new ReviewRefusal(`The address of pull request #${pr.number} on record is not valid (${pr.url}).`);
    }
    if (uri.scheme !== 'https')
      throw new ReviewRefusal(`Pull request #${pr.number} has an address that is not https (${pr.url}), so it is not opened.`);
    const opened = await (this.services.openExternal ? this.services.openExternal(uri) : vscode.env.openExternal(uri));
    if (!opened) throw new ReviewRefusal(`VS Code did not open ${pr.url}.`);
    return {};
  }

  private async actor(): Promise<Actor> {
    const who = await this.services.reviewer(this.repo).catch(() => undefined);
    return { type: 'user', id: who ?? 'unknown reviewer' };
  }

  /** Approves exactly what the reviewer was shown; the lane checks it all again. */
  private async approve(shownDiffHash: string, shownEvidenceHash: string): Promise<RequestResult> {
    // Read afresh first, so that a refusal leaves the review showing the state it was refused for.
    const facts = await this.refresh();
    if (!facts) throw new ReviewRefusal(`Change ${this.changeId} no longer exists.`);
    const approver = await this.services.reviewer(this.repo).catch(() => undefined);
    this.identity = { settled: true, value: approver };
    await this.lane.approve(this.changeId, { shownDiffHash, shownEvidenceHash }, approver ? { type: 'user', id: approver } : undefined);
    // The header says who approved and for what, once; this line only confirms the action.
    return { message: 'Approval recorded.' };
  }

  private async requestChanges(comment: string): Promise<RequestResult> {
    await this.lane.requestChanges(this.changeId, comment, await this.actor());
    return { message: 'Changes requested: the change is back in Draft, and the agent is given your comment when it runs again.' };
  }

  private async reject(comment: string | undefined): Promise<RequestResult> {
    await this.lane.reject(this.changeId, comment, await this.actor());
    return { message: 'Rejected: the change is closed and its worktree removed; its record and audit trail stay.' };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.worktreeTimer) clearTimeout(this.worktreeTimer);
    for (const d of this.disposables) d.dispose();
    this.panel.dispose();
    this.disposedEmitter.fire();
    this.disposedEmitter.dispose();
    this.posted.dispose();
    this.rendered.dispose();
  }
}
