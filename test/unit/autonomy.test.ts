import * as assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVIDENCE_FIELDS } from '../../src/core/evidence';
import { evaluate, type ChangeFacts } from '../../src/core/policy/evaluate';
import { mergePolicies } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject } from '../../src/core/policy/schema';
import { trackFigures, type ChangeOutcome } from '../../src/core/metrics/trackRecord';
import { decide, type LaneContext } from '../../src/infra/lanes/laneContext';
import { PolicyDeniedError } from '../../src/infra/policy/policyService';
import { createSampleRepository, git } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';
import { PolicyServer } from './support/policyServer';

// Autonomy earned by evidence (docs/policy.md): a task class may open pull requests ready for review only once its
// record, read from the audit log, meets the policy's figures; until then it stays at drafts.

const AUTONOMY = {
  taskClasses: ['docs'],
  mode: 'supervisedPullRequest',
  otherwise: 'draftPullRequest',
  requires: {
    lastChanges: 300,
    minChanges: 20,
    mergedRate: 0.7,
    intactRate: 0.95,
    noIncidents: ['forbiddenPath', 'secretLike'] as ('forbiddenPath' | 'secretLike')[],
  },
};
const ORG_POLICY = `apiVersion: ${POLICY_API_VERSION}
metadata: { id: acme, version: "5" }
lanes: { pullRequests: { draftOnly: false } }
taskClasses:
  - { id: docs, taskText: [readme], paths: ["docs/**", "**/*.md"] }
autonomy:
  - ${JSON.stringify(AUTONOMY)}
`;

const outcome = (over: Partial<ChangeOutcome> = {}): ChangeOutcome => ({
  taskClass: 'docs',
  ended: true,
  merged: true,
  reverted: false,
  forbiddenPath: false,
  secretLike: false,
  ...over,
});

const readyDocsPullRequest: ChangeFacts = {
  changeId: 'c0ffee01',
  agentId: 'codex',
  task: 'Fix the README',
  files: [{ path: 'README.md', additions: 3, deletions: 1 }],
  flags: [],
  tasks: [],
  evidence: [...EVIDENCE_FIELDS],
  approvals: [{ by: 'alice' }],
  baseBranch: 'main',
  pullRequestDraft: false,
};

