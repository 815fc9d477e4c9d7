import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditChainVerifier, parseAuditLine, type AuditEvent, type VerifyOptions, type VerifyResult } from '../../src/core/audit/audit';
import { LaneError } from '../../src/core/errors';
import { compileSecretPatterns } from '../../src/core/redaction';
import { AuditLogError } from '../../src/infra/audit/auditLogError';
import { AuditLog, redactWithPolicyPatterns, repairAuditFile, verifyAuditFile } from '../../src/infra/audit/log';
import { PolicyService } from '../../src/infra/policy/policyService';
import { SECRET_SAMPLES } from './redactionSamples';

/** A log's text through the verifier's text path. */
function verifyText(text: string, options: VerifyOptions = {}): VerifyResult {
  const verifier = new AuditChainVerifier(options);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) verifier.push(line);
  return verifier.finish();
}

const REPO = '1'.repeat(64);
const user = { type: 'user', id: 'dev' } as const;
const agent = { type: 'agent', id: 'coder' } as const;

/**
 * Crash-test child: started by the test below with this very file, it appends
 * events in a loop and prints the seq of every append that resolved (durable).
 */
async function crashChild(file: string): Promise<void> {
  const log = await AuditLog.open(file, { repoKey: REPO, maxBatch: 64, flushDelayMs: 1 });
  process.stdout.write('ready\n');
  const filler = 'x'.repeat(2000);
  for (let round = 0; ; round++) {
    const batch = Array.from({ length: 64 }, (_, index) =>
      log.append({ actor: agent, action: 'task.run', changeId: 'c0ffee00', details: { round, index, output: filler } }),
    );
    const events = await Promise.all(batch);
    process.stdout.write(`durable ${events[events.length - 1]!.seq}\n`);
  }
}

