import assert from 'node:assert/strict';
import { EvidenceSchema, FLAG_KINDS, hashEvidence, type Evidence, type Flag } from '../../src/core/evidence';
import {
  buildPullRequestBody,
  codeBlock,
  codeSpan,
  escapeInline,
  GITHUB_BODY_LIMIT,
  IN_TOTO_STATEMENT_TYPE,
  PROVENANCE_PREDICATE_TYPE,
  type InTotoStatement,
  type PullRequestBodyInput,
} from '../../src/core/pullRequest/body';
import { FLAG_RISK, pullRequestLabels, pullRequestTitle, riskLevel } from '../../src/core/pullRequest/risk';

const HEAD = 'c0ffee'.padEnd(40, '1');
const BASE = 'ba5e'.padEnd(40, '2');
const DIFF_HASH = 'd'.repeat(64);
const GITHUB_TOKEN = 'ghp_' + 'A1b2C3d4E5'.repeat(4);

function sampleEvidence(overrides: Partial<Evidence> = {}): Evidence {
  return EvidenceSchema.parse({
    schemaVersion: 1,
    changeId: 'abcd1234',
    agent: { id: 'scripted-agent', version: '1.2.0' },
    prompt: { ref: 'prompt-1', redacted: 'Add a greeting endpoint' },
    base: { ref: 'main', sha: BASE },
    headSha: HEAD,
    diff: {
      hash: DIFF_HASH,
      files: [
        { path: 'src/greet.ts', status: 'added', additions: 12, deletions: 0, binary: false },
        { path: 'package.json', status: 'modified', additions: 1, deletions: 0, binary: false },
      ],
      totals: { files: 2, additions: 13, deletions: 0 },
    },
    flags: [{ kind: 'newDependency', path: 'package.json', detail: 'adds left-pad@1.3.0' }],
    agentReport: { summary: 'Adds a greeting endpoint and its test.', assumptions: ['Node 20'] },
    tasks: [
      {
        id: 'test',
        command: 'npm test',
        required: true,
        isolation: 'container',
        image: 'localhost/agent-lanes-sandbox:test',
        networkMode: 'none',
        outcome: 'passed',
        exitCode: 0,
        durationMs: 4200,
        counts: { passed: 12, failed: 0, skipped: 1, format: 'mocha' },
        logDigest: 'e'.repeat(64),
        redaction: { total: 0, byKind: {} },
        failsOnBase: true,
        startedAt: '2026-11-21T10:00:00.000Z',
      },
    ],
    ...overrides,
  });
}

function sampleInput(evidence: Evidence = sampleEvidence(), overrides: Partial<PullRequestBodyInput> = {}): PullRequestBodyInput {
  return {
    changeId: 'abcd1234',
    title: 'Add a greeting endpoint',
    branch: 'lanes/abcd1234',
    repository: 'octo-org/hello-lanes',
    headSha: HEAD,
    evidence,
    policy: { id: 'org-default', version: '3', hash: 'f'.repeat(64) },
    auditHeadHash: 'a'.repeat(64),
    approval: { by: 'alice', at: '2026-11-21T11:00:00.000Z', diffHash: DIFF_HASH, evidenceHash: hashEvidence(evidence) },
    generatedAt: '2026-11-21T12:00:00.000Z',
    generator: { name: 'agent-lanes', version: '0.1.0' },
    ...overrides,
  };
}

