import { join } from 'node:path';
import { ChangeStore } from '../../../src/core/changeStore';
import type { Logger } from '../../../src/core/logger';
import { consoleLogger } from './consoleLogger';
import { AuditLog } from '../../../src/infra/audit/log';
import { EvidenceStore } from '../../../src/infra/storage/evidenceStore';
import { ChangeFolderPersistence } from '../../../src/infra/storage/fileStore';
import type { LaneContext } from '../../../src/infra/lanes/laneContext';
import { PolicyService, type PolicySettings } from '../../../src/infra/policy/policyService';
import { RepoStorage } from '../../../src/infra/storage/repoStorage';

/**
 * A real lane context for a repository, as the extension builds one: change
 * store, evidence, audit log and the local policy, all kept under `base`.
 */
export async function createLaneContext(
  base: string,
  repo: string,
  { logger = consoleLogger(true), policySettings = {} }: { logger?: Logger; policySettings?: PolicySettings } = {},
): Promise<LaneContext> {
  const storage = RepoStorage.forRepository(join(base, 'storage'), repo, join(repo, '.git'));
  const ctx: LaneContext = {
    repoRoot: repo,
    storage,
    store: new ChangeStore(new ChangeFolderPersistence(storage)),
    evidence: new EvidenceStore(storage),
    audit: await AuditLog.open(storage.auditFile, { repoKey: storage.repoKey }),
    policy: new PolicyService(policySettings, { cacheFile: join(base, 'policy-cache.json'), logger }),
    logger,
  };
  await ctx.store.load();
  return ctx;
}
