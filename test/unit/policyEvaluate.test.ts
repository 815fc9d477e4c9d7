import assert from 'node:assert/strict';
import { DecisionRecordSchema } from '../../src/core/decision';
import { EVIDENCE_FIELDS, EvidenceSchema, type Evidence } from '../../src/core/evidence';
import { builtinPolicyDocument } from '../../src/core/policy/defaults';
import { evaluate, factsFromEvidence, presentEvidenceFields, type ChangeFacts, type PolicyAction } from '../../src/core/policy/evaluate';
import { mergePolicies, type EffectivePolicy, type PolicyLayer } from '../../src/core/policy/merge';
import { GlobIndex } from '../../src/core/policy/globs';
import { POLICY_API_VERSION, parseOverlayObject, parsePolicyObject } from '../../src/core/policy/schema';

const NOW = new Date('2026-11-21T12:00:00Z');
const ALL_EVIDENCE = [...EVIDENCE_FIELDS];

function policy(
  body: Record<string, unknown>,
  overlays: { level: 'repository' | 'user'; body: Record<string, unknown> }[] = [],
): EffectivePolicy {
  const result = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '7' }, ...body }, 'org');
  assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
  const layers: PolicyLayer[] = overlays.map(({ level, body: overlayBody }) => {
    const parsed = parseOverlayObject(overlayBody, level, { id: level, version: 'x' });
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
    return { level, document: parsed.policy };
  });
  return mergePolicies({ level: 'org', document: result.policy }, layers);
}

const file = (path: string, additions = 1, deletions = 0) => ({ path, additions, deletions });

/** A change that passes everything unless a test says otherwise. */
function facts(extra: Partial<ChangeFacts> = {}): ChangeFacts {
  return {
    changeId: 'c0ffee01',
    agentId: 'codex',
    files: [file('src/app.ts', 10, 2)],
    flags: [],
    tasks: [{ id: 'unit', outcome: 'passed' }],
    evidence: ALL_EVIDENCE,
    approvals: [{ by: 'alice' }],
    baseBranch: 'main',
    author: 'bob',
    ...extra,
  };
}

function decide(effective: EffectivePolicy, action: PolicyAction, extra: Partial<ChangeFacts> = {}) {
  const decision = evaluate(effective, facts(extra), action, NOW);
  assert.ok(DecisionRecordSchema.safeParse(decision).success, 'a decision record matches the shared schema');
  assert.ok(!decision.explanation.includes('\n'), 'the explanation is one line');
  return decision;
}