/** The statement as a reader of the pull request would get it: the JSON inside the provenance section. */
function statementFromBody(body: string): InTotoStatement {
  const section = body.slice(body.indexOf('<summary>Provenance'));
  const found = /(`{3,})json\n([\s\S]*?)\n\1/.exec(section);
  assert.ok(found?.[2], 'the provenance section holds a JSON block');
  return JSON.parse(found[2]) as InTotoStatement;
}

describe('pull request body', () => {
  it('starts with a short summary a reviewer can read', () => {
    const { body, risk } = buildPullRequestBody(sampleInput());
    const summary = body.slice(0, body.indexOf('<details>'));
    assert.equal(risk, 'medium');
    assert.match(summary, /^<!-- agent-lanes change=abcd1234 -->\n## Agent change `abcd1234`: Add a greeting endpoint/);
    assert.match(summary, /### What changed\nTask: Add a greeting endpoint\n\n> Adds a greeting endpoint and its test\./);
    assert.match(summary, /2 files, \+13 −0; diff `sha256:dddddddddddddddd…`/);
    assert.match(summary, /\| `src\/greet\.ts` \| added \| 12 \| 0 \|/);
    assert.match(
      summary,
      /\| `npm test` \(required\) \| passed · 12 passed, 0 failed, 1 skipped · exit 0 \| yes \(fails on base\) \| container `localhost\/agent-lanes-sandbox:test`, network none \| 4\.2 s \|/,
    );
    assert.match(summary, /### Flags \(risk: medium\)\n- `newDependency` `package\.json`: adds left-pad@\u200b1\.3\.0/);
    assert.match(summary, /Approved by \*\*alice\*\* at 2026-11-21T11:00:00\.000Z for diff `sha256:dddddddddddddddd…`/);
    assert.match(summary, /under policy `org-default@3`/);
  });

  it('names the boundary the agent ran in, and marks an unconfined or unverified one', () => {
    const isolation = {
      backend: 'container' as const,
      verified: true,
      sandbox: 'podman 4.3.1',
      image: 'registry.example/agents:2',
      network: { allow: [], refused: [], refusedTotal: 0, allowedTotal: 0 },
      limits: { timeoutSeconds: 600 },
      notEnforced: [],
      probes: [],
    };
    const summaryOf = (evidence: Evidence) => buildPullRequestBody(sampleInput(evidence)).body.split('<details>')[0]!;
    const verified = summaryOf(sampleEvidence({ isolation }));
    assert.match(
      verified,
      /\n\n\*\*Agent boundary:\*\* isolation verified: container \\\(podman 4\.3\.1\\\) image registry\.example\/agents:2 · network off\.\n/,
    );
    assert.doesNotMatch(verified, /⚠️/);

    const refused = summaryOf(
      sampleEvidence({
        isolation: {
          ...isolation,
          network: {
            allow: ['api.example.com'],
            refused: [
              { host: 'a.example', port: 443, at: '2026-12-04T10:00:00Z' },
              { host: 'b.example', port: 80, at: '2026-12-04T10:00:01Z' },
            ],
            refusedTotal: 2,
            allowedTotal: 5,
          },
        },
      }),
    );
    assert.match(refused, /egress only to api\.example\.com · 2 connections refused: a\.example:443, b\.example:80\./);

    const host = summaryOf(sampleEvidence({ isolation: { ...isolation, backend: 'host', verified: false } }));
    assert.match(host, /⚠️ \*\*Agent boundary:\*\* unconfined: the agent ran as you, on the host, with your files and network\./);
    const unverified = summaryOf(sampleEvidence({ isolation: { ...isolation, verified: false } }));
    assert.match(unverified, /⚠️ \*\*Agent boundary:\*\* isolation NOT verified: container/);

    const chat = summaryOf(sampleEvidence({ agent: { id: 'vscode-chat' } }));
    assert.match(chat, /\*\*Agent boundary:\*\* no CLI agent boundary \\\(chat agent\\\)/);
    assert.doesNotMatch(summaryOf(sampleEvidence()), /Agent boundary/, 'evidence from before agent boundaries: no line');
  });

  it('says which test files ran against which base for "fails without the change"', () => {
    const evidence = {
      ...sampleEvidence(),
      baseRun: { baseSha: 'b'.repeat(40), testFiles: ['test/a.test.js', 'test/`b`.test.js'], removedTestFiles: [] },
    };
    const { body } = buildPullRequestBody(sampleInput(evidence));
    assert.ok(
      body.includes(
        `"Fails without the change": the change's 2 test files (\`test/a.test.js\`, \`\`test/\`b\`.test.js\`\`) ran against the base commit \`bbbbbbbbbbbb\`.`,
      ),
      body,
    );
    assert.ok(!buildPullRequestBody(sampleInput(sampleEvidence())).body.includes('"Fails without the change"'));
  });

  it('puts the full evidence in a collapsed section', () => {
    const evidence = sampleEvidence();
    const { body, truncated } = buildPullRequestBody(sampleInput(evidence));
    assert.equal(truncated, false);
    const section = /<details>\n<summary>Evidence \(JSON\)<\/summary>\n\n```json\n([\s\S]*?)\n```\n\n<\/details>/.exec(body);
    assert.ok(section?.[1]);
    assert.deepEqual(JSON.parse(section[1]), evidence);
  });

  it('ends with an in-toto Statement v1 about the head commit, holding evidence, policy, audit head and approval', () => {
    const input = sampleInput();
    const { body, statement } = buildPullRequestBody(input);
    const parsed = statementFromBody(body);
    assert.deepEqual(parsed, statement);
    assert.equal(parsed._type, IN_TOTO_STATEMENT_TYPE);
    assert.equal(parsed._type, 'https://in-toto.io/Statement/v1');
    assert.deepEqual(parsed.subject, [{ name: 'octo-org/hello-lanes@refs/heads/lanes/abcd1234', digest: { gitCommit: HEAD } }]);
    assert.equal(parsed.predicateType, PROVENANCE_PREDICATE_TYPE);
    assert.deepEqual(parsed.predicate.policy, { id: 'org-default', version: '3', hash: 'f'.repeat(64) });
    assert.deepEqual(parsed.predicate.audit, { headHash: 'a'.repeat(64) });
    assert.deepEqual(parsed.predicate.approval, input.approval);
    assert.deepEqual(parsed.predicate.evidence, input.evidence);
    // Nothing needed redacting, so the digest is the hash the approval was given for.
    assert.equal(parsed.predicate.evidenceDigest.sha256, input.approval.evidenceHash);
    assert.deepEqual(parsed.predicate.change, {
      id: 'abcd1234',
      branch: 'lanes/abcd1234',
      base: { ref: 'main', sha: BASE },
      headSha: HEAD,
    });
    assert.ok(body.indexOf('Evidence (JSON)') < body.indexOf('Provenance: in-toto'));
  });

  it('redacts secrets before anything leaves the machine', () => {
    const evidence = sampleEvidence({
      prompt: { ref: 'p', redacted: `use ${GITHUB_TOKEN} to deploy` },
      agentReport: { summary: 'Set AWS key AKIAIOSFODNN7EXAMPLE in the config' },
    });
    const result = buildPullRequestBody(sampleInput(evidence, { title: `Deploy with ${GITHUB_TOKEN}` }));
    assert.ok(!result.body.includes(GITHUB_TOKEN));
    assert.ok(!result.body.includes('AKIAIOSFODNN7EXAMPLE'));
    assert.match(result.body, /\[REDACTED:githubToken\]/);
    assert.ok(result.redaction.total >= 3);
    assert.equal(result.redaction.byKind.githubToken, 2);
    assert.notEqual(result.statement.predicate.evidenceDigest.sha256, hashEvidence(evidence), 'the digest is of what was published');
  });

  it('keeps agent text from pinging people, injecting HTML or breaking out of code blocks', () => {
    const evidence = sampleEvidence({
      agentReport: { summary: 'cc @octo-org/security </details><script>alert(1)</script> [x](javascript:alert(1))' },
      diff: {
        hash: DIFF_HASH,
        files: [{ path: 'weird`name|```.ts', status: 'added', additions: 1, deletions: 0, binary: false }],
        totals: { files: 1, additions: 1, deletions: 0 },
      },
    });
    const { body } = buildPullRequestBody(sampleInput(evidence));
    const summary = body.slice(0, body.indexOf('<details>'));
    assert.ok(!summary.includes('@octo-org'));
    assert.ok(summary.includes('@\u200bocto-org'));
    assert.ok(!summary.includes('<script>') && !summary.includes('</details>'));
    assert.ok(!summary.includes('](javascript'));
    // The evidence JSON holds three backticks, so its fence is longer.
    assert.match(body, /<summary>Evidence \(JSON\)<\/summary>\n\n````json\n/);
    assert.equal(escapeInline('a|b'), 'a\\|b');
    assert.equal(codeSpan('a`b'), '``a`b``');
    assert.equal(codeBlock('x ```` y'), '`````\nx ```` y\n`````');
  });

  it('stays under GitHub’s 65,536-character limit: the predicate’s copy goes first, then the evidence section is cut, never the provenance', () => {
    const files = Array.from({ length: 3000 }, (_, index) => ({
      path: `src/generated/file-${index}.ts`,
      status: 'added' as const,
      additions: 10,
      deletions: 0,
      binary: false,
    }));
    const evidence = sampleEvidence({ diff: { hash: DIFF_HASH, files, totals: { files: files.length, additions: 30_000, deletions: 0 } } });
    const input = sampleInput(evidence);
    const { body, truncated, statement } = buildPullRequestBody(input);
    assert.ok(body.length <= GITHUB_BODY_LIMIT, `${body.length} characters`);
    assert.equal(truncated, true);
    assert.match(body, /\*\*Truncated to fit GitHub's 65,536-character limit:\*\* the first [\d,]+ of [\d,]+ characters are shown/);
    assert.match(body, /\| …and 2975 more \(see the evidence\) \| \| \| \|/);
    const parsed = statementFromBody(body);
    assert.deepEqual(parsed, statement);
    assert.equal(parsed.predicate.evidence, undefined);
    assert.match(parsed.predicate.evidenceOmitted ?? '', /body limit/);
    assert.equal(parsed.predicate.evidenceDigest.sha256, hashEvidence(evidence));
    assert.deepEqual(parsed.predicate.approval, input.approval);
    assert.deepEqual(parsed.predicate.policy, input.policy);
    assert.equal(parsed.predicate.audit.headHash, input.auditHeadHash);
    assert.equal(parsed.subject[0]?.digest.gitCommit, HEAD);
  });

  it('when only the second copy is too much, keeps the whole evidence section', () => {
    const files = Array.from({ length: 150 }, (_, index) => ({
      path: `src/f${index}.ts`,
      status: 'added' as const,
      additions: 1,
      deletions: 0,
      binary: false,
    }));
    const evidence = sampleEvidence({ diff: { hash: DIFF_HASH, files, totals: { files: 150, additions: 150, deletions: 0 } } });
    const full = buildPullRequestBody(sampleInput(evidence, { maxLength: 10_000_000 })).body.length;
    const { body, truncated, statement } = buildPullRequestBody(sampleInput(evidence, { maxLength: full - 1000 }));
    assert.equal(truncated, true);
    assert.equal(statement.predicate.evidence, undefined);
    assert.doesNotMatch(body, /Truncated to fit/);
    assert.ok(body.length <= full - 1000);
  });

  it('refuses contradicting inputs with messages that say what to do', () => {
    assert.throws(
      () => buildPullRequestBody(sampleInput(undefined, { approval: { by: 'a', at: 'now', diffHash: 'other', evidenceHash: 'x' } })),
      /approval no longer matches the diff.*approve the change again/,
    );
    assert.throws(
      () => buildPullRequestBody(sampleInput(sampleEvidence({ headSha: 'f'.repeat(40) }))),
      /evidence is for commit ffffffffffff, not the head c0ffee111111/,
    );
    assert.throws(() => buildPullRequestBody(sampleInput(undefined, { headSha: 'main' })), /full git SHA/);
    assert.throws(() => buildPullRequestBody(sampleInput(undefined, { auditHeadHash: '' })), /audit head hash/);
    assert.throws(() => buildPullRequestBody(sampleInput(undefined, { maxLength: 500 })), /cannot fit in 500 characters/);
  });
});

