import assert from 'node:assert/strict';
import { MetricsReducer } from '../../src/core/metrics/metrics';
import { metricsHtml } from '../../src/vscode/metrics/metricsHtml';

// The metrics page as the panel shows it: the figures, every name escaped (agent ids, task classes and rule names
// come from settings and policy), nothing loaded from outside (its CSP allows only its own nonce).

const at = (minute: number) => `2026-11-0${1 + Math.floor(minute / 1440)}T10:${String(minute % 60).padStart(2, '0')}:00.000Z`;

describe('Promotion metrics page', () => {
  it('draws the funnel, the rules that stopped changes and rework, with hostile names escaped', () => {
    const reducer = new MetricsReducer();
    const hostile = '<img src=x onerror=alert(1)>';
    reducer.add('repo', {
      action: 'change.create',
      at: at(0),

      changeId: 'c0ffee01',
      details: { agentId: hostile, taskClass: 'docs' },
    });
    reducer.add('repo', {
      action: 'lane.transition',
      at: at(5),

      changeId: 'c0ffee01',
      details: { from: 'draft', to: 'sandbox', event: 'promote' },
    });
    reducer.add('repo', {
      action: 'policy.decision',
      at: at(6),

      changeId: 'c0ffee01',
      details: {
        action: 'gate.sandboxToReview',
        effect: 'block',
        rules: [{ rule: `pathRules[0]${hostile}`, effect: 'block', policy: 'acme@1' }],
      },
    });
    reducer.add('repo', {
      action: 'lane.transition',
      at: at(9),

      changeId: 'c0ffee01',
      details: { from: 'sandbox', to: 'review', event: 'promote' },
    });
    reducer.add('repo', { action: 'review.requestChanges', at: at(12), changeId: 'c0ffee01', details: {} });
    const html = metricsHtml({ report: reducer.report('agent'), repository: 'app<x>', nonce: 'n0nce' });
    assert.ok(!html.includes(hostile), 'no name reaches the page unescaped');
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.match(html, /<h1>Promotion metrics <span class="muted">app&lt;x&gt; · 5 audit events<\/span><\/h1>/);
    assert.match(html, /Drafted<\/text><rect[^>]*><\/rect><text class="value"[^>]*>1 · 100% first pass/);
    assert.match(html, /Sandbox passed<\/text><rect[^>]*><\/rect><text class="value"[^>]*>1 · 0% first pass/);
    assert.match(html, /<td>Review rounds that asked for changes<\/td><td class="num">1<\/td>/);
    assert.match(html, /content="default-src 'none'; style-src 'nonce-n0nce'; script-src 'nonce-n0nce';"/);
    assert.equal(html.match(/<script/g)?.length, 1);
    assert.ok(!/src="http|href="http/.test(html), 'nothing is loaded from outside');
  });

  it('says what to do when nothing was drafted, and shows a broken log’s warning', () => {
    const html = metricsHtml({
      report: new MetricsReducer().report('taskClass'),
      repository: 'app',
      warning: 'Warning: audit.jsonl is broken at seq 7',
      nonce: 'n',
    });
    assert.match(html, /No change has been drafted in this repository yet\. Run "Agent Lanes: New Draft…"/);
    assert.match(html, /<p class="warning" role="alert">Warning: audit.jsonl is broken at seq 7<\/p>/);
    assert.match(html, /<option value="taskClass" selected>Task class<\/option>/);
  });
});
