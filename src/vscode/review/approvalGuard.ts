import * as vscode from 'vscode';
import { EXTENSION_ACTOR } from '../../core/constants';
import type { Change } from '../../core/change';
import { Emitter } from '../../core/events';
import { hashEvidence } from '../../core/evidence';
import { EvidenceStore } from '../../infra/storage/evidenceStore';
import type { RepoContext } from '../repositories';
import type { ReviewDeps } from './deps';
import { pathExists } from '../../infra/storage/fileStore';

const CHECK_DELAY_MS = 400;

interface Watched {
  repo: RepoContext;
  changeId: string;
  /** The approval this watch is for: a new approval starts a new watch. */
  approvalAt: string;
  disposables: vscode.Disposable[];
  timer?: NodeJS.Timeout;
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
 * worktree and its evidence file are watched, and any event is re-checked
 * against the hashes the approval was given for. A change that alters the
 * diff or the evidence (not a mere touch) invalidates the approval, visibly.
 */
export class ApprovalGuard implements vscode.Disposable {
  private readonly watched = new Map<string, Watched>();
  private readonly subscription: { dispose(): void };
  private readonly invalidated = new Emitter<Invalidation>();
  /** Fires after an approval was invalidated. */
  readonly onDidInvalidate = this.invalidated.event;

  constructor(
    private readonly deps: ReviewDeps,
    private readonly onOpenReview: (repo: RepoContext, changeId: string) => void,
  ) {
    // The registry fires after discovery and after every store change.
    this.subscription = deps.registry.onDidChange(() => this.reconcile());
    if (deps.registry.hasDiscovered) this.reconcile();
  }

  /** Starts and stops watches so that exactly the live approvals are watched. */
  reconcile(): void {
    const live = new Set<string>();
    for (const repo of this.deps.registry.repositories()) {
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
    this.deps.logger.debug(`Watching the approval of change ${change.id} (${change.worktreePath})`);
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
          this.deps.logger.error(`Could not check the approval of change ${entry.changeId}`, error);
        });
    }, CHECK_DELAY_MS);
  }

  /**
   * Checks one change's approval against its worktree and evidence now;
   * invalidates it when either no longer matches. Returns the reason, or
   * undefined when the approval still holds (or there is none to check).
   */
  async check(repo: RepoContext, changeId: string, trigger = 'check'): Promise<string | undefined> {
    const change = repo.store.get(changeId);
    if (!applies(change)) return undefined;
    const approval = change.approval;
    let reason: string | undefined;
    let currentDiffHash: string | undefined;
    if (!(await pathExists(change.worktreePath))) {
      reason = `the worktree ${change.worktreePath} was removed`;
    } else {
      try {
        currentDiffHash = await this.deps.currentDiffHash(repo, change);
        if (currentDiffHash !== approval.diffHash) reason = 'the worktree changed after the approval';
      } catch (error) {
        // Fail closed: what cannot be checked is not approved.
        reason = `the worktree could not be checked (${(error as Error).message.split('\n')[0]})`;
      }
    }
    if (!reason) {
      const read = await new EvidenceStore(repo.storage).read(changeId);
      if (read.kind === 'missing') reason = 'the evidence was removed';
      else if (read.kind === 'invalid') reason = 'the evidence file no longer passes validation';
      else if (hashEvidence(read.evidence) !== approval.evidenceHash) reason = 'the evidence changed after the approval';
    }
    if (!reason) {
      this.deps.logger.debug(`The approval of change ${changeId} still holds (${trigger}).`);
      return undefined;
    }
    await this.invalidate(repo, change, reason, { trigger, ...(currentDiffHash ? { currentDiffHash } : {}) });
    return reason;
  }

  private async invalidate(
    repo: RepoContext,
    change: Change & { approval: NonNullable<Change['approval']> },
    reason: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const approval = change.approval;
    const at = new Date().toISOString();
    let changed = false;
    await repo.store.update(change.id, (current) => {
      // Only the approval that was checked; a newer one is checked on its own.
      if (current.approval && current.approval.at === approval.at && !current.approval.invalidated) {
        current.approval = { ...current.approval, invalidated: { at, reason } };
        changed = true;
      }
      return current;
    });
    if (!changed) return;
    this.deps.logger.warn(`The approval of change ${change.id} by ${approval.by} no longer holds: ${reason}.`);
    await this.deps
      .audit(
        repo,
        'approval.invalidated',
        change.id,
        {
          reason,
          approvedBy: approval.by,
          approvedAt: approval.at,
          diffHash: approval.diffHash,
          evidenceHash: approval.evidenceHash,
          ...details,
        },
        EXTENSION_ACTOR,
      )
      .catch((error: unknown) =>
        this.deps.logger.error(`Could not record the invalidated approval of change ${change.id} in the audit log`, error),
      );
    this.invalidated.fire({ repo, changeId: change.id, reason });
    void vscode.window
      .showWarningMessage(`The approval of "${change.title}" no longer holds: ${reason}. Review it again.`, 'Open Review')
      .then((choice) => {
        if (choice === 'Open Review') this.onOpenReview(repo, change.id);
      });
  }

  dispose(): void {
    this.subscription.dispose();
    for (const [key, entry] of this.watched) this.unwatch(key, entry);
    this.invalidated.dispose();
  }
}
