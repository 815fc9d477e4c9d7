import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../../src/infra/audit/log';
import { type LaneContext, decide } from '../../src/infra/lanes/laneContext';
import { PolicyService } from '../../src/infra/policy/policyService';

const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

describe('decide() records its decision as a readable audit event', () => {
  let dir: string;
  let audit: AuditLog;
  let policy: PolicyService;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lanes-decide-audit-'));
    audit = await AuditLog.open(join(dir, 'audit.jsonl'), { repoKey: 'k'.repeat(64) });
    policy = new PolicyService({}, { cacheFile: join(dir, 'policy-cache.json'), logger });
  });
  afterEach(async () => {
    policy.dispose();
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an allow with no matched rule carries the policy as "id@version", so readers, History and proof bundles keep it', async () => {
    const ctx = { audit, policy, logger } as unknown as LaneContext;
    const decision = await decide(ctx, 'createDraft', { agentId: 'codex' });
    assert.equal(decision.effect, 'allow');
    assert.equal(decision.matchedRules.length, 0);
    const { events, problems } = await audit.readAll();
    assert.deepEqual(problems, []);
    const recorded = events.find((event) => event.action === 'policy.decision');
    assert.ok(recorded, 'the decision event is read back');
    assert.match(String(recorded.policy), /^agent-lanes-local@/);
    assert.equal(recorded.decisionId, decision.decisionId);
  });
});
