import * as assert from 'node:assert/strict';
import type { Evidence } from '../../src/core/evidence';
import {
  type ApprovalFacts,
  approvalRefusal,
  buildEvidenceView,
  filesFromAnalysis,
  reviewGlance,
  sameIdentity,
} from '../../src/core/review/reviewModel';
import {
  approvalWithdrawn,
  EVIDENCE_SECTION_ORDER,
  parseHostMessage,
  parseWebviewMessage,
  ReviewPanelStateSchema,
} from '../../src/core/review/reviewProtocol';

const HASH = 'a'.repeat(64);

function evidence(overrides: Partial<Evidence> = {}): Evidence {
  return {
    schemaVersion: 1,
    changeId: 'abcd1234',
    agent: { id: 'scripted-agent' },
    prompt: { ref: 'p-1', redacted: 'do it', redaction: { total: 2, byKind: { token: 2 } } },
    base: { ref: 'main', sha: 'b'.repeat(40) },
    headSha: 'c'.repeat(40),
    diff: { hash: HASH, files: [], totals: { files: 2, additions: 5, deletions: 1 } },
    flags: [],
    tasks: [],
    decisions: [],
    ...overrides,
  };
}

function facts(overrides: Partial<ApprovalFacts> = {}): ApprovalFacts {
  return {
    change: { id: 'abcd1234', lane: 'review', createdBy: 'author@example.invalid' },
    gate: { ready: true, reasons: [] },
    evidence: { state: 'ok' },
    diff: { state: 'ok' },
    approver: 'reviewer@example.invalid',
    forbidSelfApproval: true,
    worktreeExists: true,
    reviewedDiffHash: HASH,
    evidenceDiffHash: HASH,
    worktreeDiffHash: HASH,
    ...overrides,
  };
}

