import assert from 'node:assert/strict';
import { MetricsReducer } from '../../src/core/metrics/metrics';
import { metricsHtml } from '../../src/vscode/metrics/metricsHtml';
import { choicesOf, filterOf, linkedFigures, readMessage, type MetricsOffer } from '../../src/vscode/metrics/metricsState';

// The metrics page as the panel shows it: the figures, every name escaped (agent ids, task classes and rule names
// come from settings and policy), nothing loaded from outside (its CSP allows only its own nonce).

const at = (minute: number) => `2026-11-0${1 + Math.floor(minute / 1440)}T10:${String(minute % 60).padStart(2, '0')}:00.000Z`;

describe('Promotion metrics page', () => {
  it('draws the funnel, the rules that stopped changes and rework, with hostile names escaped', () => {
    const reducer = new MetricsReducer({ keepChanges: true });
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
    const report = reducer.report('agent');
    const html = metricsHtml({ report, repository: 'app<x>', state: { by: 'agent' }, choices: choicesOf(reducer), nonce: 'n0nce' });
    assert.ok(!html.includes(hostile), 'no name reaches the page unescaped');
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.match(html, /<option value="&lt;img src=x onerror=alert\(1\)&gt;">&lt;img src=x onerror=alert\(1\)&gt;<\/option>/);
    assert.match(html, /<h1>Promotion metrics <span class="muted">app&lt;x&gt; · 5 audit events<\/span><\/h1>/);
    // Each number with changes behind it is a button naming its figure; a rate's button lists its numerator.
    assert.match(
      html,
      /Drafted<\/th><td class="track"><svg[^>]*><rect[^>]*><\/rect><\/svg><\/td><td class="value"><button class="figure" data-figure="0:stage:drafted"[^>]*>1<\/button> <span class="muted">·<\/span> <button class="figure" data-figure="0:firstPass:drafted"[^>]*>100% first pass<\/button>/,
    );
    assert.match(
      html,
      /Sandbox passed<\/th>.*?<td class="value"><button class="figure" data-figure="0:stage:sandboxPassed"[^>]*>1<\/button> <span class="muted">·<\/span> 0% first pass<\/td>/,
    );
    assert.match(
      html,
      /<td>Review rounds that asked for changes<\/td><td class="num"><button class="figure" data-figure="0:rework:requestedChanges"[^>]*>1<\/button><\/td>/,
    );
    assert.match(html, /<td>Agent re-runs<\/td><td class="num">0<\/td>/, 'a zero has nothing behind it to list');
    assert.match(
      html,
      /pathRules\[0\]&lt;img src=x onerror=alert\(1\)&gt;<\/th>.*?<button class="figure" data-figure="0:reason:0"[^>]*>1<\/button>/,
    );
    // Every button names a figure the host will list, and no other.
    const figures = linkedFigures(report);
    const drawn = [...html.matchAll(/data-figure="([^"]+)"/g)].map((match) => match[1]!);
    assert.ok(drawn.length >= 6);
    for (const key of drawn) assert.deepEqual(figures.get(key)?.ids, ['c0ffee01'], key);
    assert.match(html, /content="default-src 'none'; style-src 'nonce-n0nce'; script-src 'nonce-n0nce';"/);
    assert.equal(html.match(/<script/g)?.length, 1);
    assert.ok(!/src="http|href="http/.test(html), 'nothing is loaded from outside');
  });

  it('says what to do when nothing was drafted, and shows a broken log’s warning', () => {
    const html = metricsHtml({
      report: new MetricsReducer().report('taskClass'),
      repository: 'app',
      state: { by: 'taskClass' },
      choices: { agents: [], taskClasses: [], months: [] },
      warning: 'Warning: audit.jsonl is broken at seq 7',
      nonce: 'n',
    });
    assert.match(html, /No change has been drafted in this repository yet\. Run "Agent Lanes: New Draft…"/);
    assert.match(html, /<p class="warning" role="alert">Warning: audit.jsonl is broken at seq 7<\/p>/);
    assert.match(html, /<option value="taskClass" selected>Task class<\/option>/);
  });

  it('shows how many merged changes stayed merged, as git tells (intact, reverted, rewritten, pending)', () => {
    const reducer = new MetricsReducer({ keepChanges: true, keepMerges: true });
    const verdicts = ['intact', 'intact', 'intact', 'reverted', 'pending'] as const;
    verdicts.forEach((_, i) => {
      const changeId = `c0ffee1${i}`;
      reducer.add('repo', { action: 'change.create', at: at(i), changeId, details: { agentId: 'codex' } });
      reducer.add('repo', {
        action: 'pr.closed',
        at: at(i + 30),
        changeId,
        details: { state: 'merged', mergeCommitSha: `${i}`.repeat(40), baseRef: 'main' },
      });
    });
    const rows = reducer.mergedChanges().map((change) => change.row);
    const verdictOf = new Map(rows.map((row, i) => [row, verdicts[i]!]));
    const report = reducer.report('agent', {}, (row) => verdictOf.get(row) ?? 'notMeasurable');
    const html = metricsHtml({ report, repository: 'app', state: { by: 'agent' }, choices: choicesOf(reducer), nonce: 'n' });
    assert.match(html, /<h3>Stayed merged <span class="muted">\(30 days, from git\)<\/span><\/h3><p>75% intact of 4 measured<\/p>/);
    // Each count lists its changes (a zero stays plain text), and the host accepts exactly those figures.
    for (const [label, verdict, count] of [
      ['Intact', 'intact', 3],
      ['Reverted', 'reverted', 1],
      ['Pending', 'pending', 1],
    ] as const)
      assert.match(
        html,
        new RegExp(
          `<th scope="row">${label}</th>.*?<td class="value"><button class="figure" data-figure="0:intact:${verdict}"[^>]*>${count}</button></td>`,
        ),
      );
    assert.match(html, /<th scope="row">Rewritten<\/th>.*?<td class="value">0<\/td>/);
    const figures = linkedFigures(report);
    assert.deepEqual(figures.get('0:intact:intact')?.ids, ['c0ffee10', 'c0ffee11', 'c0ffee12']);
    assert.deepEqual(figures.get('0:intact:reverted')?.ids, ['c0ffee13']);
    assert.equal(figures.has('0:intact:rewritten'), false);
    const none = metricsHtml({
      report: reducer.report('agent'),
      repository: 'app',
      state: { by: 'agent' },
      choices: choicesOf(reducer),
      nonce: 'n',
    });
    assert.match(none, /Stayed merged.*?<p class="muted">Git could not tell which merged changes stood/s);
    const empty = metricsHtml({
      report: new MetricsReducer().report('agent'),
      repository: 'app',
      state: { by: 'agent' },
      choices: choicesOf(reducer),
      nonce: 'n',
    });
    assert.doesNotMatch(empty, /Stayed merged/, 'no group, no section');
  });

  it('shows the filters it applies, and says so when no change matches them', () => {
    const reducer = new MetricsReducer({ keepChanges: true });
    reducer.add('repo', { action: 'change.create', at: at(0), changeId: 'c0ffee01', details: { agentId: 'codex', taskClass: 'docs' } });
    const state = { by: 'period' as const, agent: 'codex', taskClass: 'code', period: 'last30' };
    const html = metricsHtml({
      report: reducer.report('period', filterOf(state, Date.parse(at(0)))),
      repository: 'app',
      state,
      choices: choicesOf(reducer),
      nonce: 'n',
    });
    assert.match(html, /<select id="agent"><option value="">All agents<\/option><option value="codex" selected>codex<\/option><\/select>/);
    assert.match(
      html,
      /<select id="period"><option value="">All time<\/option><option value="last7">Last 7 days<\/option><option value="last30" selected>Last 30 days<\/option><option value="last90">Last 90 days<\/option><option value="2026-11">2026-11<\/option><\/select>/,
    );
    assert.match(html, /<option value="period" selected>Month<\/option>/);
    assert.match(html, /No change matches these filters\. Choose "All" in a filter to widen it\./);
  });
});

