import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { genesisDetails, GENESIS_HASH, sealEvent, type AuditEvent } from '../../src/core/audit/audit';
import type { Actor } from '../../src/core/change';
import { MetricsReducer } from '../../src/core/metrics/metrics';
import { AuditLog } from '../../src/infra/audit/log';
import { reduceAuditFile } from '../../src/infra/audit/verifiedEvents';
import { OtlpTelemetry } from '../../src/infra/telemetry/otlpTelemetry';
import { OtlpReceiver, type Attrs } from '../support/otlpReceiver';

const REPO = 'e'.repeat(64);
const dev: Actor = { type: 'user', id: 'dev@example.com' };
const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));
// A GitHub token as gitleaks knows it, made here so no scanner mistakes this file for a leak.
const TOKEN = ['ghp', '_', 'R8vT2kLq9ZxW4mNp7YbC3dHs6FgJ1aQe5UoI'].join('');

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting until ${what}.`);
    await pause(20);
  }
}

/** A log written line by line with the chain sealed but nothing redacted: what an older version may have left. */
async function writeUnredactedLog(file: string, events: Omit<AuditEvent, 'seq' | 'prevHash' | 'hash'>[]): Promise<void> {
  let prevHash = GENESIS_HASH;
  const lines: string[] = [];
  const all = [
    { at: new Date(Date.UTC(2026, 11, 1)).toISOString(), actor: dev, action: 'audit.created', details: genesisDetails(REPO) },
    ...events,
  ];
  all.forEach((event, index) => {
    const { event: sealed, line } = sealEvent({ ...event, seq: index + 1, prevHash });
    prevHash = sealed.hash;
    lines.push(line);
  });
  await writeFile(file, lines.join('\n') + '\n');
}

describe('OTLP export of the audit trail and the promotion metrics', function () {
  this.timeout(60_000);
  let dir: string;
  let receiver: OtlpReceiver;
  const logs: AuditLog[] = [];
  const telemetries: OtlpTelemetry[] = [];
  let said: string[] = [];
  const logger = {
    trace() {},
    debug() {},
    info: (message: string) => void said.push(message),
    warn: (message: string) => void said.push(message),
    error() {},
  };

  function makeTelemetry(refused: string[] = [], authorization?: string): OtlpTelemetry {
    const telemetry = new OtlpTelemetry({
      version: '9.9.9',
      logger,
      ...(authorization ? { getAuthorization: () => Promise.resolve(authorization) } : {}),
      onInvalidEndpoint: (endpoint, error) => refused.push(`${endpoint}: ${error}`),
      metricsIntervalMs: 600_000,
      timeoutMs: 2_000,
      sinkTiming: { minBackoffMs: 20, maxBackoffMs: 100, pollIntervalMs: 50 },
    });
    telemetries.push(telemetry);
    return telemetry;
  }

  async function openLog(file: string): Promise<{ root: string; name: string; audit: AuditLog }> {
    const audit = await AuditLog.open(file, { repoKey: REPO, flushDelayMs: 1 });
    logs.push(audit);
    return { root: dir, name: 'shop', audit };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-otlp-'));
    said = [];
    receiver = new OtlpReceiver();
    await receiver.up();
  });
  afterEach(async () => {
    await Promise.all(telemetries.splice(0).map((telemetry) => telemetry.dispose()));
    await Promise.all(logs.splice(0).map((log) => log.close()));
    await receiver.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends every audit event as a log record the official protocol decodes, with no secret from its details', async () => {
    const file = join(dir, 'audit.jsonl');
    await writeUnredactedLog(file, [
      {
        at: '2026-12-01T10:00:00.000Z',
        actor: dev,
        action: 'change.create',
        changeId: 'c0ffee01',
        details: { agentId: 'codex', taskClass: 'bugfix' },
      },
      {
        at: '2026-12-01T10:05:00.000Z',
        actor: { type: 'agent', id: 'codex' },
        action: 'agent.tool',
        changeId: 'c0ffee01',
        details: { tool: 'shell', note: `pushed with ${TOKEN} by mistake`, nested: { depth: 2, ok: true } },
      },
    ]);
    const source = await openLog(file);
    await source.audit.append({ actor: dev, action: 'review.approve', changeId: 'c0ffee01', details: { comment: 'fine' } });
    await source.audit.flush();

    const telemetry = makeTelemetry();
    await telemetry.configure(receiver.endpoint, [source]);
    await until('the four events arrived', () => receiver.logs.length >= 4);

    assert.deepEqual(receiver.seqs(), [1, 2, 3, 4]);
    assert.deepEqual(
      receiver.logs.map((log) => [log.eventName, log.attributes['agent_lanes.event.type'], log.attributes['agent_lanes.change.id']]),
      [
        ['agent_lanes.audit.created', 'audit.created', undefined],
        ['agent_lanes.change.create', 'change.create', 'c0ffee01'],
        ['agent_lanes.agent.tool', 'agent.tool', 'c0ffee01'],
        ['agent_lanes.review.approve', 'review.approve', 'c0ffee01'],
      ],
    );
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    const tool = receiver.logs[2]!;
    assert.equal(tool.attributes['agent_lanes.audit.hash'], (JSON.parse(lines[2]!) as AuditEvent).hash);
    assert.equal(tool.attributes['agent_lanes.actor.type'], 'agent');
    assert.equal(tool.attributes['agent_lanes.details.tool'], 'shell');
    assert.equal(tool.attributes['agent_lanes.details.nested.depth'], 2);
    assert.equal(tool.attributes['agent_lanes.details.nested.ok'], true);
    assert.equal(tool.attributes['agent_lanes.repository.key'], REPO);
    assert.equal(tool.body, 'agent.tool c0ffee01 by agent codex');
    assert.equal(tool.timeUnixNano, Date.parse('2026-12-01T10:05:00.000Z') * 1e6);
    assert.equal(tool.resource['service.name'], 'agent-lanes');
    assert.equal(tool.resource['service.version'], '9.9.9');
    // The token is in the log (an old line), and redacted on its way out.
    assert.ok(lines[2]!.includes(TOKEN));
    assert.match(String(tool.attributes['agent_lanes.details.note']), /^pushed with \[REDACTED:[\w-]+\] by mistake$/);
    assert.ok(!receiver.bodies.some((body) => body.includes(TOKEN)), 'the token never reaches the receiver');
    assert.ok(receiver.contentTypes.has('/v1/logs application/x-protobuf'));
  });

  it('loses nothing and sends nothing twice while the receiver is down or slow, and never holds up an append', async () => {
    const source = await openLog(join(dir, 'audit.jsonl'));
    await source.audit.append({ actor: dev, action: 'change.create', changeId: 'c1', details: { agentId: 'codex' } });
    await source.audit.flush();
    await receiver.down();

    const telemetry = makeTelemetry();
    await telemetry.configure(receiver.endpoint, [source]);
    // As the editor wires it: every append wakes the export.
    const subscription = source.audit.onDidAppend(() => telemetry.notify(source.root));
    const appendTimes: number[] = [];
    const appendTimed = async (index: number) => {
      const began = performance.now();
      await source.audit.append({ actor: dev, action: 'task.run', changeId: 'c1', details: { index } });
      appendTimes.push(performance.now() - began);
    };
    for (let index = 0; index < 5; index++) await appendTimed(index);
    await pause(300);
    assert.deepEqual(receiver.seqs(), []);

    // Back on the same port, but slow: every answer takes 1.5 s.
    receiver.delayMs = 1_500;
    await receiver.up();
    await until('the events appended while it was down arrived', () => receiver.seqs().length >= 7);
    for (let index = 5; index < 10; index++) await appendTimed(index);
    // An append that waited on the export would take the receiver's 1.5 s; a loaded machine takes tens of ms.
    const whileSlow = appendTimes.slice(5);
    assert.ok(Math.max(...whileSlow) < 750, `appends waited ${whileSlow.map((ms) => ms.toFixed(0)).join(', ')} ms on a slow receiver`);
    // Acknowledged, not only arrived: a batch in flight at a reload is sent again (the receiver dedupes by hash).
    const cursorFile = join(dir, 'otlp-cursor.json');
    const acknowledged = async () => (JSON.parse(await readFile(cursorFile, 'utf8').catch(() => '{}')) as { seq?: number }).seq ?? 0;
    for (let waited = 0; (await acknowledged()) < 12; waited += 50) {
      assert.ok(waited < 15_000, `acknowledged up to ${await acknowledged()} of 12`);
      await pause(50);
    }
    receiver.delayMs = 0;
    subscription.dispose();

    // A reload: the export starts again from its durable cursor, and sends only what is new.
    await telemetry.dispose();
    await source.audit.append({ actor: dev, action: 'review.approve', changeId: 'c1', details: {} });
    await source.audit.flush();
    const again = makeTelemetry();
    await again.configure(receiver.endpoint, [source]);
    await until('the event appended across the reload arrived', () => receiver.seqs().includes(13));
    await pause(200);
    assert.deepEqual(
      receiver.seqs(),
      Array.from({ length: 13 }, (_, index) => index + 1),
    );
    assert.ok((await readdir(dir)).includes('otlp-cursor.json'));
  });

  it('keeps the event loop free while it redacts a backlog of events', async () => {
    const file = join(dir, 'audit.jsonl');
    const explanation = 'All required tasks passed and the diff touches 12 files in src/ and test/ with no secret found.';
    await writeUnredactedLog(
      file,
      Array.from({ length: 400 }, (_, index) => ({
        at: '2026-12-01T10:00:00.000Z',
        actor: dev,
        action: 'policy.decision',
        changeId: 'c0ffee01',
        details: { index, explanation, facts: { files: 12, paths: ['src/a.ts', 'src/b.ts', 'test/c.test.ts'] } },
      })),
    );
    const source = await openLog(file);
    let worst = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 5);
    try {
      const telemetry = makeTelemetry();
      await telemetry.configure(receiver.endpoint, [source]);
      await until('the backlog arrived', () => receiver.logs.length >= 401, 60_000);
    } finally {
      clearInterval(ticker);
    }
    // Redacting the 400 events at once takes half a second or more; a slice of them, tens of milliseconds.
    assert.ok(worst < 300, `the event loop was held for ${worst.toFixed(0)} ms`);
  });

  it('exports the funnel, first-pass rates, blocks and rework of a known log as OTel metrics, with the stored token', async () => {
    const source = await openLog(join(dir, 'audit.jsonl'));
    let minute = 0;
    const at = () => new Date(Date.UTC(2026, 10, 2, 9, minute++ * 30)).toISOString();
    const move = (changeId: string, event: string, from: string, to: string) =>
      source.audit.append({ actor: dev, action: 'lane.transition', changeId, at: at(), details: { event, from, to } });
    await source.audit.append({
      actor: dev,
      action: 'change.create',
      changeId: 'c1',
      at: at(),
      details: { agentId: 'codex', taskClass: 'bugfix' },
    });
    await move('c1', 'promote', 'draft', 'sandbox');
    await source.audit.append({
      actor: dev,
      action: 'policy.decision',
      changeId: 'c1',
      at: at(),
      policy: 'acme@3',
      decisionId: 'd1',
      details: { action: 'gate.sandboxToReview', effect: 'block', rules: [{ rule: 'requiredTasks', effect: 'block', policy: 'acme@3' }] },
    });
    await move('c1', 'promote', 'sandbox', 'review');
    await source.audit.append({ actor: dev, action: 'review.requestChanges', changeId: 'c1', at: at(), details: {} });
    await source.audit.append({ actor: dev, action: 'review.approve', changeId: 'c1', at: at(), details: {} });
    await move('c1', 'promote', 'review', 'pullRequest');
    await source.audit.append({
      actor: dev,
      action: 'change.create',
      changeId: 'c2',
      at: at(),
      details: { agentId: 'codex', taskClass: 'bugfix' },
    });
    await move('c2', 'promote', 'draft', 'sandbox');
    await source.audit.append({ actor: dev, action: 'change.create', changeId: 'c3', at: at(), details: { agentId: 'claude' } });
    await source.audit.flush();

    const telemetry = makeTelemetry([], 'Bearer otlp-t0ken');
    await telemetry.configure(receiver.endpoint, [source]);
    await until('the log records arrived', () => receiver.logs.length > 0);
    await telemetry.flushMetrics();
    await until('a metrics request arrived', () => receiver.metricRequests.length > 0);
    const points = receiver.metricRequests.at(-1)!;
    const reached = (grouping: string, key: string, value: string, stage: string) =>
      points.find(
        (point) =>
          point.name === 'agent_lanes.changes.reached' &&
          point.attributes['agent_lanes.grouping'] === grouping &&
          point.attributes[key] === value &&
          point.attributes['agent_lanes.stage'] === stage,
      );
    assert.deepEqual(
      ['drafted', 'sandboxPassed', 'approved', 'prOpened', 'merged'].map(
        (stage) => reached('agent', 'agent_lanes.agent', 'codex', stage)?.value,
      ),
      // c2 is in the sandbox lane, not past it; c1 was approved but no pull request was opened.
      [2, 1, 1, 0, 0],
    );
    assert.equal(reached('agent', 'agent_lanes.agent', 'claude', 'drafted')?.value, 1);
    assert.equal(reached('task_class', 'agent_lanes.task_class', 'bugfix', 'drafted')?.value, 2);
    const drafted = reached('agent', 'agent_lanes.agent', 'codex', 'drafted')!;
    assert.equal(drafted.kind, 'sum');
    assert.equal(drafted.monotonic, true);
    assert.equal(drafted.resource['service.name'], 'agent-lanes');
    assert.equal(drafted.attributes['agent_lanes.repository.name'], 'shop');

    // Every figure of the report is there, as the reducer computes it from the same log.
    const reducer = new MetricsReducer();
    await reduceAuditFile(source.audit.file, reducer);
    const codex = reducer.report('agent').groups.find((group) => group.key === 'codex')!;
    const codexPoint = (name: string, extra: Attrs = {}) =>
      points.find(
        (point) =>
          point.name === name &&
          point.attributes['agent_lanes.agent'] === 'codex' &&
          Object.entries(extra).every(([key, value]) => point.attributes[key] === value),
      )?.value;
    for (const figure of codex.funnel)
      if (figure.firstPassRate !== undefined)
        assert.equal(codexPoint('agent_lanes.changes.first_pass_rate', { 'agent_lanes.stage': figure.stage }), figure.firstPassRate);
    assert.equal(codexPoint('agent_lanes.policy.blocks', { 'agent_lanes.rule': 'requiredTasks', 'agent_lanes.policy': 'acme@3' }), 1);
    assert.equal(codexPoint('agent_lanes.rework.requested_changes_rounds'), codex.rework.requestedChangesRounds);
    assert.equal(codex.rework.requestedChangesRounds, 1);
    assert.ok(receiver.contentTypes.has('/v1/metrics application/x-protobuf'));

    // A receiver that is down is said once in the log, and so is its coming back.
    await receiver.down();
    await telemetry.flushMetrics();
    await telemetry.flushMetrics();
    await receiver.up();
    await telemetry.flushMetrics();
    const health = said.filter((message) => message.startsWith('OTLP metrics export to'));
    assert.equal(health.length, 2, health.join('\n'));
    assert.match(health[0]!, /failed \(.+\); the next export sends the totals again\.$/);
    assert.match(health[1]!, /works again\.$/);
    // The token from secret storage goes with both signals.
    assert.deepEqual([...receiver.authorizations].sort(), ['/v1/logs Bearer otlp-t0ken', '/v1/metrics Bearer otlp-t0ken']);
  });

  it('refuses an endpoint it will not send to, once, saying what to set', async () => {
    const source = await openLog(join(dir, 'audit.jsonl'));
    await source.audit.flush();
    const refused: string[] = [];
    const telemetry = makeTelemetry(refused);
    await telemetry.configure('http://otel.example.com:4318', [source]);
    await telemetry.configure('http://otel.example.com:4318', [source]);
    await telemetry.configure(`${receiver.endpoint}/v1/logs`, [source]);
    await telemetry.configure('otel.example.com', [source]);
    assert.equal(refused.length, 3, refused.join('\n'));
    assert.match(refused[0]!, /OTLP endpoint http:\/\/otel\.example\.com:4318 uses plain HTTP\. Use https:\/\//);
    assert.match(refused[1]!, /names one signal's path\. Set agentLanes\.telemetry\.otlpEndpoint to the receiver's base URL/);
    assert.match(refused[2]!, /is not a URL\. Set agentLanes\.telemetry\.otlpEndpoint/);
    await pause(200);
    assert.equal(receiver.bodies.length, 0);
    assert.ok(!(await readdir(dir)).includes('otlp-cursor.json'));
  });
});