describe('Autonomy earned by evidence', function () {
  this.timeout(60_000);

  it('names the figures it used, earned or not, and each requirement can hold a class back', () => {
    const many = Array.from({ length: 30 }, () => outcome());
    const earned = trackFigures(many, AUTONOMY.requires);
    assert.equal(earned.earned, true);
    assert.equal(
      earned.text,
      'last 30 of 300: 30 ended changes (need 20), merged 100% (need 70%), intact 100% (need 95%), 0 forbiddenPath incidents (need none), 0 secretLike incidents (need none)',
    );
    assert.equal(trackFigures(many.slice(0, 19), AUTONOMY.requires).earned, false, 'too few changes');
    const lowMerge = [...Array.from({ length: 10 }, () => outcome({ merged: false })), ...many.slice(0, 15)];
    assert.match(trackFigures(lowMerge, AUTONOMY.requires).text, /merged 60% \(need 70%\) ✗/);
    const reverted = [outcome({ reverted: true }), outcome({ reverted: true }), ...many];
    assert.match(trackFigures(reverted, AUTONOMY.requires).text, /intact 93.8% \(need 95%\) ✗/);
    const incident = [outcome({ secretLike: true, merged: false }), ...many];
    assert.match(trackFigures(incident, AUTONOMY.requires).text, /1 secretLike incident \(need none\) ✗/);
    // Only the last `lastChanges` count: an old incident ages out.
    assert.equal(trackFigures([...many, outcome({ forbiddenPath: true })], { ...AUTONOMY.requires, lastChanges: 30 }).earned, true);
  });

  it('a lower level cannot loosen it; a policy whose otherwise goes further than its mode is refused', () => {
    const org = parsePolicyObject(
      {
        apiVersion: POLICY_API_VERSION,
        metadata: { id: 'acme', version: '5' },
        taskClasses: [{ id: 'docs', taskText: ['readme'] }],
        autonomy: [AUTONOMY],
      },
      'org',
    );
    assert.ok(org.ok);
    const repo = parseOverlayObject(
      { autonomy: [{ ...AUTONOMY, mode: 'actions', otherwise: 'actions', requires: { minChanges: 1 } }] },
      'repository',
      { id: 'repository', version: 'x' },
    );
    assert.ok(repo.ok, repo.ok ? '' : repo.errors.join('\n'));
    const effective = mergePolicies({ level: 'org', document: org.policy }, [{ level: 'repository', document: repo.policy }]);
    const decision = evaluate(effective, { ...readyDocsPullRequest, track: { docs: [outcome()] } }, 'createPullRequest');
    assert.equal(decision.effect, 'block', 'the org rule still holds the class at drafts');
    assert.ok(decision.matchedRules.some((rule) => rule.rule === 'autonomy[0]' && rule.policy === 'acme@5'));
    const bad = parsePolicyObject(
      { apiVersion: POLICY_API_VERSION, metadata: { id: 'a', version: '1' }, autonomy: [{ ...AUTONOMY, otherwise: 'actions' }] },
      'org',
    );
    assert.ok(!bad.ok);
    assert.match(bad.errors.join('\n'), /"otherwise" \(actions\) goes further than the earned mode/);
  });

  describe('with a real audit log', () => {
    let server: PolicyServer;
    let ctx: LaneContext;

    before(async () => {
      server = await new PolicyServer().start();
      server.handler = (_request, response) => response.end(ORG_POLICY);
      const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-autonomy-')));
      const repo = createSampleRepository(join(base, 'app'));
      ctx = await createLaneContext(base, repo, { policySettings: { endpoint: server.url() } });
      await ctx.policy.start();
    });
    after(async () => {
      ctx.policy.dispose();
      await ctx.audit.close();
      await server.stop();
    });

    /** History as the lanes write it: a docs change created, its pull request merged (or rolled back). */
    async function history(count: number, options: { rollback?: boolean; taskClass?: string } = {}): Promise<void> {
      for (let i = 0; i < count; i++) {
        const changeId = Math.floor(Math.random() * 0xffffffff)
          .toString(16)
          .padStart(8, '0');
        const actor = { type: 'user' as const, id: 'dev' };
        await ctx.audit.append({ actor, action: 'change.create', changeId, details: { taskClass: options.taskClass ?? 'docs' } });
        await ctx.audit.append({ actor, action: 'pr.closed', changeId, details: { state: 'merged' } });
        if (options.rollback) await ctx.audit.append({ actor, action: 'action.rollback', changeId, details: {} });
      }
    }

    it('lets docs open a pull request ready for review only after the generated history meets its figures', async () => {
      await history(19);
      await history(30, { taskClass: 'refactor' });
      await assert.rejects(decide(ctx, 'createPullRequest', readyDocsPullRequest), (error: unknown) => {
        assert.ok(error instanceof PolicyDeniedError);
        const rule = error.decision.matchedRules.find((r) => r.rule === 'autonomy[0]');
        assert.match(
          rule?.reason ?? '',
          /rollout mode draftPullRequest for task class "docs" until its record earns more \(last 19 of 300: 19 ended changes \(need 20\) ✗, merged 100%/,
        );
        return true;
      });
      // A draft pull request is within "otherwise".
      assert.equal((await decide(ctx, 'createPullRequest', { ...readyDocsPullRequest, pullRequestDraft: true })).effect, 'allow');

      await history(1);
      const allowed = await decide(ctx, 'createPullRequest', readyDocsPullRequest);
      assert.equal(allowed.effect, 'allow');
      const earned = allowed.matchedRules.find((r) => r.rule === 'autonomy[0]');
      assert.equal(earned?.effect, 'allow');
      assert.match(
        earned?.reason ?? '',
        /task class "docs" earned supervisedPullRequest: last 20 of 300: 20 ended changes \(need 20\), merged 100%/,
      );

      // Two rollbacks among the newest: intact falls under 95%, and the class is back at drafts.
      await history(2, { rollback: true });
      await assert.rejects(decide(ctx, 'createPullRequest', readyDocsPullRequest), /intact 90\.9% \(need 95%\) ✗/);
    });
  });
  describe('with git: reverts outside the lanes count', () => {
    let server: PolicyServer;
    let ctx: LaneContext;

    before(async () => {
      server = await new PolicyServer().start();
      server.handler = (_request, response) => response.end(ORG_POLICY);
      const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-autonomy-git-')));
      const repo = createSampleRepository(join(base, 'app'));
      ctx = await createLaneContext(base, repo, { policySettings: { endpoint: server.url() } });
      await ctx.policy.start();
    });
    after(async () => {
      ctx.policy.dispose();
      await ctx.audit.close();
      await server.stop();
    });

    it('a class with 20 merged changes of which 2 were reverted by plain git falls below 95% intact', async () => {
      const merges: string[] = [];
      for (let i = 0; i < 20; i++) {
        // Each change merged as one commit on main (a squash merge), recorded as the lanes record a merge.
        writeFileSync(join(ctx.repoRoot, `doc-${i}.md`), `# Page ${i}\n\nSome words.\n`);
        git(ctx.repoRoot, 'add', '-A');
        git(ctx.repoRoot, 'commit', '-q', '-m', `Docs page ${i}`);
        const sha = git(ctx.repoRoot, 'rev-parse', 'HEAD');
        merges.push(sha);
        const changeId = (0xd0c00000 + i).toString(16);
        const actor = { type: 'user' as const, id: 'dev' };
        await ctx.audit.append({ actor, action: 'change.create', changeId, details: { taskClass: 'docs' } });
        await ctx.audit.append({
          actor,
          action: 'pr.closed',
          changeId,
          details: { state: 'merged', mergeCommitSha: sha, baseRef: 'main' },
        });
      }
      const earned = await decide(ctx, 'createPullRequest', readyDocsPullRequest);
      assert.match(
        earned.matchedRules.find((r) => r.rule === 'autonomy[0]')?.reason ?? '',
        /20 ended changes \(need 20\), merged 100% \(need 70%\), intact 100% \(need 95%\)/,
      );

      // Two reverted with git, not through the lanes: the log says nothing of them.
      git(ctx.repoRoot, 'revert', '--no-edit', merges[3]!);
      git(ctx.repoRoot, 'revert', '--no-edit', merges[11]!);
      await assert.rejects(decide(ctx, 'createPullRequest', readyDocsPullRequest), /intact 90% \(need 95%\) ✗/);
    });
  });
});
