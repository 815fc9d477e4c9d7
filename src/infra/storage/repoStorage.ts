import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { isChangeId } from '../../core/changeStore';
import { LaneError } from '../../core/errors';

/** The name of a change's record in its folder. */
const CHANGE_RECORD = 'change.json';

/**
 * Where Agent Lanes keeps a repository's data: outside every workspace folder
 * and every worktree an agent can write to (the extension's global storage).
 */
export class RepoStorage {
  readonly root: string;

  constructor(
    storageRoot: string,
    readonly repoKey: string,
    repoName: string,
  ) {
    const slug =
      repoName
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .slice(0, 40) || 'repo';
    this.root = join(storageRoot, 'repos', `${slug}-${repoKey.slice(0, 12)}`);
  }

  /** Identity of a repository: its git common directory, so linked worktrees share it. */
  static keyFor(commonDir: string): string {
    return createHash('sha256').update(commonDir).digest('hex');
  }

  static forRepository(storageRoot: string, repoRoot: string, commonDir: string): RepoStorage {
    return new RepoStorage(storageRoot, RepoStorage.keyFor(commonDir), basename(repoRoot));
  }

  /** The folder of the change folders; each holds its change's record (`change.json`), evidence and logs. */
  get changesDir(): string {
    return join(this.root, 'changes');
  }
  /** The one-file store of earlier versions, migrated to one record per change on the first load. */
  get legacyChangesFile(): string {
    return join(this.root, 'changes.json');
  }
  get worktreesDir(): string {
    return join(this.root, 'worktrees');
  }
  get logsDir(): string {
    return join(this.root, 'logs');
  }
  get auditFile(): string {
    return join(this.root, 'audit.jsonl');
  }
  /** A change's folder. Only a change id (8 hex characters) names one: nothing else can lead out of `changes/`. */
  changeDir(changeId: string): string {
    if (!isChangeId(changeId))
      throw new LaneError('noChange', `${JSON.stringify(changeId)} is not a change id (8 hex characters, as the Lanes view shows them).`);
    return join(this.changesDir, changeId);
  }
  /** A change's record. */
  changeRecordFile(changeId: string): string {
    return join(this.changeDir(changeId), CHANGE_RECORD);
  }
}