describe('policy evaluation', () => {
  it('allows a plain change through each gate and side effect, with a one-line explanation', () => {
    const effective = policy({});
    for (const action of [
      'gate.draftToSandbox',
      'gate.sandboxToReview',
      'gate.reviewToPullRequest',
      'createDraft',
      'startAgent',
      'agentCall',
      'runTask',
      'push',
      'createPullRequest',
    ] as const) {
      const decision = decide(effective, action);
      assert.equal(decision.effect, 'allow', `${action}: ${decision.explanation}`);
      assert.equal(decision.action, action);
      assert.equal(decision.at, NOW.toISOString());
      assert.equal(decision.policyHash, effective.policyHash);
      assert.match(decision.explanation, /^Allowed: /);
    }
    assert.equal(decide(effective, 'gate.draftToSandbox').subject, 'c0ffee01');
    assert.notEqual(decide(effective, 'createDraft').decisionId, decide(effective, 'createDraft').decisionId);
  });

  it('blocks a path rule match with the rule, the policy reference, the paths and the reason', () => {
    const effective = policy({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'Terraform only.' }] });
    const decision = decide(effective, 'gate.draftToSandbox', { files: [file('src/a.ts'), file('infra/main.tf'), file('infra/vars.tf')] });
    assert.equal(decision.effect, 'block');
    assert.deepEqual(decision.matchedRules, [
      {
        policy: 'acme@7',
        rule: 'pathRules[0] "infra/**"',
        effect: 'block',
        reason: 'infra/main.tf, infra/vars.tf match "infra/**": Terraform only.',
        paths: ['infra/main.tf', 'infra/vars.tf'],
      },
    ]);
    assert.equal(decision.explanation, 'Blocked: Draft → Sandbox: infra/main.tf, infra/vars.tf match "infra/**": Terraform only.');
  });

  it('checks both sides of a rename', () => {
    const effective = policy({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'Terraform only.' }] });
    const decision = decide(effective, 'gate.draftToSandbox', {
      files: [{ path: 'moved/main.tf', oldPath: 'infra/main.tf', additions: 0, deletions: 0 }],
    });
    assert.equal(decision.effect, 'block');
    assert.deepEqual(decision.matchedRules[0]!.paths, ['infra/main.tf']);
  });

  it('within one level the last matching rule decides; across levels the strictest holds', () => {
    const effective = policy(
      {
        pathRules: [
          { glob: 'infra/**', effect: 'block', reason: 'Terraform only.' },
          { glob: 'infra/docs/**', effect: 'allow', reason: 'Docs are fine.' },
        ],
      },
      [
        {
          level: 'repository',
          body: { pathRules: [{ glob: 'infra/docs/secret-runbook.md', effect: 'requireApproval', reason: 'Ask ops.' }] },
        },
      ],
    );
    assert.equal(decide(effective, 'gate.draftToSandbox', { files: [file('infra/docs/a.md')] }).effect, 'allow');
    const sensitive = decide(effective, 'gate.reviewToPullRequest', { files: [file('infra/docs/secret-runbook.md')], approvals: [] });
    assert.equal(sensitive.effect, 'requireApproval');
    assert.equal(sensitive.matchedRules.find((rule) => rule.rule.startsWith('pathRules'))?.policy, 'repository@x');
    // A repository "allow" cannot undo the org's block.
    const loosened = policy({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'Terraform only.' }] }, [
      { level: 'repository', body: { pathRules: [{ glob: 'infra/main.tf', effect: 'allow', reason: 'ours' }] } },
    ]);
    assert.equal(decide(loosened, 'gate.draftToSandbox', { files: [file('infra/main.tf')] }).effect, 'block');
  });

  it('requireApproval rules do not stop a change before review, and are listed for the reviewer', () => {
    const effective = policy({ pathRules: [{ glob: '**/AGENTS.md', effect: 'requireApproval', reason: 'Instructions.' }] });
    const toSandbox = decide(effective, 'gate.draftToSandbox', { files: [file('AGENTS.md')] });
    assert.equal(toSandbox.effect, 'allow');
    assert.equal(toSandbox.matchedRules[0]!.effect, 'requireApproval');
    assert.match(toSandbox.explanation, /^Allowed: Draft → Sandbox; review will need approval for: AGENTS\.md matches/);
    const unapproved = decide(effective, 'gate.reviewToPullRequest', { files: [file('AGENTS.md')], approvals: [] });
    assert.equal(unapproved.effect, 'requireApproval');
    assert.match(unapproved.explanation, /^Needs approval: Review → Pull request: needs 1 approval, has 0/);
    const approved = decide(effective, 'gate.reviewToPullRequest', { files: [file('AGENTS.md')], approvals: [{ by: 'alice' }] });
    assert.equal(approved.effect, 'allow');
    assert.match(approved.explanation, /approved by alice/);
  });

  it('counts approvals: minimum, self-approval forbidden, duplicates once', () => {
    const effective = policy({ lanes: { approvals: { minApprovals: 2, forbidSelfApproval: true } } });
    assert.equal(decide(effective, 'gate.reviewToPullRequest', { approvals: [{ by: 'alice' }, { by: 'carol' }] }).effect, 'allow');
    const duplicate = decide(effective, 'gate.reviewToPullRequest', { approvals: [{ by: 'alice' }, { by: 'Alice' }] });
    assert.equal(duplicate.effect, 'requireApproval');
    assert.match(duplicate.explanation, /needs 2 approvals, has 1/);
    const self = decide(effective, 'push', { approvals: [{ by: 'alice' }, { by: 'bob' }] });
    assert.equal(self.effect, 'requireApproval');
    assert.match(self.explanation, /the author's own approval does not count/);
    const flagged = decide(effective, 'createPullRequest', { approvals: [{ by: 'alice' }, { by: 'zed', isAuthor: true }] });
    assert.equal(flagged.effect, 'requireApproval');
    const allowedSelf = policy({ lanes: { approvals: { minApprovals: 1, forbidSelfApproval: false } } });
    assert.equal(decide(allowedSelf, 'gate.reviewToPullRequest', { approvals: [{ by: 'bob', isAuthor: true }] }).effect, 'allow');
  });

  it('sensitive paths need one of the named reviewers', () => {
    const effective = policy({
      lanes: { approvals: { sensitivePathReviewers: [{ glob: 'src/billing/**', reviewers: ['billing-owner', 'cfo'] }] } },
    });
    const other = decide(effective, 'gate.reviewToPullRequest', { files: [file('src/billing/invoice.ts')], approvals: [{ by: 'alice' }] });
    assert.equal(other.effect, 'requireApproval');
    assert.match(other.explanation, /src\/billing\/invoice\.ts needs approval from one of: billing-owner, cfo/);
    assert.equal(
      decide(effective, 'gate.reviewToPullRequest', { files: [file('src/billing/invoice.ts')], approvals: [{ by: 'CFO' }] }).effect,
      'allow',
    );
    assert.equal(
      decide(effective, 'gate.reviewToPullRequest', { files: [file('src/app.ts')], approvals: [{ by: 'alice' }] }).effect,
      'allow',
    );
  });

  it('blocks over the blast radius, by files and by lines', () => {
    const effective = policy({ blastRadius: { maxFiles: 2, maxChangedLines: 100 } });
    const files = decide(effective, 'gate.draftToSandbox', { files: [file('a'), file('b'), file('c')] });
    assert.equal(files.effect, 'block');
    assert.equal(files.matchedRules[0]!.rule, 'blastRadius.maxFiles');
    assert.match(files.explanation, /3 files changed; the limit is 2/);
    const lines = decide(effective, 'gate.draftToSandbox', { files: [file('a', 60, 41)] });
    assert.match(lines.explanation, /101 lines changed; the limit is 100/);
    assert.equal(decide(effective, 'gate.draftToSandbox', { files: [file('a', 60, 39), file('b')] }).effect, 'allow');
    const soft = policy({ blastRadius: { maxFiles: 1 }, stopConditions: { blastRadius: 'requireApproval' } });
    assert.equal(decide(soft, 'gate.draftToSandbox', { files: [file('a'), file('b')] }).effect, 'allow');
    assert.equal(decide(soft, 'gate.reviewToPullRequest', { files: [file('a'), file('b')], approvals: [] }).effect, 'requireApproval');
  });

  it('the kill switch blocks the side effects it names, with its message', () => {
    const drafts = policy({ killSwitch: { disableDrafts: true, message: 'Incident 42: agents paused.' } });
    for (const action of ['createDraft', 'startAgent', 'agentCall'] as const) {
      const decision = decide(drafts, action);
      assert.equal(decision.effect, 'block');
      assert.equal(decision.matchedRules[0]!.rule, 'killSwitch.disableDrafts');
      assert.match(decision.explanation, /kill switch has stopped .*: Incident 42: agents paused\./);
    }
    assert.equal(decide(drafts, 'runTask').effect, 'allow');
    const sandbox = policy({ killSwitch: { disableSandbox: true } });
    assert.equal(decide(sandbox, 'runTask').effect, 'block');
    assert.equal(decide(sandbox, 'gate.draftToSandbox').effect, 'block');
    assert.equal(decide(sandbox, 'push').effect, 'allow');
    const prs = policy({}, [{ level: 'repository', body: { killSwitch: { disablePullRequests: true, message: 'freeze' } } }]);
    for (const action of ['push', 'createPullRequest', 'gate.reviewToPullRequest'] as const) {
      const decision = decide(prs, action);
      assert.equal(decision.effect, 'block', action);
      assert.equal(decision.matchedRules[0]!.policy, 'repository@x');
    }
    assert.equal(decide(prs, 'createDraft').effect, 'allow');
  });

  it('globs match in any case where the checkout ignores case (macOS, Windows), and only there', () => {
    const index = (caseInsensitive: boolean) => {
      const built = new GlobIndex<string>({ caseInsensitive });
      for (const glob of ['.github/workflows/**', '**/*.pem', 'CODEOWNERS', '**/secrets/**', 'src/{a,b}/*.ts']) built.add(glob, glob);
      return built;
    };
    const sensitive = index(false);
    const insensitive = index(true);
    const cases: [string, string[]][] = [
      ['.GitHub/Workflows/x.yml', ['.github/workflows/**']],
      ['keys/Server.PEM', ['**/*.pem']],
      ['codeowners', ['CODEOWNERS']],
      ['app/Secrets/token.txt', ['**/secrets/**']],
      ['SRC/A/x.ts', ['src/{a,b}/*.ts']],
    ];
    for (const [path, globs] of cases) {
      assert.deepEqual(insensitive.match(path), globs, path);
      assert.deepEqual(sensitive.match(path), [], `${path} on a case-sensitive disk is another file`);
    }
    assert.deepEqual(sensitive.match('.github/workflows/x.yml'), ['.github/workflows/**']);

    const builtin = mergePolicies({ level: 'builtin', document: builtinPolicyDocument() }, []);
    const workflow = { files: [file('.GitHub/Workflows/deploy.yml')] };
    assert.equal(decide(builtin, 'gate.draftToSandbox', workflow).effect, 'allow', 'another folder on a case-sensitive disk');
    const blocked = decide(builtin, 'gate.draftToSandbox', { ...workflow, caseInsensitivePaths: true });
    assert.equal(blocked.effect, 'block');
    assert.match(blocked.explanation, /CI workflows/);
  });

  it('stop conditions: a file that runs code later needs approval by default, and policy can make it block', () => {
    const flags = [{ kind: 'executesLater' as const, path: '.vscode/tasks.json', detail: 'runs later' }];
    const byDefault = decide(policy({}), 'gate.reviewToPullRequest', { flags, approvals: [] });
    assert.equal(byDefault.effect, 'requireApproval');
    assert.ok(byDefault.matchedRules.some((rule) => rule.rule === 'stopConditions.executesLater' && rule.effect === 'requireApproval'));
    const strict = decide(policy({ stopConditions: { executesLater: 'block' } }), 'gate.draftToSandbox', { flags });
    assert.equal(strict.effect, 'block');
    assert.equal(strict.matchedRules[0]!.rule, 'stopConditions.executesLater');
  });

  it('stop conditions: a secret only the history holds (secretInHistory) is the secretLike condition, block by default', () => {
    const flags = [{ kind: 'secretInHistory' as const, path: 'config.txt', detail: 'Commit 1a2b3c4d5e6f adds 1 secret-like token' }];
    for (const action of ['gate.draftToSandbox', 'gate.sandboxToReview', 'gate.reviewToPullRequest'] as const) {
      const decision = decide(policy({}), action, { flags, approvals: [], tasks: [] });
      assert.equal(decision.effect, 'block', action);
      assert.ok(decision.matchedRules.some((rule) => rule.rule === 'stopConditions.secretLike'));
    }
  });

  it('stop conditions: flags map to conditions with their configured effect', () => {
    const effective = policy({ stopConditions: { binaryFile: 'block', newDependency: 'requireApproval', unusualScope: 'allow' } });
    const secret = decide(effective, 'gate.draftToSandbox', { flags: [{ kind: 'secretLike', path: 'src/config.ts', detail: 'aws key' }] });
    assert.equal(secret.effect, 'block');
    assert.deepEqual(secret.matchedRules[0], {
      policy: 'acme@7',
      rule: 'stopConditions.secretLike',
      effect: 'block',
      reason: 'secret-like content: src/config.ts',
      paths: ['src/config.ts'],
    });
    for (const kind of ['pathTraversal', 'gitPath', 'symlinkEscape'] as const) {
      const decision = decide(effective, 'gate.sandboxToReview', { flags: [{ kind, path: 'x', detail: 'd' }] });
      assert.equal(decision.matchedRules[0]!.rule, 'stopConditions.forbiddenPath', kind);
      assert.equal(decision.effect, 'block');
    }
    assert.equal(decide(effective, 'gate.draftToSandbox', { flags: [{ kind: 'binaryFile', path: 'a.bin', detail: '' }] }).effect, 'block');
    assert.equal(
      decide(effective, 'gate.draftToSandbox', { flags: [{ kind: 'unusualScope', detail: 'touches 9 packages' }] }).matchedRules.length,
      0,
    );
    const dependency = decide(effective, 'gate.reviewToPullRequest', {
      flags: [{ kind: 'newDependency', path: 'package.json', detail: 'left-pad' }],
      approvals: [],
    });
    assert.equal(dependency.effect, 'requireApproval');
    assert.ok(dependency.matchedRules.some((rule) => rule.rule === 'stopConditions.newDependency'));
    assert.equal(
      decide(effective, 'gate.reviewToPullRequest', { flags: [{ kind: 'newDependency', path: 'package.json', detail: 'left-pad' }] })
        .effect,
      'allow',
    );
  });

  it('sensitive paths from the policy raise the sensitivePath condition', () => {
    const effective = policy({ sensitivePaths: ['**/auth/**'], stopConditions: { sensitivePath: 'block' } });
    const decision = decide(effective, 'gate.draftToSandbox', { files: [file('src/auth/login.ts')] });
    assert.equal(decision.effect, 'block');
    assert.equal(decision.matchedRules[0]!.rule, 'sensitivePaths');
    assert.deepEqual(decision.matchedRules[0]!.paths, ['src/auth/login.ts']);
  });

  it('after the sandbox: required tasks must have passed and required evidence be present', () => {
    const effective = policy({
      lanes: {
        sandbox: {
          requiredTasks: [
            { id: 'unit', command: 'npm test' },
            { id: 'lint', command: 'npm run lint' },
          ],
        },
        evidence: { required: ['tests', 'assumptions'] },
      },
    });
    assert.equal(decide(effective, 'gate.draftToSandbox', { tasks: [] }).effect, 'allow', 'tasks are not expected before the sandbox');
    const missing = decide(effective, 'gate.sandboxToReview', { tasks: [{ id: 'unit', outcome: 'failed' }] });
    assert.equal(missing.effect, 'block');
    assert.match(missing.explanation, /required task unit failed; lint was not run/);
    const passed = decide(effective, 'gate.sandboxToReview', {
      tasks: [
        { id: 'unit', outcome: 'passed' },
        { id: 'lint', outcome: 'passed' },
      ],
    });
    assert.equal(passed.effect, 'allow');
    const evidence = decide(effective, 'gate.sandboxToReview', {
      tasks: [
        { id: 'unit', outcome: 'passed' },
        { id: 'lint', outcome: 'passed' },
      ],
      evidence: ['tests'],
    });
    assert.equal(evidence.effect, 'block');
    assert.equal(evidence.explanation, 'Blocked: Sandbox → Review: required evidence is missing: assumptions');
    const repoTask = policy({ lanes: { sandbox: { requiredTasks: [{ id: 'unit', command: 'npm test' }] } } }, [
      {
        level: 'repository',
        body: {
          lanes: { sandbox: { requiredTasks: [{ id: 'lint', command: 'npm run lint' }] }, evidence: { required: ['confidenceLimits'] } },
        },
      },
    ]);
    const fromRepo = decide(repoTask, 'gate.sandboxToReview', { tasks: [{ id: 'unit', outcome: 'passed' }], evidence: ['tests'] });
    assert.deepEqual(
      fromRepo.matchedRules.map((rule) => [rule.rule, rule.policy]),
      [
        ['lanes.sandbox.requiredTasks', 'repository@x'],
        ['lanes.evidence.required', 'repository@x'],
      ],
    );
    const timedOut = decide(policy({}), 'gate.sandboxToReview', { tasks: [{ id: 'e2e', outcome: 'timedOut', required: true }] });
    assert.match(timedOut.explanation, /required task e2e ended timedOut/);
  });

  it('tasks run with network or in a forbidden process sandbox are refused', () => {
    const effective = policy({ lanes: { sandbox: { processSandbox: 'forbidden', network: { tasks: 'none' } } } });
    assert.equal(decide(effective, 'runTask', { isolation: 'process' }).effect, 'block');
    assert.equal(decide(effective, 'runTask', { isolation: 'container' }).effect, 'allow');
    const ran = decide(effective, 'gate.sandboxToReview', {
      tasks: [{ id: 'unit', outcome: 'passed', isolation: 'process', networkMode: 'open' }],
    });
    assert.deepEqual(
      ran.matchedRules.map((rule) => rule.rule),
      ['lanes.sandbox.processSandbox', 'lanes.sandbox.network.tasks'],
    );
  });

  it('allowed agents and base branches; draft-only pull requests', () => {
    const effective = policy({ lanes: { allowedAgents: ['codex'], pullRequests: { allowedBaseBranches: ['main'], draftOnly: true } } });
    const agent = decide(effective, 'startAgent', { agentId: 'rogue' });
    assert.equal(agent.effect, 'block');
    assert.match(agent.explanation, /agent "rogue" is not allowed \(allowed: codex\)/);
    assert.equal(decide(effective, 'startAgent', { agentId: undefined }).effect, 'block');
    assert.match(decide(effective, 'push', { baseBranch: 'dev' }).explanation, /base branch "dev" is not allowed/);
    assert.match(decide(effective, 'createPullRequest', { pullRequestDraft: false }).explanation, /must be opened as drafts/);
    assert.equal(decide(effective, 'createPullRequest', { pullRequestDraft: true }).effect, 'allow');
  });

  it('an expired policy allows drafts only', () => {
    const effective = policy({ metadata: { id: 'acme', version: '7', expiresAt: '2026-11-01T00:00:00Z' } });
    assert.equal(decide(effective, 'createDraft').effect, 'allow');
    assert.equal(decide(effective, 'startAgent').effect, 'allow');
    const gate = decide(effective, 'gate.draftToSandbox');
    assert.equal(gate.effect, 'block');
    assert.match(gate.explanation, /policy acme@7 expired at 2026-11-01T00:00:00Z/);
  });

  it("a gate without the change's files blocks instead of passing unchecked", () => {
    const decision = evaluate(policy({}), { agentId: 'codex' }, 'gate.draftToSandbox', NOW);
    assert.equal(decision.effect, 'block');
    assert.match(decision.explanation, /files are not known/);
  });

  it('the built-in policy blocks CI and secrets and asks approval for agent instructions', () => {
    const effective = mergePolicies({ level: 'builtin', document: builtinPolicyDocument() });
    for (const path of [
      '.github/workflows/ci.yml',
      '.env',
      'config/.env.production',
      'deploy/tls.key',
      'certs/server.pem',
      'ops/secrets/db.txt',
      'home/.ssh/id_rsa',
    ]) {
      assert.equal(decide(effective, 'gate.draftToSandbox', { files: [file(path)] }).effect, 'block', path);
    }
    for (const path of [
      'AGENTS.md',
      'pkg/AGENTS.md',
      'CLAUDE.md',
      '.github/copilot-instructions.md',
      '.cursorrules',
      '.lanes/policy.yaml',
    ]) {
      assert.equal(decide(effective, 'gate.reviewToPullRequest', { files: [file(path)], approvals: [] }).effect, 'requireApproval', path);
    }
    assert.equal(decide(effective, 'createPullRequest', { pullRequestDraft: false }).effect, 'block');
  });

  it('builds facts from an evidence record', () => {
    const evidence: Evidence = EvidenceSchema.parse({
      schemaVersion: 1,
      changeId: 'c0ffee02',
      agent: { id: 'codex' },
      prompt: { ref: 'p1', redacted: 'do it' },
      base: { ref: 'main', sha: 'a'.repeat(40) },
      headSha: 'b'.repeat(40),
      diff: {
        hash: 'h',
        files: [{ path: 'infra/x.tf', status: 'modified', additions: 1, deletions: 0, binary: false }],
        totals: { files: 1, additions: 1, deletions: 0 },
      },
      agentReport: { assumptions: ['none'], summary: 'did it' },
      tasks: [],
    });
    assert.deepEqual(presentEvidenceFields(evidence).sort(), [
      'agent',
      'assumptions',
      'baseAndHead',
      'filesTouched',
      'flags',
      'prompt',
      'summary',
    ]);
    const result = factsFromEvidence(evidence, { baseBranch: 'main', approvals: [{ by: 'alice' }] });
    assert.equal(result.changeId, 'c0ffee02');
    assert.equal(result.files?.[0]?.path, 'infra/x.tf');
    assert.equal(result.baseBranch, 'main');
    const effective = policy({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'no' }] });
    assert.equal(evaluate(effective, result, 'gate.draftToSandbox', NOW).effect, 'block');
  });
});
