import * as assert from 'node:assert/strict';
import type { Change } from '../../src/core/change';
import type { DecisionRecord } from '../../src/core/decision';
import type { Evidence } from '../../src/core/evidence';

type EvidenceFlag = Evidence['flags'][number];
import { type ChangeFacts, type PolicyAction, evaluate } from '../../src/core/policy/evaluate';
import { type EffectivePolicy, mergePolicies } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parsePolicyObject } from '../../src/core/policy/schema';
import { buildEvidenceView } from '../../src/core/review/reviewModel';
import { type VerdictInput, buildVerdict, gateDecisionForReview, pullRequestView, readOnlyReason } from '../../src/core/review/verdict';

const HASH = 'a'.repeat(64);
const NOW = new Date('2026-12-04T12:00:00Z');
const FILES = ['src/greeting.js', 'package.json', 'assets/logo.png'];

function policy(body: Record<string, unknown> = {}): EffectivePolicy {
  const parsed = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: '7' }, ...body }, 'org');
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
  return mergePolicies({ level: 'org', document: parsed.policy });
}

const NEW_DEPENDENCY: EvidenceFlag = { kind: 'newDependency', path: 'package.json', detail: 'adds left-pad@1.3.0 to dependencies' };
const BINARY: EvidenceFlag = { kind: 'binaryFile', path: 'assets/logo.png', detail: 'a binary file (12 bytes)' };

function evidence(flags: EvidenceFlag[]): Evidence {
  return {
    schemaVersion: 1,
    changeId: 'abcd1234',
    agent: { id: 'scripted-agent' },
    prompt: { ref: 'p-1', redacted: 'do it', redaction: { total: 0, byKind: {} } },
    base: { ref: 'main', sha: 'b'.repeat(40) },
    headSha: 'c'.repeat(40),
    diff: { hash: HASH, files: [], totals: { files: 3, additions: 5, deletions: 1 } },
    flags,
    tasks: [],
    decisions: [],
  };
}

/** The gate as the Review lane asks it: the real evaluator, as if "the reviewer" had approved. */
function gate(
  effective: EffectivePolicy,
  flags: EvidenceFlag[],
  extra: Partial<ChangeFacts> = {},
  action: PolicyAction = 'gate.reviewToPullRequest',
) {
  const decision = evaluate(
    effective,
    {
      changeId: 'abcd1234',
      agentId: 'scripted-agent',
      files: FILES.map((path) => ({ path, additions: 1, deletions: 0 })),
      flags: flags.map((flag) => ({ kind: flag.kind, ...(flag.path ? { path: flag.path } : {}), detail: flag.detail })),
      tasks: [{ id: 'test', outcome: 'passed' }],
      evidence: ['filesTouched', 'flags', 'tests', 'prompt', 'agent', 'baseAndHead'],
      approvals: [{ by: 'the reviewer', isAuthor: false }],
      baseBranch: 'main',
      author: 'author@example.invalid',
      ...extra,
    },
    action,
    NOW,
  );
  return { decision, verdict: { ready: decision.effect !== 'block', reasons: blockReasons(decision), decisions: [decision] } };
}

function blockReasons(decision: DecisionRecord): string[] {
  return decision.matchedRules.filter((rule) => rule.effect === 'block').map((rule) => rule.reason ?? rule.rule);
}

function input(overrides: Partial<VerdictInput> & Pick<VerdictInput, 'gate'>, flags: EvidenceFlag[] = [NEW_DEPENDENCY]): VerdictInput {
  return {
    change: { id: 'abcd1234', lane: 'review' },
    refusal: undefined,
    evidence: buildEvidenceView({ kind: 'ok', evidence: evidence(flags), hash: HASH }, ['tests'], HASH),
    files: FILES,
    warnings: [],
    ...overrides,
  };
}

const approval = (extra: Partial<NonNullable<Change['approval']>> = {}): NonNullable<Change['approval']> => ({
  by: 'ann@example.invalid',
  at: '2026-12-04T12:30:00.000Z',
  diffHash: HASH,
  evidenceHash: HASH,
  ...extra,
});