describe('risk level, labels and title', () => {
  const flag = (kind: Flag['kind']): Flag => ({ kind, detail: '' });

  it('derives risk from the strongest flag', () => {
    assert.equal(riskLevel([]), 'low');
    assert.equal(riskLevel([flag('newDependency'), flag('binaryFile')]), 'medium');
    assert.equal(riskLevel([flag('newDependency'), flag('secretLike')]), 'high');
    assert.equal(riskLevel([flag('policyFileEdited')]), 'high');
  });

  it('gives every flag kind a level', () => {
    for (const kind of FLAG_KINDS) assert.ok(['low', 'medium', 'high'].includes(FLAG_RISK[kind]), kind);
  });

  it('labels: agent-generated, the lane, the risk, then policy extras without duplicates', () => {
    assert.deepEqual(pullRequestLabels([]), ['agent-generated', 'lane:pull-request', 'risk:low']);
    assert.deepEqual(pullRequestLabels([flag('sensitivePath')], ['team:web', 'agent-generated', ' ']), [
      'agent-generated',
      'lane:pull-request',
      'risk:medium',
      'team:web',
    ]);
  });

  it('title: the policy prefix once, one line, within 256 characters', () => {
    assert.equal(pullRequestTitle('Add greeting', '[agent]'), '[agent] Add greeting');
    assert.equal(pullRequestTitle('[agent] Add greeting', '[agent]'), '[agent] Add greeting');
    assert.equal(pullRequestTitle('Line one\nline two'), 'Line one line two');
    assert.equal(pullRequestTitle('   '), 'Agent change');
    const long = pullRequestTitle('x'.repeat(400), 'AI:');
    assert.equal(long.length, 256);
    assert.ok(long.startsWith('AI: x') && long.endsWith('…'));
  });
});
