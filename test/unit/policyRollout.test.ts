import assert from 'node:assert/strict';
import { EVIDENCE_FIELDS } from '../../src/core/evidence';
import { evaluate, type ChangeFacts, type PolicyAction } from '../../src/core/policy/evaluate';
import { mergePolicies, type EffectivePolicy, type PolicyLayer } from '../../src/core/policy/merge';
import { classifyChange } from '../../src/core/policy/rollout';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject } from '../../src/core/policy/schema';
import { authorizeAction, type ActionRequest } from '../../src/core/release/authorize';

const NOW = new Date('2026-11-21T12:00:00Z');

const CLASSES = [
  { id: 'docs', taskText: ['documentation', 'readme'], paths: ['docs/**', '**/*.md'] },
  { id: 'dependency_patch', taskText: ['bump', 'dependency'], paths: ['package.json', 'package-lock.json'] },
  { id: 'refactor', taskText: ['refactor'] },
];

function policy(
  body: Record<string, unknown>,
  overlays: { level: 'repository' | 'user'; body: Record<string, unknown> }[] = [],
): EffectivePolicy {
  const result = parsePolicyObject(
    { apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '3' }, taskClasses: CLASSES, ...body },
    'org',
  );
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  const layers: PolicyLayer[] = overlays.map(({ level, body: overlayBody }) => {
    const parsed = parseOverlayObject(overlayBody, level, { id: level, version: 'x' });
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
    return { level, document: parsed.policy };
  });
  return mergePolicies({ level: 'org', document: result.policy }, layers);
}

const file = (path: string) => ({ path, additions: 3, deletions: 1 });

function facts(extra: Partial<ChangeFacts> = {}): ChangeFacts {
  return {
    changeId: 'c0ffee01',
    agentId: 'codex',
    files: [file('src/app.ts')],
    flags: [],
    tasks: [{ id: 'unit', outcome: 'passed' }],
    evidence: [...EVIDENCE_FIELDS],
    approvals: [{ by: 'alice' }],
    baseBranch: 'main',
    author: 'bob',
    task: 'Add input validation to the signup form',
    ...extra,
  };
}

const effectOf = (effective: EffectivePolicy, action: PolicyAction, extra: Partial<ChangeFacts> = {}) =>
  evaluate(effective, facts(extra), action, NOW);

/** Which steps a change may take, in order: the lanes stop at the mode's limit. */
function reach(effective: EffectivePolicy, extra: Partial<ChangeFacts> = {}): string[] {
  const steps: [string, PolicyAction, Partial<ChangeFacts>][] = [
    ['sandbox', 'gate.draftToSandbox', {}],
    ['review', 'gate.sandboxToReview', {}],
    ['approve', 'gate.reviewToPullRequest', {}],
    ['push', 'push', {}],
    ['draft PR', 'createPullRequest', { pullRequestDraft: true }],
    ['ready PR', 'createPullRequest', { pullRequestDraft: false }],
  ];
  return steps.filter(([, action, more]) => effectOf(effective, action, { ...extra, ...more }).effect === 'allow').map(([name]) => name);
}

