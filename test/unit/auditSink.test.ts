import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseAuditLine } from '../../src/core/audit/audit';
import { AuditLog } from '../../src/infra/audit/log';
import { AuditSink, validateSinkEndpoint, type SinkChainBreak, type SinkStatus } from '../../src/infra/audit/sink';
import { AuditSinks } from '../../src/infra/audit/sinks';

const REPO = '5'.repeat(64);

interface Received {
  seqs: number[];
  hashes: string[];
  headers: IncomingMessage['headers'];
  status: number;
}

type Behaviour = (request: number) => { status: number; delayMs?: number; retryAfter?: string };

/** A real org sink on 127.0.0.1 that can go down, come back on the same port, fail and be slow. */
class FakeSink {
  server: Server | undefined;
  port = 0;
  requests: Received[] = [];
  behaviour: Behaviour = () => ({ status: 200 });

  async up(): Promise<void> {
    const server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/audit`;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const index = this.requests.length;
    const { status, delayMs, retryAfter } = this.behaviour(index);
    const body = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as { seq: number; hash: string }[];
    // Recorded on arrival: a sink may store a batch even when its answer never reaches the client.
    this.requests.push({ seqs: body.map((event) => event.seq), hashes: body.map((event) => event.hash), headers: request.headers, status });
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (response.destroyed) return;
    response.writeHead(status, retryAfter ? { 'Retry-After': retryAfter } : {});
    response.end(status < 300 ? '{"ok":true}' : '{"error":"try later"}');
  }

  /** Seqs of batches the sink answered 2xx, in arrival order. */
  acknowledgedSeqs(): number[] {
    return this.requests.filter((request) => request.status < 300).flatMap((request) => request.seqs);
  }

  /** What a deduplicating sink ends up storing. */
  storedByHash(): Map<string, number> {
    const stored = new Map<string, number>();
    for (const request of this.requests) request.hashes.forEach((hash, index) => stored.set(hash, request.seqs[index]!));
    return stored;
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A logger that keeps what was warned and reported as an error. */
function recordingLogger() {
  const said: string[] = [];
  const keep = (message: string) => void said.push(message);
  return { said, logger: { trace() {}, debug() {}, info() {}, warn: keep, error: keep } };
}

describe('audit sink', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  let log: AuditLog;
  let sink: FakeSink;
  const sinks: AuditSink[] = [];

  function makeSink(options: Partial<ConstructorParameters<typeof AuditSink>[0]> = {}): AuditSink {
    const created = new AuditSink({
      endpoint: sink.url,
      auditFile: file,
      repoKey: REPO,
      minBackoffMs: 10,
      maxBackoffMs: 80,
      pollIntervalMs: 50,
      timeoutMs: 2_000,
      batchSize: 40,
      ...options,
    });
    sinks.push(created);
    return created;
  }

  async function appendMany(count: number): Promise<void> {
    await Promise.all(
      range(1, count).map((index) => log.append({ actor: { type: 'agent', id: 'coder' }, action: 'task.run', details: { index } })),
    );
  }

  /** Resolves once the sink has acknowledged every event in the log. */
  async function drained(shipper: AuditSink, timeoutMs = 30_000): Promise<void> {
    await log.flush();
    const lastSeq = parseAuditLine((await readFile(file, 'utf8')).trimEnd().split('\n').pop()!)!.seq;
    const deadline = Date.now() + timeoutMs;
    while (shipper.status.acknowledgedSeq < lastSeq) {
      const { acknowledgedSeq, lastError } = shipper.status;
      if (Date.now() > deadline)
        assert.fail(`The sink acknowledged events up to ${acknowledgedSeq} of ${lastSeq} (last error: ${lastError}).`);
      shipper.notify();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-sink-'));
    file = join(dir, 'audit.jsonl');
    log = await AuditLog.open(file, { repoKey: REPO, flushDelayMs: 1 });
    sink = new FakeSink();
    await sink.up();
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((each) => each.stop()));
    await log.close();
    await sink.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('posts gzip JSON batches of the stored lines and moves the cursor on 2xx', async () => {
    await appendMany(99);
    const shipper = makeSink();
    shipper.start();
    await drained(shipper);
    assert.deepEqual(sink.acknowledgedSeqs(), range(1, 100));
    assert.deepEqual(
      sink.requests.map((request) => request.seqs.length),
      [40, 40, 20],
    );
    const first = sink.requests[0]!;
    assert.equal(first.headers['content-type'], 'application/json');
    assert.equal(first.headers['content-encoding'], 'gzip');
    assert.equal(first.headers['x-agent-lanes-repository'], REPO);
    assert.equal(first.headers['x-agent-lanes-first-seq'], '1');
    assert.equal(first.headers['idempotency-key'], `${REPO}:1-40`);
    const lines = (await readFile(file, 'utf8')).split('\n');
    assert.equal(first.hashes[5], parseAuditLine(lines[5]!)!.hash, 'events are sent exactly as stored');
    const cursor = JSON.parse(await readFile(join(dir, 'sink-cursor.json'), 'utf8')) as { seq: number; endpoint: string; offset: number };
    assert.equal(cursor.seq, 100);
    assert.equal(cursor.endpoint, sink.url);
    assert.equal(cursor.offset, Buffer.byteLength(lines.slice(0, 100).join('\n') + '\n'));
    assert.equal(shipper.status.acknowledgedSeq, 100);
  });

  it('loses nothing and sends nothing twice while the sink is down, answers 500, is slow, and comes back', async () => {
    await appendMany(30);
    await sink.down();
    const statuses: SinkStatus[] = [];
    const shipper = makeSink();
    shipper.onDidChangeStatus((status) => statuses.push(status));
    shipper.start();
    await appendMany(30);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(sink.requests.length, 0);
    assert.ok(
      statuses.some((status) => status.state === 'waiting' && /cannot reach the sink/.test(status.lastError ?? '')),
      JSON.stringify(statuses.at(-1)),
    );

    // Back on the same port: first two answers are 500, then slow (within the timeout), then fine.
    sink.behaviour = (request) => (request < 2 ? { status: 500 } : request < 4 ? { status: 200, delayMs: 400 } : { status: 200 });
    await sink.up();
    const more = appendMany(40);
    await more;
    await drained(shipper);
    assert.equal(sink.requests.filter((request) => request.status === 500).length, 2);
    assert.ok(statuses.some((status) => status.lastError === 'the sink answered HTTP 500'));
    const acknowledged = sink.acknowledgedSeqs();
    assert.deepEqual(
      [...acknowledged].sort((a, b) => a - b),
      range(1, 101),
      'every event acknowledged exactly once',
    );
    assert.deepEqual(acknowledged, range(1, 101), 'in order');
    assert.equal(shipper.status.consecutiveFailures, 0);
  });

  it('resumes from the cursor after a restart without resending acknowledged events', async () => {
    await appendMany(50);
    const first = makeSink();
    first.start();
    await drained(first);
    await first.stop();
    await appendMany(25);
    // Like a VS Code restart: a new sink object on the same files.
    const second = makeSink();
    second.start();
    await drained(second);
    assert.deepEqual(sink.acknowledgedSeqs(), range(1, 76));
    assert.equal(
      new Set(sink.requests.flatMap((request) => request.seqs)).size,
      sink.requests.flatMap((request) => request.seqs).length,
      'no seq posted twice',
    );
  });

  it('resends only a batch whose answer timed out, which a deduplicating sink stores once', async () => {
    await appendMany(59);
    sink.behaviour = (request) => (request === 0 ? { status: 200, delayMs: 1_500 } : { status: 200 });
    const shipper = makeSink({ timeoutMs: 300 });
    const errors: string[] = [];
    shipper.onDidChangeStatus((status) => status.lastError && errors.push(status.lastError));
    shipper.start();
    await drained(shipper);
    const posted = sink.requests.flatMap((request) => request.seqs);
    const twice = posted.filter((seq, index) => posted.indexOf(seq) !== index);
    assert.deepEqual(twice, range(1, 40), 'only the timed-out batch came again');
    assert.ok(errors.includes('no answer within 300 ms'), errors.join('; '));
    const stored = sink.storedByHash();
    assert.deepEqual(
      [...stored.values()].sort((a, b) => a - b),
      range(1, 60),
    );
  });

  it('honours Retry-After and halves a batch the sink finds too large', async () => {
    await appendMany(39);
    sink.behaviour = (request) => (request === 0 ? { status: 413 } : request === 1 ? { status: 503, retryAfter: '0' } : { status: 200 });
    const shipper = makeSink();
    shipper.start();
    await drained(shipper);
    assert.deepEqual(
      sink.requests.map((request) => [request.status, request.seqs.length]),
      [
        [413, 40],
        [503, 20],
        [200, 20],
        [200, 20],
      ],
    );
    assert.deepEqual(sink.acknowledgedSeqs(), range(1, 40));
  });

  it('starts over for a different endpoint, and lets one process ship a log at a time', async () => {
    await appendMany(9);
    const first = makeSink();
    first.start();
    await drained(first);
    const other = new FakeSink();
    await other.up();
    try {
      // A second shipper for the same log stays passive while the first one runs.
      const rival = makeSink({ endpoint: other.url });
      rival.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(rival.status.state, 'passive');
      assert.equal(other.requests.length, 0);
      await first.stop();
      await drained(rival);
      assert.deepEqual(other.acknowledgedSeqs(), range(1, 10), 'a new endpoint gets the whole log');
    } finally {
      await other.down();
    }
  });

  it('finds its place by seq when the cursor no longer starts a line, and sends nothing twice', async () => {
    await appendMany(9);
    const first = makeSink();
    first.start();
    await drained(first);
    await first.stop();
    // A cursor whose offset lands in the middle of a line (an older cursor, or a log written again with other line lengths).
    const cursorFile = join(dir, 'sink-cursor.json');
    const cursor = JSON.parse(await readFile(cursorFile, 'utf8')) as { offset: number };
    await writeFile(cursorFile, JSON.stringify({ ...cursor, offset: cursor.offset - 7 }));
    await appendMany(5);
    const { said, logger } = recordingLogger();
    const second = makeSink({ logger });
    second.start();
    await drained(second);
    assert.deepEqual(sink.acknowledgedSeqs(), range(1, 15));
    assert.equal(second.status.state === 'broken', false);
    assert.equal(said.length, 1, said.join('\n'));
    assert.match(said[0]!, /no longer continues at byte \d+; event 10 is now at byte/);
  });

  it('a log rewritten under the cursor (other line lengths) is a broken chain: a loud state, reported once, nothing more sent', async () => {
    await appendMany(19);
    const first = makeSink();
    first.start();
    await drained(first);
    await first.stop();
    const sent = sink.requests.length;
    // Another history for the same repository, its lines longer than the shipped ones.
    const otherFile = join(dir, 'other', 'audit.jsonl');
    const other = await AuditLog.open(otherFile, { repoKey: REPO, flushDelayMs: 1 });
    for (const index of range(1, 29))
      await other.append({ actor: { type: 'agent', id: 'coder' }, action: 'task.run', details: { index, note: 'written again' } });
    await other.close();
    await writeFile(file, await readFile(otherFile));

    const { said, logger } = recordingLogger();
    const breaks: SinkChainBreak[] = [];
    const statuses: SinkStatus[] = [];
    const second = makeSink({ logger, pollIntervalMs: 10, onChainBroken: (broken) => breaks.push(broken) });
    second.onDidChangeStatus((status) => statuses.push(status));
    second.start();
    for (let waited = 0; second.status.state !== 'broken'; waited += 20) {
      assert.ok(waited < 5_000, `the sink reports the break (status ${JSON.stringify(second.status)})`);
      await pause(20);
    }
    // Many polls and a wake-up later, the break is still reported once.
    for (let i = 0; i < 20; i++) {
      second.notify();
      await pause(25);
    }
    assert.equal(second.status.state, 'broken');
    assert.match(
      second.status.lastError ?? '',
      /event 20 in the audit log has hash .* but the sink acknowledged .* rewritten after it was shipped/,
    );
    assert.equal(second.status.acknowledgedSeq, 20);
    assert.equal(sink.requests.length, sent, 'nothing of the other history is sent');
    assert.equal(breaks.length, 1);
    assert.equal(breaks[0]!.problem, 'rewritten');
    assert.equal(breaks[0]!.acknowledgedSeq, 20);
    assert.equal(said.length, 1, said.join('\n'));
    const since = statuses.findIndex((status) => status.state === 'broken');
    assert.ok(!statuses.slice(since).some((status) => status.state === 'idle'), 'never idle once broken');
  });

  it('a line that is not an intact event stops shipping there, reported once however often the log grows', async () => {
    await appendMany(29);
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[14] = lines[14]!.replace('"task.run"', '"task.ran"');
    await writeFile(file, lines.join('\n'));
    const { said, logger } = recordingLogger();
    const breaks: SinkChainBreak[] = [];
    const shipper = makeSink({ logger, pollIntervalMs: 10, onChainBroken: (broken) => breaks.push(broken) });
    shipper.start();
    for (let waited = 0; shipper.status.state !== 'broken'; waited += 20) {
      assert.ok(waited < 5_000, `the sink reports the break (status ${JSON.stringify(shipper.status)})`);
      await pause(20);
    }
    await appendMany(10);
    for (let i = 0; i < 20; i++) {
      shipper.notify();
      await pause(25);
    }
    assert.deepEqual(sink.acknowledgedSeqs(), range(1, 14));
    assert.equal(shipper.status.state, 'broken');
    assert.match(shipper.status.lastError ?? '', /the line at byte \d+ of the audit log \(after event 14\) is not an intact event/);
    assert.deepEqual(
      breaks.map((broken) => broken.problem),
      ['notIntact'],
    );
    assert.equal(said.length, 1, said.join('\n'));
  });

  it('accepts HTTPS, and plain HTTP only to this machine', () => {
    assert.ok('url' in validateSinkEndpoint('https://audit.example.com/v1/events'));
    assert.ok('url' in validateSinkEndpoint('http://127.0.0.1:8080/x'));
    assert.ok('url' in validateSinkEndpoint('http://localhost/x'));
    assert.ok('url' in validateSinkEndpoint('http://[::1]:9/x'));
    const error = (value: string) => {
      const result = validateSinkEndpoint(value);
      assert.ok('error' in result, value);
      return result.error;
    };
    assert.match(error('http://audit.example.com/v1'), /plain HTTP\. Use https:\/\//);
    assert.match(error('ftp://audit.example.com'), /must be an https:\/\/ URL/);
    assert.match(error('audit.example.com'), /is not a URL\. Set agentLanes\.audit\.sinkEndpoint/);
    assert.match(error('https://user:pw@audit.example.com'), /user name or password/);
    assert.throws(() => new AuditSink({ endpoint: 'http://10.0.0.1/x', auditFile: file, repoKey: REPO }), /plain HTTP/);
  });
});

describe('audit sinks (one per open repository)', function () {
  this.timeout(30_000);
  let dir: string;
  let sink: FakeSink;
  const logs: AuditLog[] = [];
  const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-sinks-'));
    sink = new FakeSink();
    await sink.up();
  });
  afterEach(async () => {
    await Promise.all(logs.splice(0).map((log) => log.close()));
    await sink.down();
    await rm(dir, { recursive: true, force: true });
  });

  it("ships each repository's log with the stored token, and reports an endpoint it will not send to", async () => {
    const open = async (name: string, repoKey: string) => {
      const audit = await AuditLog.open(join(dir, name, 'audit.jsonl'), { repoKey, flushDelayMs: 1 });
      logs.push(audit);
      await audit.append({ actor: { type: 'agent', id: 'coder' }, action: 'task.run', details: { name } });
      return { root: join(dir, name), name, audit };
    };
    const sources = [await open('one', '6'.repeat(64)), await open('two', '7'.repeat(64))];
    const refused: string[] = [];
    const sinks = new AuditSinks({
      getAuthorization: async () => 'Bearer t0ken',
      onInvalidEndpoint: (endpoint, error) => refused.push(`${endpoint}: ${error}`),
      logger,
    });
    await sinks.configure('http://audit.example.com/v1', sources);
    assert.equal(refused.length, 1);
    assert.match(refused[0]!, /^http:\/\/audit\.example\.com\/v1: .*uses plain HTTP/);

    await sinks.configure(sink.url, sources);
    const shipped = () =>
      new Set(sink.requests.filter((request) => request.status < 300).map((request) => request.headers['x-agent-lanes-repository']));
    for (let waited = 0; shipped().size < 2; waited += 20) {
      assert.ok(waited < 10_000, 'both logs reach the sink');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual([...shipped()].sort(), ['6'.repeat(64), '7'.repeat(64)]);
    assert.deepEqual(new Set(sink.requests.map((request) => request.headers.authorization)), new Set(['Bearer t0ken']));
    // An empty endpoint stops every sink (and releases their locks).
    await sinks.configure('', sources);
    assert.deepEqual(
      (await readdir(join(dir, 'one'))).filter((name) => name.endsWith('.lock')),
      [],
    );
  });

  it("records a broken chain in the repository's audit log once, and says so", async () => {
    const audit = await AuditLog.open(join(dir, 'one', 'audit.jsonl'), { repoKey: '6'.repeat(64), flushDelayMs: 1 });
    logs.push(audit);
    for (const note of ['a', 'b', 'c', 'd'])
      await audit.append({ actor: { type: 'agent', id: 'coder' }, action: 'task.run', details: { note } });
    const lines = (await readFile(audit.file, 'utf8')).split('\n');
    lines[2] = lines[2]!.replace('"task.run"', '"task.ran"');
    await writeFile(audit.file, lines.join('\n'));
    const told: string[] = [];
    const sinks = new AuditSinks({
      getAuthorization: async () => undefined,
      onInvalidEndpoint: () => assert.fail('the endpoint is valid'),
      onChainBroken: (name, message) => told.push(`${name}: ${message}`),
      logger,
    });
    await sinks.configure(sink.url, [{ root: join(dir, 'one'), name: 'one', audit }]);
    const recorded = async () => (await readFile(audit.file, 'utf8')).split('\n').filter((line) => line.includes('"audit.sinkBroken"'));
    for (let waited = 0; (await recorded()).length === 0; waited += 20) {
      assert.ok(waited < 10_000, 'the break is recorded');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (let i = 0; i < 10; i++) {
      sinks.notify(join(dir, 'one'));
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    const events = (await recorded()).map((line) => parseAuditLine(line)!);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.details.problem, 'notIntact');
    assert.equal(events[0]!.details.acknowledgedSeq, 2);
    assert.equal(events[0]!.details.endpoint, sink.url);
    assert.equal(told.length, 1);
    assert.match(told[0]!, /^one: the line at byte \d+ of the audit log \(after event 2\) is not an intact event/);
    await sinks.configure('', []);
  });
});
