import assert from 'node:assert/strict';
import type { AuditEvent } from '../../src/core/audit/audit';
import { mdCell } from '../../src/core/markdown';
import { describeEvent, renderHistory } from '../../src/vscode/audit/historyView';

const HASH = 'a'.repeat(64);

function event(seq: number, action: string, details: Record<string, unknown>, extra: Partial<AuditEvent> = {}): AuditEvent {
  return {
    seq,
    at: `2026-11-21T10:0${seq}:12.311Z`,
    actor: { type: 'user', id: 'dev@example.com' },
    action,
    changeId: 'c0ffee01',
    details,
    prevHash: HASH,
    hash: HASH,
    ...extra,
  };
}

describe('History view of a change', () => {
  it('describes the common events in words, then the other details', () => {
    assert.equal(
      describeEvent(
        event(1, 'change.create', {
          title: 'Add a greeting',
          baseRef: 'main',
          baseSha: '1a2b3c4d5e6f7a8b',
          agentId: 'codex',
          branch: 'lanes/x',
        }),
      ),
      'Created "Add a greeting" from main (1a2b3c4d5e) for agent codex. branch: lanes/x',
    );
    assert.equal(
      describeEvent(event(2, 'agent.stop', { outcome: 'succeeded', exitCode: 0, durationMs: 2140, checkoutUntouched: true })),
      'The agent stopped: succeeded, exit code 0, 2.1 s. checkoutUntouched: true',
    );
    assert.equal(
      describeEvent(
        event(
          3,
          'policy.decision',
          { action: 'gate.draftToSandbox', effect: 'block', explanation: 'Blocked: infra.' },
          { policy: 'acme@1', decisionId: 'd-1' },
        ),
      ),
      'Draft → Sandbox: block. Blocked: infra. policy: acme@1; decision: d-1',
    );
    assert.equal(
      describeEvent(
        event(31, 'policy.decision', {
          action: 'gate.draftToSandbox',
          effect: 'block',
          explanation: 'Blocked: infra.',
          rules: [{ rule: 'pathRules[0] "infra/**"', effect: 'block', policy: 'acme@1' }],
          factsSha256: 'ab'.repeat(32),
          factsSummary: { files: 20000, changedLines: 40000, flags: 0, tasks: 0 },
        }),
      ),
      'Draft → Sandbox: block. Blocked: infra. Rules: pathRules[0] "infra/**" (block, acme@1). Facts: 20000 files, 40000 changed lines; sha256 abababababab, in a file beside the log.',
    );
    assert.equal(
      describeEvent(event(4, 'lane.transition', { event: 'discard', from: 'draft', to: 'closed' })),
      'draft → closed (discard).',
    );
    assert.equal(
      describeEvent(event(5, 'cleanup', { worktree: '/w', removedWorktree: true, nested: { a: 1 }, list: [] })),
      'worktree: /w; removedWorktree: true; nested: {"a":1}; list: —',
    );
  });

  it('renders one entry per event under its day, which a pipe, newline or Markdown in the details cannot break', () => {
    const events = [
      event(1, 'agent.start', { agentId: 'a|b', note: 'two\nlines' }),
      { ...event(2, 'agent.stop', { outcome: '**bold**', exitCode: 0 }), at: '2026-11-22T00:00:01.000Z' },
    ];
    const text = renderHistory(undefined, 'c0ffee01', 'shop', events);
    assert.match(text, /^# History: change c0ffee01\n/);
    assert.match(text, /2 events from the audit log of shop, oldest first/);
    const lines = text.split('\n');
    assert.deepEqual(
      lines.filter((line) => line.startsWith('## ')),
      ['## 2026-11-21 (UTC)', '## 2026-11-22 (UTC)'],
      'a heading per day, so each entry carries only its time',
    );
    const first = lines.indexOf('- **10:01:12** · `agent.start` · user dev@example.com · #1  ');
    assert.ok(first > 0, text);
    assert.equal(lines[first + 1], '  Started agent a\\|b. note: two lines', 'the details on one line under the entry');
    assert.ok(lines.includes('  The agent stopped: \\*\\*bold\\*\\*, exit code 0, 0 s.'), text);
    assert.doesNotMatch(text, /^\|/m, 'no table to run off the edge');
  });

  it('says when a change has no events', () => {
    assert.match(renderHistory(undefined, 'c0ffee01', 'shop', []), /No event of this change is in the audit log\./);
  });

  it('mdCell escapes Markdown and caps the length', () => {
    assert.equal(mdCell('a*b_c [x](y) <b>'), 'a\\*b\\_c \\[x\\](y) \\<b\\>');
    assert.equal(mdCell('x'.repeat(10), 5), 'xxxx…');
    assert.equal(mdCell(''), ' ');
  });
});