describe('review verdict', () => {
  it('says what still needs a reviewer, with its reason, rule and flag, and claims no approval before one is given', () => {
    const { decision, verdict: gateVerdict } = gate(policy(), [NEW_DEPENDENCY]);
    const verdict = buildVerdict(input({ gate: gateVerdict }));
    assert.equal(verdict.state, 'needsApproval');
    assert.equal(verdict.headline, "Needs a reviewer's approval for: a new dependency: package.json");
    assert.deepEqual(verdict.items, [
      {
        kind: 'approval',
        text: 'a new dependency: package.json',
        rule: 'stopConditions.newDependency (acme@7)',
        detail: 'New dependency package.json: adds left-pad@1.3.0 to dependencies',
        target: { tab: 'evidence', id: 'flag-0' },
        targetLabel: 'Flags',
      },
    ]);
    assert.match(decision.explanation, /approved by the reviewer for/, 'the evaluator speaks of the prospective reviewer');
    const shown = gateDecisionForReview(decision, {});
    assert.equal(
      shown.explanation,
      "Allowed once approved: Review → Pull request; needs a reviewer's approval for: a new dependency: package.json",
    );
    assert.doesNotMatch(JSON.stringify({ verdict, shown }), /approved by/i);
  });

  it('says who approved, for what, once the approval is given', () => {
    const { decision, verdict: gateVerdict } = gate(policy(), [NEW_DEPENDENCY]);
    const change = { id: 'abcd1234', lane: 'review' as const, approval: approval() };
    const verdict = buildVerdict(input({ gate: gateVerdict, change }));
    assert.equal(verdict.state, 'approved');
    assert.equal(verdict.headline, 'Approved by ann@example.invalid for: a new dependency: package.json');
    assert.deepEqual(
      verdict.items.map((item) => [item.kind, item.text]),
      [['approved', 'a new dependency: package.json']],
      'who approved is said once, in the headline',
    );
    assert.equal(
      gateDecisionForReview(decision, change).explanation,
      'Allowed: Review → Pull request; approved by ann@example.invalid for: a new dependency: package.json',
    );
    const invalidated = buildVerdict(
      input({ gate: gateVerdict, change: { ...change, approval: approval({ invalidated: { at: 't', reason: 'the worktree changed' } }) } }),
    );
    assert.equal(invalidated.state, 'invalidated');
    assert.equal(invalidated.headline, 'Approval invalidated: the worktree changed');
    assert.deepEqual(
      invalidated.items.map((item) => item.kind),
      ['approval'],
      'an invalidated approval covers nothing: it is needed again',
    );
  });

  it('lists every blocker with its rule and its place: a file, the evidence; flags no rule stops and warnings follow', () => {
    const effective = policy({ pathRules: [{ glob: 'src/**', effect: 'block', reason: 'only people write src' }] });
    const { verdict: gateVerdict } = gate(effective, [NEW_DEPENDENCY, BINARY], {
      tasks: [{ id: 'test', outcome: 'failed', required: true }],
    });
    const verdict = buildVerdict(
      input({ gate: gateVerdict, warnings: ['The worktree has changes that are not in the reviewed commits.'] }, [NEW_DEPENDENCY, BINARY]),
    );
    assert.equal(verdict.state, 'blocked');
    assert.equal(verdict.headline, 'Blocked: 2 things stop the move to Pull request');
    const byKind = (kind: string) => verdict.items.filter((item) => item.kind === kind);
    const [path, task] = byKind('block');
    assert.match(path!.text, /^src\/greeting\.js matches "src\/\*\*": only people write src$/);
    assert.match(path!.rule ?? '', /^pathRules\[0\] "src\/\*\*" \(acme@7\)$/);
    assert.deepEqual(path!.target, { tab: 'files', file: 0 });
    assert.equal(path!.targetLabel, 'src/greeting.js');
    assert.equal(task!.text, 'required task test failed');
    assert.deepEqual(task!.target, { tab: 'evidence', id: 'ev-tests' });
    assert.deepEqual(
      byKind('approval').map((item) => item.target),
      [{ tab: 'evidence', id: 'flag-0' }],
    );
    assert.deepEqual(byKind('flag'), [
      {
        kind: 'flag',
        text: 'Binary file assets/logo.png: a binary file (12 bytes)',
        detail: 'No rule of the policy stops it or asks for an approval.',
        rule: 'stopConditions.binaryFile: allow',
        target: { tab: 'evidence', id: 'flag-1' },
        targetLabel: 'Flags',
      },
    ]);
    assert.deepEqual(
      byKind('warning').map((item) => item.text),
      ['The worktree has changes that are not in the reviewed commits.'],
    );
  });

  it('points missing required evidence at its section', () => {
    const { verdict: gateVerdict } = gate(policy({ lanes: { evidence: { required: ['tests', 'summary'] } } }), [], {
      evidence: ['filesTouched'],
    });
    const verdict = buildVerdict(
      input({
        gate: gateVerdict,
        evidence: buildEvidenceView({ kind: 'ok', evidence: evidence([]), hash: HASH }, ['tests', 'summary'], HASH),
      }),
    );
    const item = verdict.items.find((candidate) => candidate.rule?.startsWith('lanes.evidence.required'));
    assert.equal(item?.kind, 'block');
    assert.deepEqual(item?.target, { tab: 'evidence', id: 'ev-summary' }, 'the first missing required section, in reading order');
  });

  it('says why an approval cannot be given when the gate alone would allow it', () => {
    const { verdict: gateVerdict } = gate(policy(), []);
    const verdict = buildVerdict(input({ gate: gateVerdict, refusal: 'Policy forbids self-approval: author started this change.' }, []));
    assert.equal(verdict.state, 'cannotApprove');
    assert.deepEqual(verdict.items[0], { kind: 'block', text: 'Policy forbids self-approval: author started this change.' });
    const ready = buildVerdict(input({ gate: gateVerdict }, []));
    assert.equal(ready.state, 'needsApproval');
    assert.equal(ready.headline, "Needs a reviewer's approval; nothing else stops it");
  });

  it('reads a change outside Review: a blocked draft says where and why; a pull request says its number, state and checks', () => {
    const blocked = evaluate(
      policy({ pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'the Terraform pipeline owns infra' }] }),
      { changeId: 'abcd1234', agentId: 'scripted-agent', files: [{ path: 'infra/main.tf', additions: 3, deletions: 0 }], flags: [] },
      'gate.draftToSandbox',
      NOW,
    );
    const { verdict: gateVerdict } = gate(policy(), []);
    const draft = buildVerdict(input({ gate: gateVerdict, change: { id: 'abcd1234', lane: 'draft', lastDecision: blocked } }, []));
    assert.equal(draft.state, 'readOnly');
    assert.equal(draft.headline, 'In Draft: blocked at Draft → Sandbox');
    assert.deepEqual(
      draft.items.map((item) => [item.kind, item.step, item.text]),
      [['block', 'Draft → Sandbox', 'infra/main.tf matches "infra/**": the Terraform pipeline owns infra']],
    );
    assert.equal(draft.decisions.length, 0);
    assert.match(readOnlyReason({ id: 'abcd1234', lane: 'draft' }) ?? '', /is in Draft: this review is read-only/);
    assert.equal(readOnlyReason({ id: 'abcd1234', lane: 'review' }), undefined);

    const pullRequest = {
      number: 12,
      url: 'https://github.example/acme/app/pull/12',
      repository: 'acme/app',
      draft: false,
      state: 'open' as const,
      checks: 'passing' as const,
      updatedAt: '2026-12-04T13:00:00.000Z',
    };
    const createPr = gate(policy(), [NEW_DEPENDENCY], { approvals: [{ by: 'ann@example.invalid' }] }, 'createPullRequest').decision;
    const change = { id: 'abcd1234', lane: 'pullRequest' as const, approval: approval(), pullRequest, lastDecision: createPr };
    const inPr = buildVerdict(input({ gate: gateVerdict, change }));
    assert.equal(inPr.state, 'readOnly');
    assert.equal(inPr.headline, 'In Pull request #12 · open · checks passing');
    // Merged into Release: its actions at a glance, and where they run from; "needs rollback" first when one failed.
    const run = {
      key: 'k',
      actionId: 'deploy-staging',
      sha: 'f'.repeat(40),
      inputs: {},
      authorizedBy: 'rel',
      authorizedAt: 't',
      policyHash: 'h',
    };
    const release = { repository: 'acme/app', branch: 'main', mergedSha: 'f'.repeat(40), runs: [{ ...run, state: 'succeeded' as const }] };
    const released = buildVerdict(input({ gate: gateVerdict, change: { ...change, lane: 'release' as const, release } }));
    assert.equal(released.headline, 'In Release: deploy-staging succeeded');
    assert.match(released.detail ?? '', /production actions run from the Lanes view/);
    const failing = { ...release, runs: [{ ...run, state: 'failed' as const }], needsRollback: { reason: 'x', at: 't' } };
    assert.equal(
      buildVerdict(input({ gate: gateVerdict, change: { ...change, lane: 'release' as const, release: failing } })).headline,
      'In Release: needs rollback',
    );
    assert.deepEqual(
      inPr.items.map((item) => [item.kind, item.text]),
      [['approved', 'a new dependency: package.json']],
    );
    assert.deepEqual(pullRequestView(change), {
      number: 12,
      url: pullRequest.url,
      repository: 'acme/app',
      state: 'open',
      checks: 'passing',
      checksText: 'checks passing',
      updatedAt: pullRequest.updatedAt,
    });
    const closed = buildVerdict(input({ gate: gateVerdict, change: { id: 'abcd1234', lane: 'closed', closedReason: 'rejected' } }, []));
    assert.equal(closed.headline, 'Closed (rejected)');
  });
});
