import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';

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

  get changesFile(): string {
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
  changeDir(changeId: string): string {
    return join(this.root, 'changes', changeId);
  }
}
