// audit.appendPerSec: durable appends per second (append() resolves after the
// batch's fsync), with many appends in flight as an extension under load has.
// audit.appendLatencyP50Ms: what one caller waits for: a single awaited append() (nothing else in flight), p50 of 300.
// audit.appendLatencyRatio: that ÷ the same line appended to a plain file and fdatasync'd, p50, in the same run.
// audit.verify1MSec: verifying a log of 1,000,000 events, streamed from disk.
// redaction.tenMBMs: redacting 10 MB of ordinary task log text.
import { hash as sha256 } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { GENESIS_HASH, genesisDetails, sealEvent } from '../../src/core/audit/audit';
import { redactText } from '../../src/core/redaction';
import { AuditLog, verifyAuditFile } from '../../src/infra/audit/log';

const REPO = 'f'.repeat(64);

async function appendPerSecond(dir: string): Promise<number> {
  const log = await AuditLog.open(join(dir, 'append.jsonl'), { repoKey: REPO });
  const total = 40_000;
  const inFlight = 1_000;
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const index = next++;
      await log.append({
        actor: { type: 'agent', id: 'coder' },
        action: 'task.run',
        changeId: 'c0ffee00',
        details: { index, command: 'npm test', exitCode: 0 },
      });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  await log.close();
  const result = await verifyAuditFile(join(dir, 'append.jsonl'));
  if (!result.ok || result.count !== total + 1) throw new Error(`append bench wrote a broken log: ${JSON.stringify(result)}`);
  return Math.round(total / seconds);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One awaited append at a time, as a command that records an event and goes on waits; and plain appends + fdatasync. */
async function appendLatency(dir: string): Promise<{ p50: number; ratio: number }> {
  const log = await AuditLog.open(join(dir, 'latency.jsonl'), { repoKey: REPO });
  const plain = await open(join(dir, 'plain.jsonl'), 'a');
  const ours: number[] = [];
  const baseline: number[] = [];
  try {
    for (let index = 0; index < 300; index++) {
      const details = { index, command: 'npm test', exitCode: 0 };
      let started = performance.now();
      await log.append({ actor: { type: 'agent', id: 'coder' }, action: 'task.run', changeId: 'c0ffee00', details });
      ours.push(performance.now() - started);
      started = performance.now();
      await plain.appendFile(`${JSON.stringify({ action: 'task.run', details, hash: REPO, prevHash: REPO })}\n`);
      await plain.datasync();
      baseline.push(performance.now() - started);
    }
  } finally {
    await log.close();
    await plain.close();
  }
  const p50 = percentile(ours, 50);
  return { p50: Math.round(p50 * 100) / 100, ratio: Math.round((p50 / percentile(baseline, 50)) * 100) / 100 };
}

/**
 * Writes a log of `count` events quickly: every event has the same shape, so
 * its canonical text is a template; the first lines are checked against sealEvent.
 */
async function generateLog(file: string, count: number): Promise<void> {
  const out = createWriteStream(file);
  const genesis = sealEvent({
    seq: 1,
    at: '2026-11-21T00:00:00.000Z',
    actor: { type: 'extension', id: 'agent-lanes' },
    action: 'audit.created',
    details: genesisDetails(REPO),
    prevHash: GENESIS_HASH,
  });
  let prevHash = genesis.event.hash;
  const parts: string[] = [genesis.line];
  const base = Date.UTC(2026, 10, 21);
  for (let seq = 2; seq <= count; seq++) {
    const at = new Date(base + seq).toISOString();
    const head = `{"action":"task.run","actor":{"id":"coder","type":"agent"},"at":"${at}","changeId":"c0ffee00","details":{"command":"npm test","exitCode":0,"index":${seq}}`;
    const tail = `,"prevHash":"${prevHash}","seq":${seq}}`;
    const hash = sha256('sha256', head + tail, 'hex');
    const line = `${head},"hash":"${hash}"${tail}`;
    if (seq <= 3) {
      const sealed = sealEvent({
        seq,
        at,
        actor: { type: 'agent', id: 'coder' },
        action: 'task.run',
        changeId: 'c0ffee00',
        details: { command: 'npm test', exitCode: 0, index: seq },
        prevHash,
      });
      if (sealed.line !== line) throw new Error('the bench template does not match sealEvent');
    }
    prevHash = hash;
    parts.push(line);
    if (parts.length === 10_000) {
      if (!out.write(parts.join('\n') + '\n')) await once(out, 'drain');
      parts.length = 0;
    }
  }
  if (parts.length) out.write(parts.join('\n') + '\n');
  out.end();
  await once(out, 'finish');
}

async function verifyMillion(dir: string): Promise<number> {
  const file = join(dir, 'million.jsonl');
  await generateLog(file, 1_000_000);
  const started = performance.now();
  const result = await verifyAuditFile(file, { expectedRepoKey: REPO });
  const seconds = (performance.now() - started) / 1000;
  if (!result.ok || result.count !== 1_000_000) throw new Error(`verify bench: ${JSON.stringify(result)}`);
  process.stderr.write(`audit.bench: 1,000,000 events, ${((await stat(file)).size / 1e6).toFixed(0)} MB\n`);
  return Math.round(seconds * 1000) / 1000;
}

function redactTenMegabytes(): number {
  const lines = [
    '2026-11-21T10:00:00.123Z INFO  [worker-3] GET https://registry.npmjs.org/zod 200 34ms',
    '  ✓ computes the diff hash for renamed files (12ms)',
    '     AssertionError [ERR_ASSERTION]: Expected values to be strictly equal: 3 !== 4',
    '      at Context.<anonymous> (test/unit/lanes.test.ts:42:12)',
    'commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 Author: Dev <dev@example.com>',
    'tokens: 1532 prompt, 420 completion; cache key build-linux-x64',
    'const tokenizer = new Tokenizer(options); let passwordField = form.get("pw");',
  ];
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < 10 * 1024 * 1024; i++) {
    const line = lines[i % lines.length]!;
    parts.push(line);
    size += line.length + 1;
  }
  const text = parts.join('\n');
  const started = performance.now();
  redactText(text);
  return Math.round(performance.now() - started);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lanes-audit-bench-'));
  try {
    const appendPerSec = await appendPerSecond(dir);
    const latency = await appendLatency(dir);
    const verify1MSec = await verifyMillion(dir);
    const tenMBMs = redactTenMegabytes();
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'audit.appendPerSec': appendPerSec,
        'audit.appendLatencyP50Ms': latency.p50,
        'audit.appendLatencyRatio': latency.ratio,
        'audit.verify1MSec': verify1MSec,
        'redaction.tenMBMs': tenMBMs,
      })}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