if (process.env.AUDIT_CRASH_CHILD) {
  void crashChild(process.env.AUDIT_CRASH_CHILD);
} else {
  describe('audit log (file)', function () {
    this.timeout(60_000);
    let dir: string;
    let file: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lanes-audit-'));
      file = join(dir, 'storage', 'audit.jsonl');
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function lines(): Promise<string[]> {
      return (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    }

    it('starts a new log with audit.created naming the repository, and chains appends', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      const first = await log.append({ actor: user, action: 'change.create', changeId: 'c0ffee00', details: { title: 'fix' } });
      const second = await log.append({ actor: agent, action: 'agent.start', changeId: 'c0ffee00', policy: 'acme@3', decisionId: 'd1' });
      await log.close();
      assert.equal(first.seq, 2);
      assert.equal(second.seq, 3);
      assert.equal(second.prevHash, first.hash);
      const stored = await lines();
      assert.equal(stored.length, 3);
      const genesis = parseAuditLine(stored[0]!)!;
      assert.equal(genesis.action, 'audit.created');
      assert.equal(genesis.details.repoKey, REPO);
      assert.deepEqual(parseAuditLine(stored[2]!), second);
      assert.match(second.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const result = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.deepEqual(result.ok && [result.count, result.headHash], [3, second.hash]);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
    });

    it('continues the chain after reopening, and batches concurrent appends', async () => {
      let log = await AuditLog.open(file, { repoKey: REPO });
      await Promise.all(Array.from({ length: 500 }, (_, index) => log.append({ actor: agent, action: 'task.run', details: { index } })));
      await log.close();
      log = await AuditLog.open(file, { repoKey: REPO });
      assert.equal(log.head.seq, 501);
      const next = await log.append({ actor: user, action: 'review.approve', changeId: 'c0ffee00' });
      assert.equal(next.seq, 502);
      await log.close();
      const result = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.equal(result.ok && result.count, 502);
      const seqs = (await lines()).map((line) => parseAuditLine(line)!.details.index);
      assert.deepEqual(
        seqs.slice(1, 501),
        Array.from({ length: 500 }, (_, index) => index),
        'appends keep their call order',
      );
    });

    it('writes an append to an idle log at once, and groups the appends that arrive during a write into the next batch', async () => {
      // A delay longer than the test's timeout: only group commit lets these appends resolve in time.
      const log = await AuditLog.open(file, { repoKey: REPO, flushDelayMs: 60_000 });
      const batches: number[] = [];
      log.onDidAppend((events) => batches.push(events.length));
      const started = performance.now();
      await log.append({ actor: user, action: 'review.approve', changeId: 'c0ffee00' });
      assert.ok(performance.now() - started < 5_000, 'the lone append did not wait for the batch delay');
      await new Promise((resolve) => setImmediate(resolve));
      // Appends in one turn of the event loop share one write.
      await Promise.all(Array.from({ length: 200 }, (_, index) => log.append({ actor: agent, action: 'task.run', details: { index } })));
      assert.deepEqual(batches, [1, 200]);
      // Appends made while a write is on its way go as soon as it ends, not after the batch delay.
      const during: Promise<AuditEvent>[] = [log.append({ actor: agent, action: 'task.run', details: { index: 200 } })];
      for (let turn = 0; turn < 5; turn++) {
        await new Promise((resolve) => setImmediate(resolve));
        during.push(log.append({ actor: agent, action: 'task.run', details: { index: 201 + turn } }));
      }
      await Promise.all(during);
      await log.close();
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        207,
      );
      const result = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.equal(result.ok && result.count, 208);
    });

    it('redacts details before they reach the file and counts what it redacted', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      const token = SECRET_SAMPLES.find((sample) => sample.kind === 'githubToken')!.secret;
      const event = await log.append({
        actor: agent,
        action: 'push',
        details: { remote: `https://x-access-token:${token}@github.com/acme/w.git`, apiKey: 'plain', note: `used ${token}` },
      });
      await log.close();
      const text = await readFile(file, 'utf8');
      assert.ok(!text.includes(token));
      assert.ok(!text.includes('plain'));
      assert.equal(event.details.apiKey, '[REDACTED:sensitiveField]');
      // The URL's password is itself a GitHub token: the more specific kind names it.
      assert.deepEqual(event.details.redactions, { total: 3, byKind: { githubToken: 2, sensitiveField: 1 } });

      const reopened = await AuditLog.open(file, { repoKey: REPO });
      reopened.setSecretPatterns(() => compileSecretPatterns([{ name: 'acme', pattern: 'acme_[0-9a-f]{12}' }]).patterns);
      const custom = await reopened.append({ actor: agent, action: 'task.run', details: { note: 'key acme_0123456789ab' } });
      await reopened.close();
      assert.equal(custom.details.note, 'key [REDACTED:policy:acme]');
    });

    it("redacts what the policy calls a secret from the next append on, as the user's policy setting changes", async () => {
      const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
      const policy = new PolicyService({}, { cacheFile: join(dir, 'policy-cache.json'), logger });
      const log = await AuditLog.open(file, { repoKey: REPO });
      try {
        redactWithPolicyPatterns(log, policy);
        const note = 'key acme_0123456789ab';
        assert.equal((await log.append({ actor: agent, action: 'task.run', details: { note } })).details.note, note);
        await policy.updateSettings({ user: { secretPatterns: [{ name: 'acme', pattern: 'acme_[0-9a-f]{12}' }] } });
        const redacted = await log.append({ actor: agent, action: 'task.run', details: { note } });
        assert.equal(redacted.details.note, 'key [REDACTED:policy:acme]');
        await policy.updateSettings({});
        assert.equal((await log.append({ actor: agent, action: 'task.run', details: { note } })).details.note, note);
      } finally {
        await log.close();
        policy.dispose();
      }
    });

    it('keeps two writers on one file (two windows on worktrees of one repository) on one chain', async () => {
      const a = await AuditLog.open(file, { repoKey: REPO, flushDelayMs: 1 });
      const b = await AuditLog.open(file, { repoKey: REPO, flushDelayMs: 1 });
      const appends: Promise<AuditEvent>[] = [];
      for (let i = 0; i < 300; i++) appends.push((i % 2 ? a : b).append({ actor: agent, action: 'task.run', details: { i } }));
      const events = await Promise.all(appends);
      await Promise.all([a.close(), b.close()]);
      assert.equal(new Set(events.map((event) => event.seq)).size, 300, 'every seq once');
      const result = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.equal(result.ok && result.count, 301, JSON.stringify(result));
      assert.deepEqual(await readdir(join(dir, 'storage')), ['audit.jsonl'], 'no lock left behind');
    });

    it('reports a torn last line in readAll, repairs it and records what was cut', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      await log.append({ actor: user, action: 'change.create', changeId: 'c0ffee00' });
      await log.close();
      const torn = '{"action":"task.run","actor":{"id":"coder","type":"agent"},"at":"2026-11-';
      await appendFile(file, torn);

      const reopened = await AuditLog.open(file, { repoKey: REPO, repairTornTail: false });
      const read = await reopened.readAll();
      assert.equal(read.events.length, 2);
      assert.equal(read.problems.length, 1);
      assert.equal(read.problems[0]!.problem, 'torn');
      assert.equal(read.problems[0]!.lineNumber, 3);

      const repair = await reopened.repair(user);
      assert.equal(repair.repaired, true);
      assert.equal(repair.removedBytes, Buffer.byteLength(torn));
      assert.equal(repair.event!.action, 'audit.repaired');
      assert.equal(repair.event!.actor.id, 'dev');
      assert.equal(repair.event!.details.reason, 'tornLastLine');
      assert.equal(repair.event!.details.afterSeq, 2);
      assert.equal(repair.event!.details.removedBytes, Buffer.byteLength(torn));
      assert.match(repair.event!.details.removedPreview as string, /^\{"action":"task.run"/);
      assert.equal((await reopened.repair()).repaired, false, 'a second repair finds nothing');
      const after = await reopened.readAll();
      assert.deepEqual(after.problems, []);
      assert.equal(after.events.length, 3);
      await reopened.close();
    });

    it('repairs a torn tail by itself when opened, so the extension keeps working', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      await log.close();
      await appendFile(file, '{"action":"agent.st');
      const reopened = await AuditLog.open(file, { repoKey: REPO });
      assert.equal(reopened.repairedOnOpen?.repaired, true);
      await reopened.append({ actor: agent, action: 'agent.start' });
      await reopened.close();
      const actions = (await lines()).map((line) => parseAuditLine(line)?.action);
      assert.deepEqual(actions, ['audit.created', 'audit.repaired', 'agent.start']);
      assert.equal((await verifyAuditFile(file)).ok, true);
    });

    it('restarts a log whose only line (audit.created) was torn by a crash', async () => {
      await mkdir(join(dir, 'storage'), { recursive: true });
      const torn = '{"action":"audit.created","actor":{"id":"agent-la';
      await writeFile(file, torn);
      const log = await AuditLog.open(file, { repoKey: REPO });
      await log.close();
      const events = (await lines()).map((line) => parseAuditLine(line)!);
      assert.deepEqual(
        events.map((event) => event.action),
        ['audit.created', 'audit.repaired'],
      );
      assert.equal(events[1]!.details.removedBytes, Buffer.byteLength(torn));
      assert.equal((await verifyAuditFile(file, { expectedRepoKey: REPO })).ok, true);
    });

    it('refuses a log from another repository and a file that is not an audit log, with what to do', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      await log.close();
      await assert.rejects(AuditLog.open(file, { repoKey: '2'.repeat(64) }), (error: unknown) => {
        assert.ok(error instanceof AuditLogError);
        assert.equal(error.code, 'foreignRepository');
        assert.ok(error instanceof LaneError, 'the lanes report it as one of their own errors');
        assert.equal(error.kind, 'foreignRepository');
        assert.match(error.message, /belongs to another repository \(111111111111…\).*Move it aside/);
        return true;
      });
      const notes = join(dir, 'notes.jsonl');
      await writeFile(notes, 'hello\nworld\n');
      await assert.rejects(AuditLog.open(notes, { repoKey: REPO }), (error: unknown) => {
        assert.ok(error instanceof AuditLogError);
        assert.equal(error.code, 'notAuditLog');
        assert.match(error.message, /not an Agent Lanes audit log.*agent-lanes audit verify/);
        return true;
      });
    });

    it('refuses an oversized event without failing the others in its batch', async () => {
      const log = await AuditLog.open(file, { repoKey: REPO });
      const [big, small] = await Promise.allSettled([
        log.append({ actor: agent, action: 'task.run', details: { output: 'y'.repeat(2 * 1024 * 1024) } }),
        log.append({ actor: agent, action: 'task.run', details: { output: 'fine' } }),
      ]);
      assert.equal(big.status, 'rejected');
      assert.match(String((big as PromiseRejectedResult).reason), /larger than .* put its digest in the event details/);
      assert.equal(small.status, 'fulfilled');
      await log.close();
      await assert.rejects(log.append({ actor: agent, action: 'task.run' }), /closed; reopen it/);
      assert.equal((await verifyAuditFile(file)).ok, true);
    });

    it('survives a writer killed with SIGKILL mid-append: at most one torn line, nothing durable lost, then repaired', async () => {
      const child = spawn(process.execPath, [__filename], {
        env: { ...process.env, AUDIT_CRASH_CHILD: file },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      let lastDurable = 0;
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`the writer exited early with ${code}`)));
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const durable = [...output.matchAll(/durable (\d+)/g)];
          lastDurable = Number(durable[durable.length - 1]?.[1] ?? 0);
          // Kill it while it is busy appending 2 KB events in batches of 64.
          if (lastDurable > 3000 && child.exitCode === null && !child.killed) {
            child.removeAllListeners('exit');
            child.on('exit', () => resolve());
            // A random moment inside the next batch: sealing, locking, writing 128 KB or syncing.
            setTimeout(() => child.kill('SIGKILL'), Math.random() * 15);
          }
        });
      });
      const text = await readFile(file, 'utf8');
      const all = text.split('\n');
      const tornLines = all.filter((line, index) => index < all.length - 1 || line !== '').filter((line) => !parseAuditLine(line));
      assert.ok(tornLines.length <= 1, `at most one torn line, found ${tornLines.length}`);
      const before = verifyText(text, { expectedRepoKey: REPO });
      console.log(
        `      (killed after ${lastDurable} durable events; log ${before.ok ? 'ended on a complete line' : 'had a torn last line'})`,
      );
      if (!before.ok) assert.equal(before.problem, 'torn', before.message);
      const count = before.ok ? before.count : before.count;
      assert.ok(count >= lastDurable, `the log has ${count} events but ${lastDurable} were reported durable`);

      const repair = await repairAuditFile(file, user);
      assert.equal(repair.repaired, !before.ok);
      const after = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.ok(after.ok, JSON.stringify(after));
      assert.equal(after.count, before.ok ? count : count + 1);

      // A power loss can tear the last write where a kill rarely does: cut the file inside its last line.
      const size = (await stat(file)).size;
      // At least the newline and one byte of the line: a cut of the newline alone leaves a complete last event.
      await truncate(file, size - 2 - Math.floor(Math.random() * 500));
      const cut = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.equal(!cut.ok && cut.problem, 'torn');
      assert.equal((await repairAuditFile(file, user)).repaired, true);
      const repaired = await verifyAuditFile(file, { expectedRepoKey: REPO });
      assert.ok(repaired.ok && repaired.count === after.count, JSON.stringify(repaired));
    });
  });
}
