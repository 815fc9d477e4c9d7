import * as vscode from 'vscode';
import type { Change } from '../../core/change';
import { Emitter } from '../../core/events';
import { EvidenceStore } from '../../infra/storage/evidenceStore';
import type { RepoContext } from '../repositories';
import type { ReviewServices } from './panel';

const CHECK_DELAY_MS = 400;

interface Watched {
  repo: RepoContext;
  changeId: string;
  /** The approval this watch is for: a new approval starts a new watch. */
  approvalAt: string;
  disposables: vscode.Disposable[];
  timer?: NodeJS.Timeout | undefined;
  /** Checks of one change run one after another. */
  running: Promise<unknown>;
}

export interface Invalidation {
  repo: RepoContext;
  changeId: string;
  reason: string;
}

function applies(change: Change | undefined): change is Change & { approval: NonNullable<Change['approval']> } {
  return !!change && change.lane === 'review' && !!change.approval && !change.approval.invalidated;
}

/**
 * Keeps every approval honest: while a change in Review holds an approval, its
 * worktree and its evidence file are watched, and after any event (debounced)
 * the repository's Review lane checks the approval against the hashes it was
 * given for. A change that alters the diff or the evidence (not a mere touch)
 * invalidates the approval, visibly.
 */
export class ApprovalGuard implements vscode.Disposable {
  private readonly watched = new Map<string, Watched>();
  private readonly subscription: { dispose(): void };
  private readonly invalidated = new Emitter<Invalidation>();
  /** Fires after an approval was invalidated. */
  readonly onDidInvalidate = this.invalidated.event;

  constructor(
    private readonly services: ReviewServices,
    private readonly onOpenReview: (repo: RepoContext, changeId: string) => void,
  ) {
    // The registry fires after discovery and after every store change.
    this.subscription = services.registry.onDidChange(() => this.reconcile());
    if (services.registry.hasDiscovered) this.reconcile();
  }

  /** Starts and stops watches so that exactly the live approvals are watched. */
  reconcile(): void {
    const live = new Set<string>();
    for (const repo of this.services.registry.repositories()) {
      for (const change of repo.store.all()) {
        if (!applies(change)) continue;
        const key = `${repo.root}\0${change.id}\0${change.approval.at}`;
        live.add(key);
        if (!this.watched.has(key)) this.watch(key, repo, change);
      }
    }
    for (const [key, entry] of this.watched) {
      if (!live.has(key)) this.unwatch(key, entry);
    }
  }

  /** How many approvals are being watched (for tests and the log). */
  get size(): number {
    return this.watched.size;
  }

  private watch(key: string, repo: RepoContext, change: Change & { approval: NonNullable<Change['approval']> }): void {
    const entry: Watched = { repo, changeId: change.id, approvalAt: change.approval.at, disposables: [], running: Promise.resolve() };
    const onWorktreeEvent = (uri: vscode.Uri) => {
      // The worktree's .git file points at git's own data; git bookkeeping is not an edit.
      if (/[\\/]\.git$/.test(uri.fsPath)) return;
      this.schedule(entry, `worktree event on ${uri.fsPath}`);
    };
    const worktree = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(change.worktreePath), '**/*'));
    worktree.onDidCreate(onWorktreeEvent);
    worktree.onDidChange(onWorktreeEvent);
    worktree.onDidDelete(onWorktreeEvent);
    const evidenceFile = new EvidenceStore(repo.storage).fileFor(change.id);
    const evidence = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(vscode.Uri.file(repo.storage.changeDir(change.id)), 'evidence.json'),
    );
    const onEvidenceEvent = () => this.schedule(entry, `evidence event on ${evidenceFile}`);
    evidence.onDidCreate(onEvidenceEvent);
    evidence.onDidChange(onEvidenceEvent);
    evidence.onDidDelete(onEvidenceEvent);
    entry.disposables.push(worktree, evidence);
    this.watched.set(key, entry);
    this.services.logger.debug(`Watching the approval of change ${change.id} (${change.worktreePath})`);
    // Whatever happened between the approval (or the last session) and now.
    this.schedule(entry, 'watch started');
  }

  private unwatch(key: string, entry: Watched): void {
    if (entry.timer) clearTimeout(entry.timer);
    for (const d of entry.disposables) d.dispose();
    this.watched.delete(key);
  }

  private schedule(entry: Watched, trigger: string): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.running = entry.running
        .then(() => this.check(entry.repo, entry.changeId, trigger))
        .catch((error: unknown) => {
          this.services.logger.error(`Could not check the approval of change ${entry.changeId}`, error);
        });
    }, CHECK_DELAY_MS);
  }

  /**
   * Asks the repository's Review lane to check one change's approval now;
   * tells the reviewer when it was invalidated. Returns the reason, or
   * undefined when the approval still holds (or there is none to check).
   */
  async check(repo: RepoContext, changeId: string, trigger = 'check'): Promise<string | undefined> {
    const invalidation = await this.services.laneFor(repo).checkApproval(changeId, trigger);
    if (!invalidation) return undefined;
    const { change, reason } = invalidation;
    this.invalidated.fire({ repo, changeId, reason });
    void vscode.window
      .showWarningMessage(`The approval of "${change.title}" no longer holds: ${reason}. Review it again.`, 'Open Review')
      .then((choice) => {
        if (choice === 'Open Review') this.onOpenReview(repo, changeId);
      });
    return reason;
  }

  dispose(): void {
    this.subscription.dispose();
    for (const [key, entry] of this.watched) this.unwatch(key, entry);
    this.invalidated.dispose();
  }
}
