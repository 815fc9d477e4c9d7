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
      describeEvent(event(4, 'lane.transition', { event: 'discard', from: 'draft', to: 'closed' })),
      'draft → closed (discard).',
    );
    assert.equal(
      describeEvent(event(5, 'cleanup', { worktree: '/w', removedWorktree: true, nested: { a: 1 }, list: [] })),
      'worktree: /w; removedWorktree: true; nested: {"a":1}; list: —',
    );
  });

  it('renders a table that a pipe or newline in the details cannot break', () => {
    const text = renderHistory(undefined, 'c0ffee01', 'shop', [event(1, 'agent.start', { agentId: 'a|b', note: 'two\nlines' })]);
    assert.match(text, /^# History: change c0ffee01\n/);
    assert.match(text, /1 event from the audit log of shop, oldest first/);
    const row = text.split('\n').find((line) => line.startsWith('| 1 |'))!;
    assert.equal(row, '| 1 | 2026-11-21 10:01:12Z | user dev@example.com | agent.start | Started agent a\\|b. note: two lines |');
    assert.equal(row.split(/(?<!\\)\|/).length, 7, 'five cells');
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
