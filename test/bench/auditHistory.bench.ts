// audit.historyAt100kMs: the History view's read of one change (100 of 100,000 events, 1,000 changes) through the
//   index by change, in a new session (the index read from its file, anchored to the log, the change's lines read
//   and checked); median over 9 changes.
// audit.historyWarmAt100kMs: the same, the index already in memory.
// audit.historyScanAt100kMs: the same change's events by scanning the whole log, as before (the baseline).
// audit.historyIndexBuildAt100kMs: building the index from the whole log (the first History of a log, or a stale index).
import { hash as sha256 } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_HASH, genesisDetails, sealEvent } from '../../src/core/audit/audit';
import { AuditChangeIndex } from '../../src/infra/audit/changeIndex';
import { readChangeEvents } from '../../src/infra/audit/log';

const REPO = 'e'.repeat(64);
const EVENTS = 100_000;
const CHANGES = 1_000;
const changeId = (index: number) => (0xc0000000 + index).toString(16);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

/** A log of EVENTS events spread over CHANGES changes, written from a template checked against sealEvent. */
async function generateLog(file: string): Promise<void> {
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
  for (let seq = 2; seq <= EVENTS; seq++) {
    const at = new Date(base + seq).toISOString();
    const change = changeId(seq % CHANGES);
    const details = { command: 'npm test -- --reporter dot', exitCode: 0, index: seq, logFile: `logs/${change}/test-${seq}.log` };
    const head = `{"action":"task.run","actor":{"id":"coder","type":"agent"},"at":"${at}","changeId":"${change}","details":{"command":"${details.command}","exitCode":0,"index":${seq},"logFile":"${details.logFile}"}`;
    const tail = `,"prevHash":"${prevHash}","seq":${seq}}`;
    const hash = sha256('sha256', head + tail, 'hex');
    const line = `${head},"hash":"${hash}"${tail}`;
    if (seq <= 3) {
      const sealed = sealEvent({ seq, at, actor: { type: 'agent', id: 'coder' }, action: 'task.run', changeId: change, details, prevHash });
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

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lanes-history-bench-'));
  try {
    const file = join(dir, 'audit.jsonl');
    await generateLog(file);
    const end = (await stat(file)).size;
    process.stderr.write(`auditHistory.bench: ${EVENTS} events, ${(end / 1e6).toFixed(0)} MB\n`);

    let started = performance.now();
    const building = new AuditChangeIndex(file);
    await building.eventsFor(changeId(1), end);
    const buildMs = performance.now() - started;

    const targets = Array.from({ length: 9 }, (_, i) => changeId(100 * i + 7));
    const fresh: number[] = [];
    const warm: number[] = [];
    const scan: number[] = [];
    const warmIndex = new AuditChangeIndex(file);
    await warmIndex.eventsFor(changeId(0), end);
    for (const target of targets) {
      started = performance.now();
      const indexed = await new AuditChangeIndex(file).eventsFor(target, end);
      fresh.push(performance.now() - started);

      started = performance.now();
      await warmIndex.eventsFor(target, end);
      warm.push(performance.now() - started);

      started = performance.now();
      const scanned = await readChangeEvents(file, target, end);
      scan.push(performance.now() - started);
      if (indexed.events.length !== EVENTS / CHANGES || indexed.lines.join('\n') !== scanned.lines.join('\n'))
        throw new Error(`the index found ${indexed.events.length} events of ${target}, the scan ${scanned.events.length}`);
    }
    const round2 = (value: number) => Math.round(value * 100) / 100;
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'audit.historyAt100kMs': round2(median(fresh)),
        'audit.historyWarmAt100kMs': round2(median(warm)),
        'audit.historyScanAt100kMs': round2(median(scan)),
        'audit.historyIndexBuildAt100kMs': round2(buildMs),
      })}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