describe('Promotion metrics page messages', () => {
  const reducer = new MetricsReducer({ keepChanges: true });
  reducer.add('repo', { action: 'change.create', at: at(0), changeId: 'c0ffee01', details: { agentId: 'codex', taskClass: 'docs' } });
  reducer.add('repo', { action: 'change.create', at: at(1), changeId: 'c0ffee02', details: { agentId: 'claude-code', taskClass: 'code' } });
  const report = reducer.report('taskClass');
  const offer: MetricsOffer = { choices: choicesOf(reducer), figures: linkedFigures(report), listed: new Set(['c0ffee01']) };

  it('takes a figure, filters and a change only when the page was offered them', () => {
    assert.deepEqual(readMessage({ type: 'figure', key: '0:stage:drafted' }, offer), { type: 'figure', key: '0:stage:drafted' });
    assert.deepEqual(offer.figures.get('0:stage:drafted'), { caption: 'code · Drafted', ids: ['c0ffee02'] });
    assert.deepEqual(readMessage({ type: 'open', changeId: 'c0ffee01', how: 'history' }, offer), {
      type: 'open',
      changeId: 'c0ffee01',
      how: 'history',
    });
    assert.deepEqual(readMessage({ type: 'filter', by: 'agent', agent: 'codex', taskClass: '', period: '2026-11' }, offer), {
      type: 'filter',
      state: { by: 'agent', agent: 'codex', period: '2026-11' },
    });
    assert.deepEqual(readMessage({ type: 'refresh' }, offer), { type: 'refresh' });
  });

  it('refuses a change id it did not list, a figure it did not draw and filter values the log does not have', () => {
    // c0ffee02 is counted, but no list showed it: the page cannot open it.
    assert.deepEqual(readMessage({ type: 'open', changeId: 'c0ffee02', how: 'open' }, offer), {
      refused: 'a change the page did not list',
    });
    assert.deepEqual(readMessage({ type: 'open', changeId: 'c0ffee01', how: 'exec' }, offer), { refused: 'no way to open exec' });
    assert.deepEqual(readMessage({ type: 'open', changeId: ['c0ffee01'], how: 'open' }, offer), {
      refused: 'a change the page did not list',
    });
    assert.deepEqual(readMessage({ type: 'figure', key: '__proto__' }, offer), { refused: 'a figure the page was not given' });
    assert.deepEqual(readMessage({ type: 'filter', by: 'repository' }, offer), { refused: 'no grouping repository' });
    assert.deepEqual(readMessage({ type: 'filter', by: 'agent', agent: 'ghost' }, offer), { refused: 'an agent the log does not have' });
    assert.deepEqual(readMessage({ type: 'filter', by: 'agent', period: 'last365' }, offer), {
      refused: 'a period the view does not offer',
    });
    assert.deepEqual(readMessage('refresh', offer), { refused: 'not an object' });
    assert.deepEqual(readMessage({ type: 'eval' }, offer), { refused: 'no message eval' });
  });
});
