import assert from 'node:assert/strict';
import { mergePolicies, type PolicyLayer } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject } from '../../src/core/policy/schema';
import {
  type ActionRequest,
  type ActionRun,
  actionInputs,
  actionKey,
  actionsFor,
  authorizeAction,
  runHealth,
} from '../../src/core/release/authorize';

// Production actions are policy data (docs/actions.md): these tests try each way around them.

const ACTIONS = [
  {
    id: 'deploy-staging',
    kind: 'workflowDispatch',
    workflow: 'deploy.yml',
    inputs: { environment: { fixed: 'staging' }, replicas: { oneOf: ['1', '2', '3'] } },
    repositories: ['octo-org/hello-lanes'],
    branches: ['main'],
    authorizers: ['rel-eng', '@octo-org/release'],
    escalation: { timeLimitMinutes: 30, rollback: 'revert-main' },
  },
  {
    id: 'deploy-production',
    kind: 'deployment',
    environment: 'production',
    repositories: ['octo-org/hello-lanes'],
    branches: ['main'],
    authorizers: ['@octo-org/release'],
    requires: { after: ['deploy-staging'], window: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-17:00' } },
  },
  { id: 'revert-main', kind: 'revert', repositories: ['octo-org/hello-lanes'], branches: ['main'], authorizers: ['rel-eng'] },
];

function org(body: Record<string, unknown>): PolicyLayer {
  const result = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '1' }, ...body }, 'org');
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  return { level: 'org', document: result.policy };
}

function overlay(body: Record<string, unknown>): PolicyLayer {
  const result = parseOverlayObject(body, 'repository', { id: 'repo', version: 'x' });
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  return { level: 'repository', document: result.policy };
}

const SHA = 'a'.repeat(40);
// A Wednesday, 10:30 UTC: inside the production window.
const WEDNESDAY = new Date('2026-12-02T10:30:00Z');

function request(overrides: Partial<ActionRequest> = {}): ActionRequest {
  return {
    actionId: 'deploy-staging',
    repository: 'octo-org/hello-lanes',
    branch: 'main',
    sha: SHA,
    inputs: { environment: 'staging', replicas: '2' },
    authorizer: { login: 'rel-eng', teams: [] },
    change: { id: 'c0ffee01', author: 'dev', agentId: 'claude-code', mergedSha: SHA },
    checks: 'passing',
    runs: [],
    now: WEDNESDAY,
    ...overrides,
  };
}

const run = (actionId: string, state: ActionRun['state'], inputs: Record<string, string> = {}): ActionRun => ({
  key: actionKey(actionId, SHA, inputs),
  actionId,
  sha: SHA,
  inputs,
  authorizedBy: 'rel-eng',
  authorizedAt: WEDNESDAY.toISOString(),
  policyHash: 'h',
  state,
  startedAt: WEDNESDAY.toISOString(),
});

