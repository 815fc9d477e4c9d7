import * as vscode from 'vscode';
import type { Change } from '../core/change';
import type { ChangeStore } from '../core/changeStore';
import { Emitter } from '../core/events';
import type { Logger } from '../core/logger';
import type { EvidenceStore } from '../infra/storage/evidenceStore';
import { probeRepository } from '../infra/git/repository';
import { RepositoryLanes } from '../infra/lanes/repositoryLanes';
import type { SandboxSettings } from '../infra/lanes/sandbox/sandboxLane';
import type { DraftSettings } from '../infra/lanes/draft/draftLane';
import type { PolicyService } from '../infra/policy/policyService';
import type { RepoStorage } from '../infra/storage/repoStorage';
import { Commands } from './constants';

/** One git repository of the workspace, with its own lanes and store. */
export interface RepoContext {
  readonly root: string;
  readonly name: string;
  readonly commonDir: string;
  readonly storage: RepoStorage;
  readonly store: ChangeStore;
  readonly evidence: EvidenceStore;
  /** Set when the stored records could not be read; the repository shows it instead of lanes. */
  loadError?: string;
  /** The repository's lanes: opened with it, closed with it. */
  readonly lanes: RepositoryLanes;
}

/** A workspace folder that cannot have lanes, and why. */
export interface FolderProblem {
  readonly folder: vscode.WorkspaceFolder;
  readonly kind: 'notRepository' | 'bare' | 'missing' | 'error';
  readonly message: string;
}

/**
 * Finds the repositories of the workspace folders, lazily: nothing touches git
 * until the view (or a command) asks, so activation stays cheap.
 */
export class RepositoryRegistry implements vscode.Disposable {
  private repos = new Map<string, RepoContext>();
  private problems: FolderProblem[] = [];
  private discovery: Promise<void> | undefined;
  private readonly changed = new Emitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly storageRoot: string,
    private readonly logger: Logger,
    private readonly policy: PolicyService,
    private readonly sandboxSettings: () => SandboxSettings,
    private readonly draftSettings?: (repoRoot: string) => DraftSettings,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        if (this.discovery) void this.rediscover();
      }),
    );
  }

  get policyService(): PolicyService {
    return this.policy;
  }

  /** Discovers once; later calls wait for the same discovery. */
  ensureDiscovered(): Promise<void> {
    this.discovery ??= this.discover();
    return this.discovery;
  }

  rediscover(): Promise<void> {
    this.discovery = this.discover();
    return this.discovery;
  }

  get hasDiscovered(): boolean {
    return this.discovery !== undefined;
  }

  repositories(): RepoContext[] {
    return [...this.repos.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  folderProblems(): FolderProblem[] {
    return this.problems;
  }

  byRoot(root: string): RepoContext | undefined {
    return this.repos.get(root);
  }

  private async discover(): Promise<void> {
    const folders = vscode.workspace.workspaceFolders ?? [];
    const next = new Map<string, RepoContext>();
    const problems: FolderProblem[] = [];
    for (const folder of folders) {
      if (folder.uri.scheme !== 'file') {
        problems.push({
          folder,
          kind: 'missing',
          message: `${folder.name} is not on this machine's disk (${folder.uri.scheme}:); Agent Lanes works on local git repositories.`,
        });
        continue;
      }
      try {
        const probe = await probeRepository(folder.uri.fsPath);
        if (probe.kind === 'repository') {
          const existing = next.get(probe.root) ?? this.repos.get(probe.root);
          if (existing) {
            next.set(probe.root, existing);
            continue;
          }
          next.set(probe.root, await this.openRepository(probe.root, probe.commonDir));
        } else if (probe.kind === 'bare') {
          problems.push({
            folder,
            kind: 'bare',
            message: `${folder.name} is a bare git repository: it has no working tree to draft from. Open a clone of it instead.`,
          });
        } else if (probe.kind === 'notRepository') {
          problems.push({
            folder,
            kind: 'notRepository',
            message: `${folder.name} is not a git repository. Run "git init" in it, or open a folder that is one.`,
          });
        } else {
          problems.push({ folder, kind: 'missing', message: `${folder.name} ${probe.message}.` });
        }
      } catch (error) {
        this.logger.error(`Could not inspect ${folder.uri.fsPath} with git`, error);
        const detail = (error as Error).message.split('\n')[0];
        const gitMissing = (error as NodeJS.ErrnoException).code === 'ENOENT' || /spawn git/.test(detail ?? '');
        problems.push({
          folder,
          kind: 'error',
          message: gitMissing
            ? `Could not run git in ${folder.name}: is git installed and on PATH?`
            : `Could not open ${folder.name}: ${detail}`,
        });
      }
    }
    for (const [root, repo] of this.repos) if (!next.has(root)) this.closeRepository(repo);
    this.repos = next;
    this.problems = problems;
    this.changed.fire();
  }

  private async openRepository(root: string, commonDir: string): Promise<RepoContext> {
    const lanes = await RepositoryLanes.open(root, commonDir, {
      storageRoot: this.storageRoot,
      policy: this.policy,
      logger: this.logger,
      sandboxSettings: this.sandboxSettings,
      ...(this.draftSettings ? { draftSettings: () => this.draftSettings!(root) } : {}),
    });
    const { storage, store, evidence } = lanes.context;
    const repo: RepoContext = {
      root,
      name: root.split(/[\\/]/).pop() ?? root,
      commonDir,
      storage,
      store,
      evidence,
      lanes,
      ...(lanes.loadError === undefined ? {} : { loadError: lanes.loadError }),
    };
    store.onDidChange(() => this.changed.fire());
    this.logger.info(`Repository ${root}: ${store.all().length} change(s), data in ${storage.root}`);
    for (const change of lanes.interruptedAtOpen) this.offerInterrupted(root, change);
    return repo;
  }

  /** An agent run the editor's stop cut off: its work is kept; finish it or discard it. */
  private offerInterrupted(repoRoot: string, change: Change): void {
    this.logger.warn(`Change ${change.id}: ${change.agentRun?.message ?? 'its agent run was interrupted'}`);
    const finish = 'Finish Draft';
    const discard = 'Discard Change';
    void vscode.window
      .showWarningMessage(
        `Change ${change.id} ("${change.title}"): its agent was still running when the editor stopped. The run was stopped; its partial work is kept in the worktree.`,
        finish,
        discard,
      )
      .then((choice) => {
        const target = { repoRoot, changeId: change.id };
        if (choice === finish) void vscode.commands.executeCommand(Commands.finishDraft, target);
        if (choice === discard) void vscode.commands.executeCommand(Commands.discard, target);
      });
  }

  /** Finds the repository that holds a change, by id. */
  findChange(changeId: string): { repo: RepoContext; change: Change } | undefined {
    for (const repo of this.repos.values()) {
      const change = repo.store.get(changeId);
      if (change) return { repo, change };
    }
    return undefined;
  }

  private closeRepository(repo: RepoContext): void {
    void repo.lanes.close().catch((error: unknown) => this.logger.error(`Closing the lanes of ${repo.root}`, error));
  }

  dispose(): void {
    for (const repo of this.repos.values()) this.closeRepository(repo);
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
