import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as vscode from 'vscode';
import type { VerifyResult } from '../../../src/core/audit/audit';
import type { Change } from '../../../src/core/change';
import type { RepairResult } from '../../../src/infra/audit/log';
import type { ProofBundleResult } from '../../../src/infra/audit/proofBundle';
import type { RepoContext } from '../../../src/vscode/repositories';
import { OtlpReceiver } from '../../support/otlpReceiver';
import { lanesApi, waitFor } from '../util';

async function draft(task: string): Promise<Change> {
  const api = await lanesApi();
  const change = await vscode.commands.executeCommand<Change | undefined>('agentLanes.newDraft', { task, agentId: 'scripted' });
  assert.ok(change, `the draft "${task}" was created`);
  return waitFor(
    () => {
      const found = api.registry.findChange(change.id)?.change;
      return found?.agentRun && found.agentRun.state !== 'running' ? found : undefined;
    },
    `the agent of ${change.id} to finish`,
    45_000,
  );
}

/** Overwrites bytes of the log in place, as someone editing it by hand would. */
function overwrite(file: string, offset: number, text: string): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from(text, 'utf8'), 0, Buffer.byteLength(text), offset);
  } finally {
    closeSync(fd);
  }
}

/** A real org audit sink: gzip JSON arrays in, every event kept by seq, every delivery counted. */
class Sink {
  readonly received = new Map<number, string>();
  readonly deliveries: number[] = [];
  readonly authorizations = new Set<string>();
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        try {
          assert.equal(request.headers['content-encoding'], 'gzip');
          this.authorizations.add(String(request.headers.authorization ?? ''));
          const events = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as { seq: number }[];
          for (const event of events) {
            this.deliveries.push(event.seq);
            this.received.set(event.seq, JSON.stringify(event));
          }
          response.writeHead(200).end('{}');
        } catch (error) {
          response.writeHead(400).end(String(error));
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Every seq from 1 to `last` arrived. */
  hasAll(last: number): boolean {
    for (let seq = 1; seq <= last; seq++) if (!this.received.has(seq)) return false;
    return true;
  }
}

describe('Audit trail in a real VS Code', () => {
  let repo: RepoContext;
  let change: Change;
  let scratch: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'lanes-audit-it-'));
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    await api.registry.ensureDiscovered();
    repo = api.registry.repositories()[0]!;
    change = await draft('Add a greeting function and a test');
    assert.equal(change.agentRun?.state, 'succeeded', change.agentRun?.message);
  });

  it('Verify Audit Log: OK with the count and head hash after a draft', async () => {
    const result = await vscode.commands.executeCommand<VerifyResult>('agentLanes.verifyAuditLog', { repository: repo.root });
    assert.ok(result?.ok, JSON.stringify(result));
    assert.equal(result.count, repo.lanes.context.audit.head.seq);
    assert.equal(result.headHash, repo.lanes.context.audit.head.hash);
    const actions = (await repo.lanes.context.audit.eventsFor(change.id)).map((e) => e.action);
    for (const action of ['change.create', 'policy.decision', 'agent.start', 'agent.stop'])
      assert.ok(actions.includes(action), `${action} in ${actions.join(', ')}`);
  });

  it('a line edited by hand is reported with its seq as "edited"; put back, the log verifies again', async () => {
    const file = repo.lanes.context.audit.file;
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');
    const index = lines.findIndex((line) => line.includes('"action":"change.create"') && line.includes(change.id));
    const line = lines[index]!;
    const seq = (JSON.parse(line) as { seq: number }).seq;
    const offset = Buffer.byteLength(
      lines
        .slice(0, index)
        .map((l) => `${l}\n`)
        .join(''),
    );
    const at = line.indexOf('"title":"') + '"title":"'.length;
    const original = line[at]!;
    overwrite(file, offset + Buffer.byteLength(line.slice(0, at)), original === 'X' ? 'Y' : 'X');
    try {
      const broken = await vscode.commands.executeCommand<VerifyResult>('agentLanes.verifyAuditLog', { repository: repo.root });
      assert.ok(broken && !broken.ok);
      assert.equal(broken.problem, 'edited');
      assert.equal(broken.seq, seq);
      assert.equal(broken.lineNumber, index + 1);
    } finally {
      overwrite(file, offset + Buffer.byteLength(line.slice(0, at)), original);
    }
    const again = await vscode.commands.executeCommand<VerifyResult>('agentLanes.verifyAuditLog', { repository: repo.root });
    assert.ok(again?.ok);
  });

  it('a torn last line is reported as "torn", and Repair cuts it and records that it did', async () => {
    const audit = repo.lanes.context.audit;
    const before = audit.head.seq;
    appendFileSync(audit.file, '{"action":"agent.st');
    const torn = await vscode.commands.executeCommand<VerifyResult>('agentLanes.verifyAuditLog', { repository: repo.root });
    assert.ok(torn && !torn.ok);
    assert.equal(torn.problem, 'torn');
    const repaired = await vscode.commands.executeCommand<RepairResult>('agentLanes.repairAuditLog', { repository: repo.root });
    assert.equal(repaired?.repaired, true);
    assert.equal(repaired.removedBytes, Buffer.byteLength('{"action":"agent.st'));
    assert.equal(repaired.event?.action, 'audit.repaired');
    assert.equal(repaired.event?.seq, before + 1);
    const ok = await vscode.commands.executeCommand<VerifyResult>('agentLanes.verifyAuditLog', { repository: repo.root });
    assert.ok(ok?.ok);
  });

  it('Export Audit Log writes the log and a checkpoint, and records audit.exported', async () => {
    const dest = join(scratch, 'export');
    const result = await vscode.commands.executeCommand<{
      logFile: string;
      checkpointFile: string;
      checkpoint: { count: number; headHash: string; verified: boolean };
    }>('agentLanes.exportAuditLog', {
      repository: repo.root,
      destination: dest,
    });
    assert.ok(result);
    assert.deepEqual(readdirSync(dest).sort(), ['audit.jsonl', 'checkpoint.json']);
    const checkpoint = JSON.parse(readFileSync(join(dest, 'checkpoint.json'), 'utf8')) as {
      count: number;
      headHash: string;
      verified: boolean;
    };
    assert.equal(checkpoint.verified, true);
    assert.equal(checkpoint.count, readFileSync(join(dest, 'audit.jsonl'), 'utf8').trim().split('\n').length);
    const { events } = await repo.lanes.context.audit.readAll();
    const exported = events.at(-1)!;
    assert.equal(exported.action, 'audit.exported');
    assert.equal(exported.actor.type, 'user');
    assert.deepEqual(
      [(exported.details as { count: number }).count, (exported.details as { headHash: string }).headHash],
      [checkpoint.count, checkpoint.headHash],
    );
    assert.equal(exported.seq, checkpoint.count + 1, 'the export event follows what was exported');
    // The folder is not the live log's.
    assert.equal(
      await vscode.commands.executeCommand('agentLanes.exportAuditLog', { repository: repo.root, destination: repo.storage.root }),
      undefined,
    );
  });

  it('Export Proof Bundle: one archive that opens with tar and holds the diff, evidence, logs, decisions, events and checkpoint', async () => {
    const secret = await draft('Write a secret');
    const result = await vscode.commands.executeCommand<ProofBundleResult>(
      'agentLanes.exportProofBundle',
      { changeId: secret.id },
      { destination: join(scratch, 'bundles') },
    );
    assert.ok(result);
    assert.equal(result.file, join(scratch, 'bundles', `agent-lanes-proof-${secret.id}.tar.gz`));
    const out = join(scratch, 'opened');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['xzf', result.file, '-C', out]);
    const root = join(out, `agent-lanes-proof-${secret.id}`);
    for (const name of [
      'README.md',
      'change.diff',
      'evidence.json',
      'decisions.json',
      'audit-events.jsonl',
      'checkpoint.json',
      'SHA256SUMS',
      'logs/agent.log',
    ]) {
      assert.ok(existsSync(join(root, name)), `${name} is in the bundle`);
    }
    execFileSync('sha256sum', ['-c', 'SHA256SUMS', '--quiet'], { cwd: root });
    const diff = readFileSync(join(root, 'change.diff'), 'utf8');
    assert.match(diff, /^diff --git a\/config\/credentials\.js b\/config\/credentials\.js/m);
    assert.ok(!diff.includes('AKIAIOSFODNN7EXAMPLF'), 'the key is not in the diff');
    assert.match(diff, /\[REDACTED:awsAccessKeyId\]/);
    assert.ok(result.redaction.total >= 1);
    const evidence = JSON.parse(readFileSync(join(root, 'evidence.json'), 'utf8')) as { changeId: string };
    assert.equal(evidence.changeId, secret.id);
    const decisions = JSON.parse(readFileSync(join(root, 'decisions.json'), 'utf8')) as { action: string }[];
    assert.ok(decisions.some((d) => d.action === 'startAgent'));
    const lines = readFileSync(join(root, 'audit-events.jsonl'), 'utf8').trim().split('\n');
    assert.ok(lines.length >= 4);
    for (const line of lines) assert.equal((JSON.parse(line) as { changeId: string }).changeId, secret.id);
    assert.match(readFileSync(join(root, 'README.md'), 'utf8'), /# Proof bundle for change/);
    const last = (await repo.lanes.context.audit.eventsFor(secret.id)).at(-1)!;
    assert.equal(last.action, 'audit.proofBundleExported');
    assert.equal((last.details as { auditEvents: number }).auditEvents, lines.length);
  });

  it("History shows the change's events, and follows new ones while open", async () => {
    const uri = await vscode.commands.executeCommand<vscode.Uri>('agentLanes.showHistory', { changeId: change.id });
    assert.equal(uri?.scheme, 'agent-lanes-audit');
    const doc = await vscode.workspace.openTextDocument(uri!);
    const text = doc.getText();
    assert.match(text, /^# History: Add a greeting function and a test/);
    assert.match(text, /^## \d{4}-\d\d-\d\d \(UTC\)$/m, 'events grouped by day');
    assert.match(
      text,
      /^- \*\*\d\d:\d\d:\d\d\*\* · `change\.create` · user .* · #\d+ {2}\n {2}Created "Add a greeting function and a test" from main/m,
    );
    assert.match(text, /`agent\.stop` · agent scripted · #\d+ {2}\n {2}The agent stopped: succeeded, exit code 0/);
    assert.match(text, /`policy\.decision` · .*\n {2}start an agent: allow\./);
    assert.doesNotMatch(text, /audit\.proofBundleExported/);
    await vscode.commands.executeCommand(
      'agentLanes.exportProofBundle',
      { changeId: change.id },
      { destination: join(scratch, 'bundles') },
    );
    await waitFor(() => doc.getText().includes('audit.proofBundleExported'), 'the open History to show the new event');
  });

  it('ships every event to the org sink with the token from secret storage; the sink going down and up loses and duplicates nothing', async () => {
    const audit = repo.lanes.context.audit;
    const sink = new Sink();
    await sink.start();
    try {
      await vscode.commands.executeCommand('agentLanes.setAuditSinkToken', { token: 'sink-token-123' });
      // Refused (not one header line): the stored token stays.
      await vscode.commands.executeCommand('agentLanes.setAuditSinkToken', { token: 'line one\nline two' });
      // Refused: credentials in the URL. Nothing is sent, nothing breaks.
      await vscode.workspace
        .getConfiguration('agentLanes')
        .update('audit.sinkEndpoint', `http://user:pw@127.0.0.1:${sink.port}/events`, vscode.ConfigurationTarget.Global);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(sink.received.size, 0, 'an endpoint with a password in it gets nothing');
      await vscode.workspace
        .getConfiguration('agentLanes')
        .update('audit.sinkEndpoint', `http://127.0.0.1:${sink.port}/events`, vscode.ConfigurationTarget.Global);
      await waitFor(
        () => sink.hasAll(audit.head.seq),
        `the sink to receive events 1..${audit.head.seq} (has ${sink.received.size})`,
        30_000,
      );
      assert.deepEqual([...sink.authorizations], ['Bearer sink-token-123']);

      const port = sink.port;
      await sink.stop();
      await draft('Change nothing');
      const head = audit.head.seq;
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      await sink.start(port);
      await waitFor(
        () => sink.hasAll(head),
        `the sink to receive events up to ${head} after coming back (has ${sink.received.size})`,
        40_000,
      );

      const stored = readFileSync(audit.file, 'utf8').trim().split('\n');
      assert.equal(new Set(sink.deliveries).size, sink.deliveries.length, `no event was delivered twice: ${sink.deliveries.join(',')}`);
      for (const [seq, event] of sink.received)
        assert.equal(event, JSON.stringify(JSON.parse(stored[seq - 1]!)), `event ${seq} arrived as stored`);
      assert.ok(existsSync(join(repo.storage.root, 'sink-cursor.json')));
    } finally {
      await vscode.workspace.getConfiguration('agentLanes').update('audit.sinkEndpoint', undefined, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('agentLanes.setAuditSinkToken', { token: '' });
      await sink.stop();
    }
  });

  it('exports every event as an OTel log record with the stored token when the OTLP endpoint is set, loading the OTel bundle only then', async () => {
    const audit = repo.lanes.context.audit;
    const otelLoaded = () => Object.keys(require.cache).some((file) => /[\\/]dist[\\/]otel\.js$/.test(file));
    assert.equal(otelLoaded(), false, 'dist/otel.js is not loaded while the setting is empty');
    const receiver = new OtlpReceiver();
    await receiver.up();
    const setting = vscode.workspace.getConfiguration('agentLanes');
    try {
      await vscode.commands.executeCommand('agentLanes.setOtlpToken', { token: 'otlp-token-456' });
      await setting.update('telemetry.otlpEndpoint', receiver.endpoint, vscode.ConfigurationTarget.Global);
      const head = audit.head.seq;
      await waitFor(() => receiver.seqs().length >= head, `the receiver to get events 1..${head} (has ${receiver.seqs().length})`, 30_000);
      assert.ok(otelLoaded(), 'dist/otel.js was loaded for the export');
      const change = await draft('Change nothing for the collector');
      await waitFor(
        () => receiver.logs.some((log) => log.attributes['agent_lanes.change.id'] === change.id),
        "the new draft's events to reach the receiver",
        30_000,
      );
      const seqs = receiver.seqs();
      assert.equal(new Set(seqs).size, seqs.length, `no event was sent twice: ${seqs.join(',')}`);
      const created = receiver.logs.find(
        (log) => log.eventName === 'agent_lanes.change.create' && log.attributes['agent_lanes.change.id'] === change.id,
      );
      assert.ok(created, 'the change.create event arrived as a log record');
      assert.equal(created.resource['service.name'], 'agent-lanes');
      assert.equal(created.attributes['agent_lanes.repository.key'], audit.repoKey);
      assert.ok(existsSync(join(repo.storage.root, 'otlp-cursor.json')));
      assert.ok(receiver.authorizations.has('/v1/logs Bearer otlp-token-456'));
      for (const sent of receiver.authorizations) assert.match(sent, / Bearer otlp-token-456$/, 'every request carries the stored token');
    } finally {
      await setting.update('telemetry.otlpEndpoint', undefined, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('agentLanes.setOtlpToken', { token: '' });
      await receiver.down();
    }
  });
});