describe('Release lane: production actions are policy data, authorized by a person for the exact commit', () => {
  const policy = mergePolicies(org({ actions: ACTIONS })).policy;

  it('allows a listed action for the merged commit by a listed person, bound to (action, commit, inputs)', () => {
    const decision = authorizeAction(policy, request());
    assert.equal(decision.outcome, 'allowed');
    assert.ok(decision.outcome === 'allowed');
    assert.equal(decision.key, actionKey('deploy-staging', SHA, { environment: 'staging', replicas: '2' }));
    assert.notEqual(decision.key, actionKey('deploy-staging', SHA, { environment: 'staging', replicas: '3' }), 'other inputs, another run');
    assert.notEqual(decision.key, actionKey('deploy-staging', 'b'.repeat(40), { environment: 'staging', replicas: '2' }));
    assert.equal(authorizeAction(policy, request({ authorizer: { login: 'someone', teams: ['@octo-org/release'] } })).outcome, 'allowed');
    assert.deepEqual(actionInputs(policy.actions[0]!, { replicas: '2', environment: 'production' }), {
      environment: 'staging',
      replicas: '2',
    });
  });

  it('refuses each bad request with the rule it breaks', () => {
    const cases: [string, Partial<ActionRequest>, string, RegExp][] = [
      ['an action not in policy', { actionId: 'drop-database' }, 'actions', /No action "drop-database" is in policy/],
      [
        'another repository',
        { repository: 'octo-org/other' },
        'actions["deploy-staging"].repositories',
        /does not apply to octo-org\/other/,
      ],
      ['another branch', { branch: 'release' }, 'actions["deploy-staging"].branches', /the branch release/],
      ['a change never merged', { change: { id: 'c0ffee01', author: 'dev', agentId: 'claude-code' } }, 'merged', /was not merged/],
      ['a commit that is not the merged one', { sha: 'b'.repeat(40) }, 'merged', /is not the merged commit/],
      ["the change's author", { authorizer: { login: 'DEV', teams: ['@octo-org/release'] } }, 'authorizer.notAuthor', /cannot authorize/],
      ["the change's agent", { authorizer: { login: 'claude-code', teams: [] } }, 'authorizer.notAuthor', /cannot authorize/],
      [
        'a person policy does not list',
        { authorizer: { login: 'mallory', teams: ['@octo-org/dev'] } },
        'actions["deploy-staging"].authorizers',
        /ask one of rel-eng/,
      ],
      [
        'a fixed input changed',
        { inputs: { environment: 'production', replicas: '2' } },
        'actions["deploy-staging"].inputs.environment',
        /fixed to "staging"/,
      ],
      [
        'an input outside its bounds',
        { inputs: { environment: 'staging', replicas: '50' } },
        'actions["deploy-staging"].inputs.replicas',
        /one of "1", "2", "3", not "50"/,
      ],
      [
        'an input the workflow does not take',
        { inputs: { environment: 'staging', replicas: '1', debug: 'true' } },
        'actions["deploy-staging"].inputs',
        /no input "debug"/,
      ],
      ['checks not green', { checks: 'failing' }, 'actions["deploy-staging"].requires.checksGreen', /are failing/],
      ['checks still running', { checks: 'pending' }, 'actions["deploy-staging"].requires.checksGreen', /are pending/],
    ];
    for (const [what, overrides, rule, reason] of cases) {
      const decision = authorizeAction(policy, request(overrides));
      assert.equal(decision.outcome, 'refused', what);
      assert.ok(decision.outcome === 'refused');
      assert.equal(decision.rule, rule, what);
      assert.match(decision.reason, reason, what);
    }
  });

  it('production only after staging succeeded for the same commit, and only inside its window', () => {
    const production = { actionId: 'deploy-production', inputs: {}, authorizer: { login: 'ops', teams: ['@octo-org/release'] } };
    const first = authorizeAction(policy, request(production));
    assert.ok(first.outcome === 'refused' && first.rule === 'actions["deploy-production"].requires.after', JSON.stringify(first));
    const staged = [run('deploy-staging', 'failed', { environment: 'staging', replicas: '2' })];
    assert.equal(
      authorizeAction(policy, request({ ...production, runs: staged })).outcome,
      'refused',
      'a failed staging run is no staging',
    );
    const succeeded = [run('deploy-staging', 'succeeded', { environment: 'staging', replicas: '2' })];
    assert.equal(authorizeAction(policy, request({ ...production, runs: succeeded })).outcome, 'allowed');
    const saturday = authorizeAction(policy, request({ ...production, runs: succeeded, now: new Date('2026-12-05T10:30:00Z') }));
    assert.ok(saturday.outcome === 'refused' && /only on mon, tue, wed, thu, fri/.test(saturday.reason));
    const evening = authorizeAction(policy, request({ ...production, runs: succeeded, now: new Date('2026-12-02T18:00:00Z') }));
    assert.ok(evening.outcome === 'refused' && /between 09:00-17:00 UTC; it is 18:00 UTC/.test(evening.reason));
  });

  it('the same action for the same commit and inputs twice finds the first run; a failed one may be run again', () => {
    const inputs = { environment: 'staging', replicas: '2' };
    const running = run('deploy-staging', 'running', inputs);
    const again = authorizeAction(policy, request({ runs: [running] }));
    assert.ok(again.outcome === 'existing');
    assert.equal(again.run, running);
    // Even with the checks red since: the run exists, nothing new starts.
    assert.equal(authorizeAction(policy, request({ runs: [running], checks: 'failing' })).outcome, 'existing');
    assert.equal(authorizeAction(policy, request({ runs: [run('deploy-staging', 'failed', inputs)] })).outcome, 'allowed');
  });

  it('the kill switch stops every action, and the lane offers none', () => {
    const killed = mergePolicies(org({ actions: ACTIONS }), [overlay({ killSwitch: { disableActions: true } })]).policy;
    const decision = authorizeAction(killed, request());
    assert.ok(decision.outcome === 'refused' && decision.rule === 'killSwitch.disableActions');
    assert.deepEqual(actionsFor(killed, 'octo-org/hello-lanes', 'main'), []);
    assert.deepEqual(
      actionsFor(policy, 'OCTO-ORG/hello-lanes', 'main').map((action) => action.id),
      ['deploy-staging', 'deploy-production', 'revert-main'],
    );
    assert.deepEqual(actionsFor(policy, 'octo-org/hello-lanes', 'dev'), []);
  });

  it('a repository or user can only keep some actions: adding one or changing one is ignored and reported', () => {
    const merged = mergePolicies(org({ actions: ACTIONS }), [
      overlay({
        actions: [
          // Widened: anyone may authorize staging now.
          { ...ACTIONS[0], authorizers: ['dev'] },
          // Not in the org policy.
          {
            id: 'deploy-anywhere',
            kind: 'deployment',
            environment: 'prod-2',
            repositories: ['octo-org/hello-lanes'],
            branches: ['main'],
            authorizers: ['dev'],
          },
          ACTIONS[2],
        ],
      }),
    ]);
    assert.deepEqual(
      merged.policy.actions.map((action) => action.id),
      ['deploy-staging', 'revert-main'],
      'production is dropped (the repository did not keep it); the new one is not added',
    );
    assert.deepEqual(merged.policy.actions[0]!.authorizers, ['rel-eng', '@octo-org/release'], "the org's definition stands");
    assert.deepEqual(
      merged.widenings.map((widening) => widening.field),
      ['actions["deploy-staging"]', 'actions["deploy-anywhere"]'],
    );
    assert.equal(mergePolicies(org({})).policy.actions.length, 0, 'no actions unless the org lists them');
  });

  it('refuses an action policy that does not hold together, saying what to write', () => {
    const bad = (actions: unknown[]) => {
      const result = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '1' }, actions }, 'org');
      assert.ok(!result.ok);
      return result.errors.join('\n');
    };
    assert.match(bad([{ ...ACTIONS[0], workflow: undefined }]), /names its workflow/);
    assert.match(bad([{ ...ACTIONS[1], environment: undefined, requires: undefined }]), /names its environment/);
    assert.match(bad([ACTIONS[0], ACTIONS[0]]), /appears twice/);
    assert.match(bad([ACTIONS[1]]), /names action "deploy-staging", which is not another action/);
    assert.match(bad([{ ...ACTIONS[2], inputs: { x: { fixed: '1' } } }]), /only a workflowDispatch action has inputs/);
    assert.match(bad([{ ...ACTIONS[0], repositories: ['hello-lanes'] }]), /owner\/repo/);
    assert.match(bad([{ ...ACTIONS[1], requires: { window: { hours: '9-5' } } }]), /hours such as "09:00-17:00"/);
  });

  it('a failed run, or one past its time limit, needs a rollback (the policy names which)', () => {
    const staging = policy.actions[0]!;
    assert.deepEqual(runHealth(run('deploy-staging', 'succeeded'), staging, WEDNESDAY), { needsRollback: false });
    const failed = runHealth({ ...run('deploy-staging', 'failed'), conclusion: 'failure' }, staging, WEDNESDAY);
    assert.deepEqual(failed, { needsRollback: true, reason: '"deploy-staging" failed (failure)', rollback: 'revert-main' });
    const late = runHealth(run('deploy-staging', 'running'), staging, new Date(WEDNESDAY.getTime() + 31 * 60_000));
    assert.ok(late.needsRollback && /still running after 31 minutes \(limit 30\)/.test(late.reason));
    assert.deepEqual(runHealth(run('deploy-staging', 'running'), staging, new Date(WEDNESDAY.getTime() + 29 * 60_000)), {
      needsRollback: false,
    });
  });
});
