import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import YAML from 'yaml';
import { builtinPolicyDocument } from '../../src/core/policy/defaults';
import { mergePolicies, renderEffectivePolicyYaml, type PolicyLayer } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject, type PolicyDocument } from '../../src/core/policy/schema';

function org(body: Record<string, unknown>): PolicyLayer {
  const result = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '7' }, ...body }, 'org');
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  return { level: 'org', document: result.policy, source: 'https://policy.example/org.yaml' };
}

function overlay(level: 'repository' | 'user', body: Record<string, unknown>): PolicyLayer {
  const result = parseOverlayObject(body, level, { id: level, version: 'x' });
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  return { level, document: result.policy };
}

describe('policy merge (restrict-only)', () => {
  it('fills in defaults for the base and records them as "default"', () => {
    const effective = mergePolicies(org({}));
    assert.equal(effective.policy.lanes.sandbox.network.tasks, 'none');
    assert.equal(effective.policy.lanes.sandbox.network.preparation, 'none');
    assert.equal(effective.policy.stopConditions.secretLike, 'block');
    assert.equal(effective.policy.lanes.approvals.minApprovals, 1);
    assert.equal(effective.policy.lanes.allowedAgents, undefined);
    assert.equal(effective.origins['lanes.sandbox.network.tasks'], 'default');
    assert.equal(effective.policyRef, 'acme@7');
    assert.deepEqual(effective.widenings, []);
  });

  it('takes the smaller of two limits, and ignores a larger one with a report', () => {
    const effective = mergePolicies(org({ lanes: { sandbox: { limits: { cpus: 4, memoryMb: 2048 } } }, blastRadius: { maxFiles: 50 } }), [
      overlay('repository', {
        lanes: { sandbox: { limits: { cpus: 2, memoryMb: 8192, pids: 100 } } },
        blastRadius: { maxFiles: 80, maxChangedLines: 300 },
      }),
    ]);
    const limits = effective.policy.lanes.sandbox.limits;
    assert.deepEqual({ ...limits }, { cpus: 2, memoryMb: 2048, pids: 100, timeoutSeconds: undefined });
    assert.equal(effective.origins['lanes.sandbox.limits.cpus'], 'repository');
    assert.equal(effective.origins['lanes.sandbox.limits.memoryMb'], 'org');
    assert.equal(effective.origins['lanes.sandbox.limits.pids'], 'repository');
    assert.equal(effective.policy.blastRadius.maxFiles, 50);
    assert.equal(effective.policy.blastRadius.maxChangedLines, 300);
    assert.deepEqual(
      effective.widenings.map((w) => [w.level, w.field, w.attempted, w.kept]),
      [
        ['repository', 'lanes.sandbox.limits.memoryMb', 8192, 2048],
        ['repository', 'blastRadius.maxFiles', 80, 50],
      ],
    );
    assert.match(
      effective.widenings[0]!.message,
      /repository policy repository@x tried to set lanes\.sandbox\.limits\.memoryMb to 8192, which would loosen it; kept 2048 from org \(acme@7\)/,
    );
  });

  it('keeps the stricter of two effects for stop conditions', () => {
    const effective = mergePolicies(
      org({ stopConditions: { secretLike: 'requireApproval', binaryFile: 'allow', newDependency: 'block' } }),
      [overlay('repository', { stopConditions: { secretLike: 'block', binaryFile: 'requireApproval', newDependency: 'allow' } })],
    );
    assert.equal(effective.policy.stopConditions.secretLike, 'block');
    assert.equal(effective.policy.stopConditions.binaryFile, 'requireApproval');
    assert.equal(effective.policy.stopConditions.newDependency, 'block');
    assert.deepEqual(
      effective.widenings.map((w) => w.field),
      ['stopConditions.newDependency'],
    );
  });

  it('a kill switch set at any level holds; a lower level cannot turn it off', () => {
    const fromRepo = mergePolicies(org({}), [overlay('repository', { killSwitch: { disableSandbox: true, message: 'repo frozen' } })]);
    assert.equal(fromRepo.policy.killSwitch.disableSandbox, true);
    assert.equal(fromRepo.policy.killSwitch.message, 'repo frozen');
    const fromOrg = mergePolicies(org({ killSwitch: { disablePullRequests: true, message: 'incident 42' } }), [
      overlay('user', { killSwitch: { disablePullRequests: false, message: 'mine' } }),
    ]);
    assert.equal(fromOrg.policy.killSwitch.disablePullRequests, true);
    assert.equal(fromOrg.policy.killSwitch.message, 'incident 42');
    assert.deepEqual(
      fromOrg.widenings.map((w) => w.field),
      ['killSwitch.disablePullRequests', 'killSwitch.message'],
    );
    assert.match(fromOrg.widenings[1]!.message, /but a higher level set it already/);
  });

  it('ORs the booleans that restrict and ANDs the ones that permit', () => {
    const effective = mergePolicies(
      org({
        lanes: {
          approvals: { forbidSelfApproval: false },
          pullRequests: { draftOnly: false },
          sandbox: { devcontainer: { allowPrivileged: true, allowHostNetwork: false } },
        },
      }),
      [
        overlay('repository', {
          lanes: {
            approvals: { forbidSelfApproval: true },
            pullRequests: { draftOnly: true },
            sandbox: { devcontainer: { allowPrivileged: false, allowHostNetwork: true } },
          },
        }),
      ],
    );
    assert.equal(effective.policy.lanes.approvals.forbidSelfApproval, true);
    assert.equal(effective.policy.lanes.pullRequests.draftOnly, true);
    assert.equal(effective.policy.lanes.sandbox.devcontainer.allowPrivileged, false);
    assert.equal(effective.policy.lanes.sandbox.devcontainer.allowHostNetwork, false);
    assert.deepEqual(
      effective.widenings.map((w) => w.field),
      ['lanes.sandbox.devcontainer.allowHostNetwork'],
    );
    const cannotUndo = mergePolicies(org({ lanes: { pullRequests: { draftOnly: true } } }), [
      overlay('user', { lanes: { pullRequests: { draftOnly: false } } }),
    ]);
    assert.equal(cannotUndo.policy.lanes.pullRequests.draftOnly, true);
    assert.equal(cannotUndo.widenings[0]!.field, 'lanes.pullRequests.draftOnly');
  });

  it('secretInHistory: block by default; an org may choose squash, a lower level may only go back to block', () => {
    assert.equal(mergePolicies(org({})).policy.lanes.pullRequests.secretInHistory, 'block');
    assert.equal(mergePolicies({ level: 'builtin', document: builtinPolicyDocument() }).policy.lanes.pullRequests.secretInHistory, 'block');
    const squash = org({ lanes: { pullRequests: { secretInHistory: 'squash' } } });
    assert.equal(mergePolicies(squash).policy.lanes.pullRequests.secretInHistory, 'squash');
    const tightened = mergePolicies(squash, [overlay('repository', { lanes: { pullRequests: { secretInHistory: 'block' } } })]);
    assert.equal(tightened.policy.lanes.pullRequests.secretInHistory, 'block');
    assert.deepEqual(tightened.widenings, []);
    const loosened = mergePolicies(org({}), [overlay('repository', { lanes: { pullRequests: { secretInHistory: 'squash' } } })]);
    assert.equal(loosened.policy.lanes.pullRequests.secretInHistory, 'block');
    assert.deepEqual(
      loosened.widenings.map((w) => w.field),
      ['lanes.pullRequests.secretInHistory'],
    );
    const wrong = parseOverlayObject({ lanes: { pullRequests: { secretInHistory: 'allow' } } }, 'repository', { id: 'r', version: '1' });
    assert.equal(wrong.ok, false);
  });

  it('intersects allow-lists: agents, base branches, registries, mounts', () => {
    const effective = mergePolicies(
      org({
        lanes: {
          allowedAgents: ['codex', 'claude', 'aider'],
          pullRequests: { allowedBaseBranches: ['main', 'release'] },
          sandbox: {
            network: { preparation: { registries: ['registry.npmjs.org', 'pypi.org'] } },
            devcontainer: { allowedMounts: ['source=cache,target=/cache'] },
          },
        },
      }),
      [
        overlay('repository', {
          lanes: {
            allowedAgents: ['claude', 'codex', 'rogue'],
            pullRequests: { allowedBaseBranches: ['main'] },
            sandbox: {
              network: { preparation: { registries: ['pypi.org', 'evil.example'] } },
              devcontainer: { allowedMounts: ['source=/,target=/host'] },
            },
          },
        }),
      ],
    );
    assert.deepEqual(effective.policy.lanes.allowedAgents, ['codex', 'claude']);
    assert.deepEqual(effective.policy.lanes.pullRequests.allowedBaseBranches, ['main']);
    assert.deepEqual(effective.policy.lanes.sandbox.network.preparation, { registries: ['pypi.org'] });
    assert.deepEqual(effective.policy.lanes.sandbox.devcontainer.allowedMounts, []);
    assert.deepEqual(
      effective.widenings.map((w) => w.field),
      ['lanes.allowedAgents', 'lanes.sandbox.network.preparation', 'lanes.sandbox.devcontainer.allowedMounts'],
    );
    assert.equal(effective.origins['lanes.allowedAgents'], 'repository');
    // A list where the org said nothing (any agent) is narrowed without a report.
    const narrowed = mergePolicies(org({}), [overlay('user', { lanes: { allowedAgents: ['codex'] } })]);
    assert.deepEqual(narrowed.policy.lanes.allowedAgents, ['codex']);
    assert.deepEqual(narrowed.widenings, []);
  });

  it('network: none < registries < open; a lower level cannot open it', () => {
    const cases: [unknown, unknown, unknown, boolean][] = [
      ['open', { registries: ['a.example'] }, { registries: ['a.example'] }, false],
      ['open', 'none', 'none', false],
      [{ registries: ['a.example'] }, 'open', { registries: ['a.example'] }, true],
      ['none', { registries: ['a.example'] }, 'none', true],
      [{ registries: ['a.example'] }, { registries: ['b.example'] }, 'none', true],
    ];
    for (const [upper, lower, expected, widened] of cases) {
      const effective = mergePolicies(org({ lanes: { sandbox: { network: { preparation: upper } } } }), [
        overlay('repository', { lanes: { sandbox: { network: { preparation: lower } } } }),
      ]);
      assert.deepEqual(effective.policy.lanes.sandbox.network.preparation, expected, JSON.stringify([upper, lower]));
      assert.equal(effective.widenings.length > 0, widened, JSON.stringify([upper, lower]));
    }
    const tasks = mergePolicies(org({ lanes: { sandbox: { network: { tasks: 'none' } } } }), [
      overlay('repository', { lanes: { sandbox: { network: { tasks: 'open' } } } }),
    ]);
    assert.equal(tasks.policy.lanes.sandbox.network.tasks, 'none');
    assert.equal(tasks.widenings[0]!.field, 'lanes.sandbox.network.tasks');
  });

  it('a process sandbox forbidden above stays forbidden; min approvals takes the larger', () => {
    const effective = mergePolicies(org({ lanes: { sandbox: { processSandbox: 'forbidden' }, approvals: { minApprovals: 2 } } }), [
      overlay('repository', { lanes: { sandbox: { processSandbox: 'allowed' }, approvals: { minApprovals: 1 } } }),
      overlay('user', { lanes: { approvals: { minApprovals: 3 } } }),
    ]);
    assert.equal(effective.policy.lanes.sandbox.processSandbox, 'forbidden');
    assert.equal(effective.policy.lanes.approvals.minApprovals, 3);
    assert.equal(effective.origins['lanes.approvals.minApprovals'], 'user');
    assert.deepEqual(
      effective.widenings.map((w) => w.field),
      ['lanes.sandbox.processSandbox', 'lanes.approvals.minApprovals'],
    );
  });

  it('unions required tasks, required evidence, labels, reviewers, sensitive paths and secret patterns', () => {
    const effective = mergePolicies(
      org({
        lanes: {
          sandbox: { requiredTasks: [{ id: 'unit', command: 'npm test' }] },
          evidence: { required: ['tests'] },
          pullRequests: { labels: ['agent'], reviewers: ['alice'] },
          approvals: { sensitivePathReviewers: [{ glob: 'billing/**', reviewers: ['bob'] }] },
        },
        sensitivePaths: ['**/auth/**'],
        secretPatterns: [{ name: 'acme', pattern: 'acme_[a-z]{8}' }],
      }),
      [
        overlay('repository', {
          lanes: {
            sandbox: {
              requiredTasks: [
                { id: 'lint', command: 'npm run lint' },
                { id: 'unit', command: 'true' },
              ],
            },
            evidence: { required: ['tests', 'assumptions'] },
            pullRequests: { labels: ['repo-label'], reviewers: ['carol'] },
            approvals: { sensitivePathReviewers: [{ glob: 'db/**', reviewers: ['dba'] }] },
          },
          sensitivePaths: ['db/**'],
          secretPatterns: [{ name: 'repo', pattern: 'repo_[0-9]{6}' }],
        }),
      ],
    );
    const lanes = effective.policy.lanes;
    assert.deepEqual(lanes.sandbox.requiredTasks, [
      { id: 'unit', command: 'npm test' },
      { id: 'lint', command: 'npm run lint' },
    ]);
    assert.deepEqual(lanes.evidence.required, ['tests', 'assumptions']);
    assert.deepEqual(lanes.pullRequests.labels, ['agent', 'repo-label']);
    assert.deepEqual(lanes.pullRequests.reviewers, ['alice', 'carol']);
    assert.deepEqual(
      lanes.approvals.sensitivePathReviewers.map((entry) => entry.glob),
      ['billing/**', 'db/**'],
    );
    assert.deepEqual(effective.policy.sensitivePaths, ['**/auth/**', 'db/**']);
    assert.deepEqual(
      effective.policy.secretPatterns.map((entry) => entry.name),
      ['acme', 'repo'],
    );
    assert.equal(effective.origins['lanes.sandbox.requiredTasks[0]'], 'org');
    assert.equal(effective.origins['lanes.sandbox.requiredTasks[1]'], 'repository');
    assert.equal(effective.origins['lanes.evidence.required[1]'], 'repository');
    // Redefining an org task (to "true") is an attempt to weaken it: ignored and reported.
    assert.deepEqual(
      effective.widenings.map((w) => w.field),
      ['lanes.sandbox.requiredTasks[unit]'],
    );
  });

  it('path rules from every level apply; restating a stricter rule more loosely is dropped and reported', () => {
    const effective = mergePolicies(org({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'terraform' }] }), [
      overlay('repository', {
        pathRules: [
          { glob: 'infra/**', effect: 'allow', reason: 'we disagree' },
          { glob: 'db/**', effect: 'requireApproval', reason: 'schema' },
        ],
      }),
    ]);
    assert.deepEqual(
      effective.policy.pathRules.map((rule) => [rule.glob, rule.effect]),
      [
        ['infra/**', 'block'],
        ['db/**', 'requireApproval'],
      ],
    );
    assert.equal(effective.origins['pathRules[1]'], 'repository');
    assert.deepEqual(
      effective.widenings.map((w) => [w.field, w.attempted, w.kept]),
      [['pathRules["infra/**"]', 'allow', 'block']],
    );
  });

  it('a title prefix set above cannot be replaced below', () => {
    const effective = mergePolicies(org({ lanes: { pullRequests: { titlePrefix: '[agent] ' } } }), [
      overlay('user', { lanes: { pullRequests: { titlePrefix: '' } } }),
    ]);
    assert.equal(effective.policy.lanes.pullRequests.titlePrefix, '[agent] ');
    assert.equal(effective.widenings[0]!.field, 'lanes.pullRequests.titlePrefix');
    const unset = mergePolicies(org({}), [overlay('repository', { lanes: { pullRequests: { titlePrefix: '[repo] ' } } })]);
    assert.equal(unset.policy.lanes.pullRequests.titlePrefix, '[repo] ');
  });

  it('merges org, then repository, then user, each only narrowing', () => {
    const effective = mergePolicies(org({ blastRadius: { maxFiles: 100 } }), [
      overlay('repository', { blastRadius: { maxFiles: 40 } }),
      overlay('user', { blastRadius: { maxFiles: 60 } }),
    ]);
    assert.equal(effective.policy.blastRadius.maxFiles, 40);
    assert.equal(effective.origins['blastRadius.maxFiles'], 'repository');
    assert.deepEqual(
      effective.widenings.map((w) => [w.level, w.kept]),
      [['user', 40]],
    );
    assert.deepEqual(
      effective.layers.map((layer) => [layer.level, layer.policyRef]),
      [
        ['org', 'acme@7'],
        ['repository', 'repository@x'],
        ['user', 'user@x'],
      ],
    );
  });

  it('hashes the canonical JSON of the effective policy, stable across key order', () => {
    const a = mergePolicies(org({ blastRadius: { maxFiles: 3, maxChangedLines: 9 } }));
    const b = mergePolicies(org({ blastRadius: { maxChangedLines: 9, maxFiles: 3 } }));
    const c = mergePolicies(org({ blastRadius: { maxFiles: 4, maxChangedLines: 9 } }));
    assert.equal(a.policyHash, b.policyHash);
    assert.notEqual(a.policyHash, c.policyHash);
    assert.equal(a.policyHash, createHash('sha256').update(canonicalize(a.policy)!).digest('hex'));
  });

  it('renders read-only YAML naming the level of each field', () => {
    const document: PolicyDocument = builtinPolicyDocument();
    const effective = mergePolicies(
      {
        level: 'org',
        document: { ...document, metadata: { ...document.metadata, id: 'acme', version: '7' } },
        source: 'https://policy.example',
      },
      [
        overlay('repository', {
          lanes: { sandbox: { limits: { cpus: 1, memoryMb: 999999 } } },
          pathRules: [{ glob: 'db/**', effect: 'block', reason: 'dba only' }],
        }),
      ],
    );
    const yaml = renderEffectivePolicyYaml(effective);
    assert.match(yaml, /^# Effective Agent Lanes policy \(read-only\)/);
    assert.match(yaml, /# {3}org: acme@7 from https:\/\/policy\.example/);
    assert.match(yaml, new RegExp(`# Hash: sha256:${effective.policyHash}`));
    assert.match(yaml, /cpus: 1 # repository \(repository@x\)/);
    assert.match(yaml, /memoryMb: 4096 # org \(acme@7\)/);
    assert.match(yaml, /- glob: db\/\*\* # repository \(repository@x\)/);
    assert.match(yaml, /- glob: \.github\/workflows\/\*\* # org \(acme@7\)/);
    assert.match(yaml, /tried to set lanes\.sandbox\.limits\.memoryMb to 999999/);
    // The YAML is the effective policy: reading it back gives the same data.
    assert.deepEqual(YAML.parse(yaml), JSON.parse(JSON.stringify(effective.policy)));
  });
});