describe('rollout modes and task classes', () => {
  it('each mode stops the lanes at its limit, and says why with the rule', () => {
    const expected: Record<string, string[]> = {
      analysisOnly: [],
      dryRunPatch: ['sandbox', 'review'],
      localBranch: ['sandbox', 'review', 'approve'],
      draftPullRequest: ['sandbox', 'review', 'approve', 'push', 'draft PR'],
      supervisedPullRequest: ['sandbox', 'review', 'approve', 'push', 'draft PR', 'ready PR'],
      actions: ['sandbox', 'review', 'approve', 'push', 'draft PR', 'ready PR'],
    };
    for (const [mode, steps] of Object.entries(expected)) assert.deepEqual(reach(policy({ rollout: [{ mode }] })), steps, mode);
    const refused = effectOf(policy({ rollout: [{ mode: 'localBranch' }] }), 'push');
    assert.equal(refused.effect, 'block');
    const rule = refused.matchedRules.find((r) => r.rule === 'rollout[0]');
    assert.ok(rule, JSON.stringify(refused.matchedRules));
    assert.equal(rule.policy, 'acme@3');
    assert.match(
      rule.reason ?? '',
      /rollout mode localBranch for every change: an approved change stays on its local branch; nothing is pushed/,
    );
    // Without rollout entries nothing is limited.
    assert.equal(reach(policy({})).length, 6);
  });

  it('classifies by task words and by paths; a class bound to paths needs every changed path in them', () => {
    const { policy: resolved } = policy({});
    assert.deepEqual(classifyChange(resolved, { task: 'Update the README for the new flags' }), ['docs']);
    assert.deepEqual(classifyChange(resolved, { task: 'Update the README', paths: ['README.md', 'docs/a.md'] }), ['docs']);
    // The words say docs, but code changed: not docs.
    assert.deepEqual(classifyChange(resolved, { task: 'Update the README', paths: ['README.md', 'src/app.ts'] }), ['unclassified']);
    // Paths alone assign a class bound to paths.
    assert.deepEqual(classifyChange(resolved, { task: 'Fix it', paths: ['docs/a.md'] }), ['docs']);
    assert.deepEqual(classifyChange(resolved, { task: 'Fix it', paths: ['src/a.ts'] }), ['unclassified']);
    assert.deepEqual(classifyChange(resolved, { task: 'Refactor and bump the dependency', paths: ['package.json'] }), [
      'dependency_patch',
      'refactor',
    ]);
    // Whole words only: "readmes" and "unrefactored" are not the class words.
    assert.deepEqual(classifyChange(resolved, { task: 'unrefactored readmes' }), ['unclassified']);
    // Chosen at New Draft: applies when its paths hold.
    assert.deepEqual(classifyChange(resolved, { chosen: 'docs', task: 'Fix it', paths: ['docs/x.md'] }), ['docs']);
    assert.deepEqual(classifyChange(resolved, { chosen: 'docs', task: 'Fix it', paths: ['src/x.ts'] }), ['unclassified']);
  });

  it('the first matching entry of a level decides; choosing a lax class for a code change gains nothing', () => {
    const effective = policy({
      rollout: [
        { taskClasses: ['docs'], mode: 'supervisedPullRequest' },
        { taskClasses: ['dependency_patch'], mode: 'localBranch' },
        { mode: 'draftPullRequest' },
      ],
    });
    const docsOnly = { task: 'Fix the README', files: [file('README.md')] };
    assert.equal(effectOf(effective, 'createPullRequest', { ...docsOnly, pullRequestDraft: false }).effect, 'allow');
    // An attacker's (or a careless) choice of "docs" for a change that touches code.
    const code = { taskClass: 'docs', task: 'Fix the README', files: [file('README.md'), file('src/payments.ts')] };
    const refused = effectOf(effective, 'createPullRequest', { ...code, pullRequestDraft: false });
    assert.equal(refused.effect, 'block');
    assert.ok(refused.matchedRules.some((r) => r.rule === 'rollout[2]' && /pull requests are drafts only/.test(r.reason ?? '')));
    // Two classes: the strictest applies (a dependency bump that also says "readme" is still a dependency patch).
    const both = { task: 'Bump the dependency and the readme', files: [file('package.json')] };
    assert.equal(effectOf(effective, 'push', both).effect, 'block');
    assert.equal(effectOf(effective, 'gate.reviewToPullRequest', both).effect, 'allow');
  });

  it('a repository or user level can only tighten: its looser entries and its own classes change nothing', () => {
    const effective = policy({ rollout: [{ mode: 'draftPullRequest' }] }, [
      {
        level: 'repository',
        body: {
          taskClasses: [{ id: 'anything', taskText: ['fix'] }],
          rollout: [{ taskClasses: ['anything'], mode: 'actions' }, { mode: 'actions' }],
        },
      },
    ]);
    assert.equal(effectOf(effective, 'createPullRequest', { task: 'fix it', pullRequestDraft: false }).effect, 'block');
    assert.deepEqual(
      effective.policy.taskClasses.map((c) => c.id),
      CLASSES.map((c) => c.id),
    );
    assert.ok(effective.widenings.some((w) => w.field === 'taskClasses["anything"]'));
    // A tighter entry from the user applies.
    const tighter = policy({ rollout: [{ mode: 'actions' }] }, [{ level: 'user', body: { rollout: [{ mode: 'dryRunPatch' }] } }]);
    const refused = effectOf(tighter, 'gate.reviewToPullRequest');
    assert.equal(refused.effect, 'block');
    assert.ok(refused.matchedRules.some((r) => r.rule === 'rollout[1]' && r.policy === 'user@x'));
  });

  it('entries that name repositories apply to those repositories only', () => {
    const effective = policy({ rollout: [{ repositories: ['acme/payments'], mode: 'localBranch' }] });
    assert.equal(effectOf(effective, 'push', { repository: 'acme/payments' }).effect, 'block');
    assert.equal(effectOf(effective, 'push', { repository: 'acme/website' }).effect, 'allow');
    assert.equal(effectOf(effective, 'push').effect, 'allow');
  });

  it('refuses a policy whose classes or entries are wrong, saying what to write', () => {
    const bad = (body: Record<string, unknown>) => {
      const result = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'a', version: '1' }, ...body }, 'org');
      assert.ok(!result.ok);
      return result.errors.join('\n');
    };
    assert.match(bad({ rollout: [{ mode: 'yolo' }] }), /rollout\[0\]\.mode/);
    assert.match(bad({ taskClasses: [{ id: 'docs' }, { id: 'docs' }] }), /task class "docs" appears twice/);
    assert.match(bad({ taskClasses: [{ id: 'unclassified' }] }), /"unclassified" is the name of no class/);
    assert.match(bad({ taskClasses: [{ id: 'x', paths: ['/abs/**'] }] }), /starts with "\/"/);
    assert.match(bad({ rollout: [{ mode: 'actions', repositories: ['payments'] }] }), /expected owner\/repo/);
  });

  it('production actions need the actions mode for the change class', () => {
    const body = {
      actions: [
        {
          id: 'deploy-staging',
          kind: 'workflowDispatch',
          workflow: 'deploy.yml',
          repositories: ['acme/app'],
          branches: ['main'],
          authorizers: ['carol'],
          requires: { checksGreen: false },
        },
      ],
      rollout: [{ taskClasses: ['refactor'], mode: 'actions' }, { mode: 'supervisedPullRequest' }],
    };
    const effective = policy(body);
    const request = (task: string): ActionRequest => ({
      actionId: 'deploy-staging',
      repository: 'acme/app',
      branch: 'main',
      sha: 'a'.repeat(40),
      inputs: {},
      authorizer: { login: 'carol', teams: [] },
      change: { id: 'c0ffee01', author: 'bob', agentId: 'codex', mergedSha: 'a'.repeat(40), task, paths: ['src/app.ts'] },
      checks: 'passing',
      runs: [],
      now: NOW,
    });
    const refused = authorizeAction(effective.policy, request('Add validation'), effective.origins);
    assert.equal(refused.outcome, 'refused');
    assert.ok(refused.outcome === 'refused' && refused.rule === 'rollout[1]');
    assert.match(
      refused.outcome === 'refused' ? refused.reason : '',
      /production actions are not allowed \(supervised pull requests\)\. Nothing was run\./,
    );
    assert.equal(authorizeAction(effective.policy, request('Refactor the parser'), effective.origins).outcome, 'allowed');
  });
});
