import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PolicyDeniedError } from '../../src/infra/policy/policyService';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { SandboxLane } from '../../src/infra/lanes/sandbox/sandboxLane';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';
import { PolicyServer } from './support/policyServer';

const root = resolve(__dirname, '..', '..', '..');
const scriptedAgent = join(root, 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** The org's policy: docs may go as far as a ready pull request; anything else is analysis only. */
const ORG_POLICY = `apiVersion: agentlanes.dev/v1
metadata: { id: acme, version: "9" }
taskClasses:
  - { id: docs, description: Documentation only, taskText: [readme, documentation], paths: ["docs/**", "**/*.md"] }
  - { id: refactor, taskText: [refactor] }
rollout:
  - { taskClasses: [docs], mode: supervisedPullRequest }
  - { mode: analysisOnly }
`;

describe('Rollout modes in the lanes (real git, real agent process, org policy over HTTP)', function () {
  this.timeout(120_000);
  let server: PolicyServer;
  let ctx: LaneContext;
  let repo: string;
  let draft: DraftLane;

  before(async () => {
    server = await new PolicyServer().start();
    server.handler = (_request, response) => response.end(ORG_POLICY);
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-rollout-')));
    repo = createSampleRepository(join(base, 'app'));
    ctx = await createLaneContext(base, repo, { policySettings: { endpoint: server.url() } });
    await ctx.policy.start();
    draft = new DraftLane(ctx);
  });
  after(async () => {
    ctx.policy.dispose();
    await server.stop();
  });

  const createEvents = () =>
    readFileSync(ctx.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: Record<string, unknown> });

  it('records the chosen or assigned task class; an unknown class is refused before anything is created', async () => {
    const worktrees = () => (existsSync(ctx.storage.worktreesDir) ? readdirSync(ctx.storage.worktreesDir).length : 0);
    const worktreesBefore = worktrees();
    await assert.rejects(
      draft.start({ task: 'Fix it', taskClass: 'yolo', agent: { kind: 'cli', config: agent }, actor: user, createdBy: user.id }),
      /There is no task class "yolo" in the policy\. Choose one of: docs, refactor/,
    );
    assert.equal(worktrees(), worktreesBefore, 'no worktree was made');
    assert.equal(ctx.store.all().length, 0);

    const chosen = await draft.start({
      task: 'Tidy things',
      taskClass: 'refactor',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: user.id,
    });
    assert.equal(chosen.change.taskClass, 'refactor');
    const byWords = await draft.start({
      task: 'Refresh the README',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: user.id,
    });
    const created = createEvents().filter((event) => event.action === 'change.create');
    assert.deepEqual(
      created.map((event) => [event.changeId, event.details.taskClass, event.details.taskClasses]),
      [
        [chosen.change.id, 'refactor', ['refactor']],
        [byWords.change.id, 'docs', ['docs']],
      ],
    );
  });

  it('analysis only: the agent drafts, and the change cannot leave Draft; the refusal names the rollout rule', async () => {
    const { change } = await draft.start({
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: user.id,
    });
    const outcome = await draft.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const sandbox = new SandboxLane(ctx, { settings: { engine: 'podman', defaultImage: 'unused:latest', extensionRoot: root } });
    try {
      await assert.rejects(sandbox.run(change.id, user), (error: unknown) => {
        assert.ok(error instanceof PolicyDeniedError, String(error));
        const rule = error.decision.matchedRules.find((r) => r.rule === 'rollout[1]');
        assert.ok(rule, JSON.stringify(error.decision.matchedRules));
        assert.equal(rule.policy, 'acme@9');
        assert.match(
          rule.reason ?? '',
          /rollout mode analysisOnly for every change: the change stays in Draft \(analysis only\); task class: unclassified/,
        );
        return true;
      });
    } finally {
      sandbox.dispose();
    }
    assert.equal(ctx.store.get(change.id)?.lane, 'draft');
    const refusal = createEvents()
      .filter((event) => event.changeId === change.id && event.action === 'policy.decision')
      .pop();
    assert.equal(refusal?.details.action, 'gate.draftToSandbox');
    assert.equal(refusal?.details.effect, 'block');
    assert.equal(git(repo, 'status', '--porcelain'), '', "the user's checkout is untouched");
  });
});
