import { join } from 'node:path';
import type { Actor, Change } from '../../core/change';
import { ChangeStore } from '../../core/changeStore';
import { LaneError } from '../../core/errors';
import type { Logger } from '../../core/logger';
import { AuditLog } from '../audit/log';
import type { PolicyService } from '../policy/policyService';
import { EvidenceStore } from '../storage/evidenceStore';
import { ChangeFolderPersistence } from '../storage/fileStore';
import { RepoStorage } from '../storage/repoStorage';
import { DraftLane, type DraftSettings } from './draft/draftLane';
import type { LaneContext } from './laneContext';
import { ReviewLane } from './review/reviewLane';
import { type OpenOptions, type OpenOutcome, PullRequestLane } from './pullRequest/pullRequestLane';
import { ReleaseLane } from './release/releaseLane';
import { type SandboxRunHooks, type SandboxRunOutcome, SandboxLane, type SandboxSettings } from './sandbox/sandboxLane';

export interface RepositoryLanesOptions {
  /** Where every repository's lane data lives (the extension's global storage). */
  storageRoot: string;
  policy: PolicyService;
  logger: Logger;
  /** The Sandbox lane's settings, read at every run so changed settings apply to the next one. */
  sandboxSettings: () => SandboxSettings;
  /** The Draft lane's worktree settings (pool, sparse folders), read at every use. */
  draftSettings?: () => DraftSettings;
}

/** What "Promote" asks of the gate a change is at; the gate it is not at is never asked. */
export interface PromoteOptions {
  /** Draft → Sandbox and Sandbox → Review: the sandbox run's cancel signal, output and progress. */
  sandbox?: () => SandboxRunHooks;
  /** Review → Pull request: how to reach GitHub, asked only when the change is at that gate (it may sign in). */
  pullRequest?: () => Promise<OpenOptions>;
}

export type PromoteOutcome = { gate: 'sandbox'; outcome: SandboxRunOutcome } | { gate: 'pullRequest'; outcome: OpenOutcome };

/**
 * The lanes of one open repository: its store, evidence, audit log, policy
 * access and lane services. Opened with the repository and disposed when it
 * closes; everything in the editor reaches a lane through it.
 */
export class RepositoryLanes {
  readonly draft: DraftLane;
  readonly review: ReviewLane;
  readonly sandbox: SandboxLane;
  readonly pullRequest: PullRequestLane;
  readonly release: ReleaseLane;
  /** Agent runs found interrupted when the repository opened (the editor had stopped mid-run); offered to finish or discard. */
  interruptedAtOpen: Change[] = [];

  private constructor(
    readonly context: LaneContext,
    /** Set when the stored records could not be read; the repository shows it instead of lanes. */
    readonly loadError: string | undefined,
    options: RepositoryLanesOptions,
  ) {
    const extensionRoot = options.sandboxSettings().extensionRoot;
    this.draft = new DraftLane(context, {
      boundarySettings: () => {
        const settings = options.sandboxSettings();
        return { engine: settings.engine, defaultImage: settings.defaultImage };
      },
      // lanes_run_tasks: the draft's tasks, now, in its sandbox, without moving it.
      runTasks: (changeId, actor, signal) => this.sandbox.runDraftTasks(changeId, actor, { signal }),
      // `agent-lanes mcp`, as the VSIX ships it.
      ...(extensionRoot ? { mcpServerScript: join(extensionRoot, 'dist', 'mcp.js') } : {}),
      ...(options.draftSettings ? { draftSettings: options.draftSettings } : {}),
    });
    this.review = new ReviewLane(context, this.draft);
    // The sandbox lane follows the store: a change that closes takes its containers along.
    this.sandbox = new SandboxLane(context, { settings: options.sandboxSettings });
    this.pullRequest = new PullRequestLane(context);
    this.release = new ReleaseLane(context, undefined, this.draft);
  }

  /** Opens the repository's storage, audit log and change records, then its lane services. */
  static async open(repoRoot: string, commonDir: string, options: RepositoryLanesOptions): Promise<RepositoryLanes> {
    const { logger } = options;
    const storage = RepoStorage.forRepository(options.storageRoot, repoRoot, commonDir);
    const store = new ChangeStore(new ChangeFolderPersistence(storage));
    const evidence = new EvidenceStore(storage);
    const audit = await AuditLog.open(storage.auditFile, { repoKey: storage.repoKey, logger });
    if (audit.repairedOnOpen) logger.warn(`Audit log of ${repoRoot}: ${audit.repairedOnOpen.message}`);
    let loadError: string | undefined;
    try {
      await store.load();
    } catch (error) {
      loadError = (error as Error).message;
      logger.error(`Could not read the change records of ${repoRoot} (${storage.changesDir})`, error);
    }
    // A record that cannot be read is left out; the other changes load, and the Lanes view names it.
    for (const record of store.unreadable) logger.error(`Change records of ${repoRoot}: ${record.message}`);
    const context: LaneContext = { repoRoot, storage, store, evidence, audit, policy: options.policy, logger };
    const lanes = new RepositoryLanes(context, loadError, options);
    // A run recorded as running belongs to an editor that stopped: stop what it left, keep its work.
    if (!loadError)
      lanes.interruptedAtOpen = await lanes.draft.recoverInterrupted().catch((error: unknown) => {
        logger.error(`Recovering interrupted agent runs of ${repoRoot}`, error);
        return [];
      });
    // The warm worktree pool fills in the background; New Draft never waits for it.
    if (options.draftSettings)
      void lanes.draft.warmPool().catch((error: unknown) => logger.warn(`Worktree pool of ${repoRoot}: ${(error as Error).message}`));
    return lanes;
  }

  /**
   * Takes a change through the next gate of its lane: Draft and Sandbox run
   * the sandbox (and promote on green), Review opens the pull request.
   */
  async promote(changeId: string, actor: Actor, options: PromoteOptions = {}): Promise<PromoteOutcome> {
    const change = this.context.store.get(changeId);
    if (!change) throw new LaneError('noChange', `There is no change ${changeId} in this repository.`);
    switch (change.lane) {
      case 'draft':
      case 'sandbox':
        return { gate: 'sandbox', outcome: await this.sandbox.promote(changeId, actor, options.sandbox?.()) };
      case 'review': {
        if (!options.pullRequest)
          throw new LaneError('noGitHubAccess', `Change ${changeId} is in Review: it moves on by opening its pull request.`);
        return { gate: 'pullRequest', outcome: await this.pullRequest.open(changeId, actor, await options.pullRequest()) };
      }
      case 'pullRequest':
        throw new LaneError(
          'lastLane',
          `Change ${changeId} is in Pull request: it moves on when its pull request is merged (or ends when it is closed).`,
        );
      case 'release':
        throw new LaneError(
          'lastLane',
          `Change ${changeId} is in Release, the last lane: run its production actions ("Agent Lanes: Run Production Action…"), or close it.`,
        );
      case 'closed':
        throw new LaneError('closed', `Change ${changeId} is closed; it cannot be promoted.`);
    }
  }

  /** Stops agents, sandbox runs and pull request following; closes the audit log. */
  async close(): Promise<void> {
    this.draft.stopAll();
    this.sandbox.dispose();
    this.pullRequest.stopAll();
    this.context.store.dispose();
    await this.context.audit.close();
  }
}