describe('review model', () => {
  it('shows a secretInHistory flag like every flag: its label, path and detail', () => {
    const flag = { kind: 'secretInHistory' as const, path: 'config.txt', detail: 'Commit 1a2b3c4d5e6f adds 1 secret-like token' };
    const view = buildEvidenceView({ kind: 'ok', evidence: evidence({ flags: [flag] }), hash: HASH }, [], HASH);
    assert.deepEqual(view.fields.flags, {
      state: 'present',
      value: [{ kind: 'secretInHistory', label: 'Secret in the commit history', path: 'config.txt', detail: flag.detail }],
    });
  });

  it('marks each missing field, and whether policy requires it', () => {
    const view = buildEvidenceView({ kind: 'ok', evidence: evidence(), hash: HASH }, ['tests', 'assumptions'], HASH);
    assert.equal(view.state, 'ok');
    assert.deepEqual(view.fields.tests, { state: 'missing', required: true });
    assert.deepEqual(view.fields.assumptions, { state: 'missing', required: true });
    assert.deepEqual(view.fields.confidenceLimits, { state: 'missing', required: false });
    assert.deepEqual(view.fields.flags, { state: 'present', value: [] }, 'no flags on an analysed diff is evidence of no flags');
    assert.deepEqual(view.fields.filesTouched, {
      state: 'present',
      value: { files: 2, additions: 5, deletions: 1, diffHash: HASH, matchesReviewedDiff: true },
    });
    assert.deepEqual(view.fields.prompt, { state: 'present', value: { ref: 'p-1', redacted: 'do it', redactions: 2 } });
    assert.deepEqual(Object.keys(view.fields).sort(), [...EVIDENCE_SECTION_ORDER].sort(), 'every section has a field');
  });

  it('shows the agent boundary: verified, unconfined, or none for a chat agent', () => {
    const isolation = {
      backend: 'process' as const,
      verified: true,
      sandbox: 'bubblewrap 0.8.0',
      network: {
        allow: ['api.example.com'],
        refused: [{ host: 'evil.example', port: 443, at: '2026-12-04T10:00:00Z' }],
        refusedTotal: 1,
        allowedTotal: 2,
      },
      limits: { timeoutSeconds: 600, cpus: 2, memoryMb: 4096, pids: 256 },
      notEnforced: ['cpus', 'memoryMb', 'pids'],
      probes: [{ name: 'writeOutside' as const, outcome: 'refused' as const, detail: 'no write outside the worktree reached the host' }],
      canaryMs: 120,
    };
    const verified = buildEvidenceView({ kind: 'ok', evidence: evidence({ isolation }), hash: HASH }, [], HASH).fields.isolation;
    assert.deepEqual(verified, {
      state: 'present',
      value: {
        state: 'verified',
        summary: 'isolation verified: process (bubblewrap 0.8.0) · egress only to api.example.com · 1 connection refused: evil.example:443',
        backend: 'process',
        sandbox: 'bubblewrap 0.8.0',
        allow: ['api.example.com'],
        refused: [{ host: 'evil.example', port: 443, at: '2026-12-04T10:00:00Z' }],
        refusedTotal: 1,
        allowedTotal: 2,
        limits: ['2 CPUs', '4,096 MB memory', '256 processes', '10 min'],
        notEnforced: ['cpus', 'memory', 'processes'],
        probes: [{ name: 'writeOutside', outcome: 'refused', detail: 'no write outside the worktree reached the host' }],
        canaryMs: 120,
      },
    });

    const container = buildEvidenceView(
      {
        kind: 'ok',
        evidence: evidence({
          isolation: {
            ...isolation,
            backend: 'container',
            verified: false,
            sandbox: 'podman 4.3.1',
            image: 'localhost/agent:1',
            imageDigest: `sha256:${'e'.repeat(64)}`,
            network: { allow: [], refused: [], refusedTotal: 0, allowedTotal: 0 },
            notEnforced: [],
            stoppedFor: 'the memory limit (4096 MB)',
          },
        }),
        hash: HASH,
      },
      [],
      HASH,
    ).fields.isolation;
    assert.equal(container.state, 'present');
    if (container.state !== 'present') return;
    assert.equal(container.value.state, 'unverified', 'a boundary whose canary did not pass is not shown as verified');
    assert.match(container.value.summary, /^isolation NOT verified: container \(podman 4\.3\.1\) image localhost\/agent:1 · network off$/);
    assert.equal(container.value.imageDigest, `sha256:${'e'.repeat(64)}`);
    assert.equal(container.value.stoppedFor, 'the memory limit (4096 MB)');

    const host = buildEvidenceView(
      { kind: 'ok', evidence: evidence({ isolation: { ...isolation, backend: 'host', verified: true, probes: [] } }), hash: HASH },
      [],
      HASH,
    ).fields.isolation;
    assert.equal(host.state === 'present' && host.value.state, 'unconfined', 'the host is unconfined even if marked verified');
    assert.match(host.state === 'present' ? host.value.summary : '', /^unconfined: the agent ran as you, on the host/);

    const chat = buildEvidenceView({ kind: 'ok', evidence: evidence({ agent: { id: 'vscode-chat' } }), hash: HASH }, [], HASH).fields
      .isolation;
    assert.equal(chat.state === 'present' && chat.value.state, 'none');
    assert.match(chat.state === 'present' ? chat.value.summary : '', /^no CLI agent boundary \(chat agent\)/);

    assert.deepEqual(
      buildEvidenceView({ kind: 'ok', evidence: evidence(), hash: HASH }, [], HASH).fields.isolation,
      { state: 'missing', required: false },
      "a CLI agent's evidence from before agent boundaries: not recorded",
    );
    assert.equal(EVIDENCE_SECTION_ORDER.indexOf('isolation'), 1, 'the boundary is read right after the summary');
  });

  it('tells whether the evidence describes the diff on screen, and counts tasks checked on the base', () => {
    const task = {
      id: 't',
      command: 'npm test',
      required: true,
      isolation: 'container' as const,
      networkMode: 'none',
      outcome: 'passed' as const,
      exitCode: 0,
      durationMs: 10,
      logDigest: 'x',
      logTruncated: false,
      redaction: { total: 0, byKind: {} },
      startedAt: '2026-11-21T00:00:00Z',
    };
    const view = buildEvidenceView(
      {
        kind: 'ok',
        evidence: evidence({
          tasks: [
            { ...task, failsOnBase: true },
            { ...task, id: 'u', failsOnBase: false },
            { ...task, id: 'v', failsOnBase: null },
          ],
        }),
        hash: HASH,
      },
      [],
      'f'.repeat(64),
    );
    assert.equal(view.fields.filesTouched.state === 'present' && view.fields.filesTouched.value.matchesReviewedDiff, false);
    assert.deepEqual(view.fields.failsWithoutChange, {
      state: 'present',
      value: { failOnBase: 1, passOnBase: 1, notRun: 1, testFiles: [], removedTestFiles: [], files: [] },
    });
  });

  it("shows the agent's transcript and claims next to the sandbox's run", () => {
    assert.deepEqual(buildEvidenceView({ kind: 'ok', evidence: evidence(), hash: HASH }, [], HASH).fields.claims, {
      state: 'missing',
      required: false,
    });
    const view = buildEvidenceView(
      {
        kind: 'ok',
        evidence: evidence({
          transcript: {
            format: 'claude-stream-json',
            model: 'claude-test',
            usage: { inputTokens: 1200, outputTokens: 80 },
            toolCalls: [
              { name: 'Read', input: 'src/a.js' },
              { name: 'Bash', input: 'npm test' },
              { name: 'Read', input: 'src/b.js' },
            ],
            commands: [{ command: 'npm test', exitCode: 0 }],
            finalMessage: 'Done. All tests pass.',
            unreadLines: 0,
          },
          tasks: [
            {
              id: 'unit',
              command: 'npm test',
              required: true,
              isolation: 'container',
              networkMode: 'none',
              outcome: 'failed',
              exitCode: 1,
              durationMs: 10,
              logDigest: 'x',
              logTruncated: false,
              redaction: { total: 0, byKind: {} },
              failsOnBase: null,
              startedAt: '2026-11-21T00:00:00Z',
            },
          ],
        }),
        hash: HASH,
      },
      [],
      HASH,
    );
    assert.deepEqual(view.fields.claims, {
      state: 'present',
      value: {
        model: 'claude-test',
        usage: { inputTokens: 1200, outputTokens: 80 },
        toolCalls: [
          { name: 'Read', count: 2 },
          { name: 'Bash', count: 1 },
        ],
        commands: [{ command: 'npm test', exitCode: 0 }],
        checks: [
          { source: 'finalMessage', text: 'All tests pass.', proof: 'contradicted', tasks: ['unit (npm test): failed'] },
          { source: 'command', text: 'npm test (exit 0)', proof: 'contradicted', tasks: ['unit (npm test): failed'] },
        ],
      },
    });
  });

  it('lists the files of the stored diff analysis the way the review shows them', () => {
    const file = { additions: 1, deletions: 0, binary: false };
    assert.deepEqual(
      filesFromAnalysis([
        { path: 'src/a.ts', status: 'modified', ...file },
        { path: 'src/new.ts', oldPath: 'src/old.ts', status: 'renamed', ...file },
        { path: 'logo.png', status: 'added', additions: 0, deletions: 0, binary: true },
        { path: 'vendor/lib', status: 'added', additions: 0, deletions: 0, binary: false, gitlink: true },
        { path: 'data.csv', status: 'added', additions: 6_000, deletions: 0, binary: false, sizeBytes: 2 * 1024 * 1024 },
        { path: 'link', status: 'added', ...file, symlink: { target: 'src/a.ts', escapesWorktree: false } },
      ]),
      [
        { path: 'src/a.ts', status: 'modified', additions: 1, deletions: 0, display: 'text' },
        { path: 'src/new.ts', oldPath: 'src/old.ts', status: 'renamed', additions: 1, deletions: 0, display: 'text' },
        {
          path: 'logo.png',
          status: 'added',
          additions: null,
          deletions: null,
          display: 'binary',
          note: 'Binary file: not shown here. Open it to compare.',
        },
        { path: 'vendor/lib', status: 'added', additions: 0, deletions: 0, display: 'submodule', note: 'Submodule (gitlink)' },
        {
          path: 'data.csv',
          status: 'added',
          additions: 6_000,
          deletions: 0,
          display: 'tooLarge',
          note: "Too large to show here (6,000 changed lines, 2.0 MB). Open it in VS Code's diff editor.",
        },
        {
          path: 'link',
          status: 'added',
          additions: 1,
          deletions: 0,
          display: 'text',
          note: 'Symbolic link: the diff shows its target.',
        },
      ],
    );
  });

  it('says what to do when the evidence is missing or invalid', () => {
    const missing = buildEvidenceView({ kind: 'missing' }, ['agent'], null);
    assert.equal(missing.state, 'missing');
    assert.match(missing.message ?? '', /run its sandbox tasks/);
    assert.deepEqual(missing.fields.agent, { state: 'missing', required: true });
    const invalid = buildEvidenceView({ kind: 'invalid', message: 'The evidence file x does not match.' }, [], null);
    assert.equal(invalid.hash, null);
    assert.match(invalid.message ?? '', /^The evidence file x does not match\. Nothing can be approved/);
  });

  it('allows an approval only when everything holds, and says why not otherwise', () => {
    assert.equal(approvalRefusal(facts()), undefined);
    const cases: [Partial<ApprovalFacts>, RegExp][] = [
      [{ change: { id: 'abcd1234', lane: 'draft' } }, /not in Review \(it is in Draft\)/],
      [
        { change: { id: 'abcd1234', lane: 'review', approval: { by: 'x', at: 't', diffHash: HASH, evidenceHash: HASH } } },
        /already approved by x/,
      ],
      [{ worktreeExists: false }, /worktree of change abcd1234 no longer exists/],
      [{ diff: { state: 'error', message: 'bad object' } }, /diff could not be read \(bad object\)/],
      [{ evidence: { state: 'missing' } }, /no evidence to approve/],
      [{ evidence: { state: 'invalid', message: 'broken' } }, /fails validation, so it cannot be approved: broken/],
      [{ evidenceDiffHash: 'f'.repeat(64) }, /evidence was recorded for another diff/],
      [{ worktreeDiffHash: 'f'.repeat(64) }, /changes that are not in the reviewed commits/],
      [{ approver: undefined }, /sign in to GitHub .* or set git's user\.email/],
      [{ approver: 'AUTHOR@example.invalid ' }, /forbids self-approval/],
      [
        { gate: { ready: false, reasons: ['a required task failed', 'tests missing'] } },
        /gate blocks it: a required task failed; tests missing\./,
      ],
    ];
    for (const [override, expected] of cases) assert.match(approvalRefusal(facts(override)) ?? '', expected);
    assert.equal(
      approvalRefusal(facts({ approver: 'author@example.invalid', forbidSelfApproval: false })),
      undefined,
      'self-approval when policy allows it',
    );
    assert.equal(
      approvalRefusal(
        facts({
          change: {
            id: 'abcd1234',
            lane: 'review',
            approval: { by: 'x', at: 't', diffHash: HASH, evidenceHash: HASH, invalidated: { at: 't', reason: 'r' } },
          },
        }),
      ),
      undefined,
      'an invalidated approval can be replaced',
    );
    assert.ok(sameIdentity('Octo@Example.com', ' octo@example.com'));
  });

  it('sums the review up for the tree', () => {
    assert.equal(reviewGlance({ lane: 'review' }).state, 'unknown');
    assert.deepEqual(reviewGlance({ lane: 'review' }, { ready: false, reasons: ['tests missing'] }), {
      text: 'blocked: tests missing',
      state: 'blocked',
      reason: 'tests missing',
    });
    assert.equal(reviewGlance({ lane: 'review' }, { ready: true, reasons: [] }).text, 'ready to approve');
    assert.equal(
      reviewGlance({ lane: 'review', approval: { by: 'ann', at: 't', diffHash: HASH, evidenceHash: HASH } }).text,
      'approved by ann',
    );
    assert.equal(
      reviewGlance({
        lane: 'review',
        approval: { by: 'ann', at: 't', diffHash: HASH, evidenceHash: HASH, invalidated: { at: 't', reason: 'r' } },
      }).state,
      'invalidated',
    );
  });
});

describe('review protocol', () => {
  it('accepts the messages the webview sends', () => {
    for (const message of [
      { type: 'ready', changeId: 'abcd1234' },
      { type: 'rendered', changeId: 'abcd1234', files: 2000, ms: 12.5 },
      { type: 'loadFiles', id: 1, changeId: 'abcd1234', paths: ['a b/c.ts'] },
      { type: 'approve', id: 2, changeId: 'abcd1234', diffHash: HASH, evidenceHash: HASH },
      { type: 'requestChanges', id: 3, changeId: 'abcd1234', comment: 'Please add a test.' },
      { type: 'reject', id: 4, changeId: 'abcd1234', confirmed: true },
      { type: 'openFileDiff', id: 5, changeId: 'abcd1234', path: 'README.md' },
      { type: 'openChanges', id: 6, changeId: 'abcd1234' },
      { type: 'refresh', id: 7, changeId: 'abcd1234' },
      { type: 'openPullRequest', id: 8, changeId: 'abcd1234' },
    ]) {
      const parsed = parseWebviewMessage(message);
      assert.equal(parsed.ok, true, `${message.type}: ${parsed.ok ? '' : parsed.error}`);
    }
  });

  it('refuses malformed messages with a readable reason', () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /\(message\): Invalid input/],
      [
        { type: 'approve', id: 1, changeId: 'abcd1234', diffHash: HASH },
        /evidenceHash: Invalid input: expected string, received undefined/,
      ],
      [{ type: 'reject', id: 1, changeId: 'abcd1234', confirmed: false }, /confirmed: Invalid input: expected true/],
      [{ type: 'requestChanges', id: 1, changeId: 'abcd1234', comment: '  ' }, /comment: a comment is required/],
      [{ type: 'ready', changeId: 'ABCD1234' }, /changeId: Invalid string/],
      [{ type: 'ready', changeId: 'abcd1234', extra: 1 }, /Unrecognized key: "extra"/],
      // The webview never names the address to open: the host opens the one on the change's record.
      [{ type: 'openPullRequest', id: 1, changeId: 'abcd1234', url: 'https://evil.example' }, /Unrecognized key: "url"/],
      [{ type: 'launchMissiles', changeId: 'abcd1234' }, /type: Invalid discriminator value\. Expected 'ready' \| 'rendered'/],
    ];
    for (const [message, expected] of cases) {
      const parsed = parseWebviewMessage(message);
      assert.equal(parsed.ok, false);
      assert.match(parsed.ok ? '' : parsed.error, expected);
    }
  });

  it('parses host messages and the saved panel state', () => {
    assert.equal(parseHostMessage({ type: 'response', id: 1, ok: false, error: 'no' }).ok, true);
    assert.equal(parseHostMessage({ type: 'response', id: 1, ok: true, files: [{ path: 'a', kind: 'binary', message: 'm' }] }).ok, true);
    assert.equal(parseHostMessage({ type: 'model', model: {} }).ok, false);
    const state = ReviewPanelStateSchema.parse({ repoRoot: '/r', changeId: 'abcd1234' });
    assert.deepEqual(state, {
      repoRoot: '/r',
      changeId: 'abcd1234',
      toggledFiles: [],
      openSections: [],
      tab: 'files',
      scrollY: 0,
      commentDraft: '',
    });
    assert.equal(ReviewPanelStateSchema.parse({ repoRoot: '/r', changeId: 'abcd1234', tab: 'evidence' }).tab, 'evidence');
    assert.equal(ReviewPanelStateSchema.safeParse({ repoRoot: '/r', changeId: 'abcd1234', tab: 'chat' }).success, false);
    assert.equal(ReviewPanelStateSchema.safeParse({ repoRoot: '', changeId: 'abcd1234' }).success, false);
  });

  it('takes the "Approved by …" line away once that approval is invalidated or replaced, so the panel shows one state', () => {
    const approved = { diffHash: HASH, evidenceHash: 'e'.repeat(64) };
    const given = { by: 'reviewer@example.invalid', at: '2026-11-21T10:00:00.000Z', ...approved };
    assert.equal(approvalWithdrawn({}, approved), false, 'the answer may come before the model that carries the approval');
    assert.equal(approvalWithdrawn({ approval: given }, approved), false);
    assert.equal(
      approvalWithdrawn(
        { approval: { ...given, invalidated: { at: '2026-11-21T10:05:00.000Z', reason: 'the worktree changed' } } },
        approved,
      ),
      true,
    );
    assert.equal(
      approvalWithdrawn({ approval: { ...given, diffHash: 'f'.repeat(64) } }, approved),
      true,
      'approved again, for another diff',
    );
  });
});
