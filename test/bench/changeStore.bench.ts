// changeStore.writeAt1000Ms: one change updated (store.update: its record written alone, temp + fsync + rename +
//   folder fsync) in a store of 1,000 changes; the median of 5 rounds, each the median of 40 writes.
// changeStore.baselineWriteMs: the same change's JSON written with a plain open + write + fsync, same run, same rounds.
// changeStore.writeRatio: the two, divided.
// changeStore.wholeFileWriteAt1000Ms: the store before (all 1,000 changes in one file, written atomically), for the record.
// changeStore.loadAt1000Ms: reading the 1,000 records at start-up (wholeFileLoadAt1000Ms: the one file before, read,
//   parsed and checked the same way); changeStore.migrate1000Ms: the one-time migration of a 1,000-change changes.json.
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Change, ChangeFileSchema } from '../../src/core/change';
import { ChangeStore } from '../../src/core/changeStore';
import { ChangeFolderPersistence, writeFileAtomic } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';

const COUNT = 1_000;
const ROUNDS = 5;
const WRITES = 40;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** A change as a store holds one after a few lanes: history, a sandbox verdict, an approval. */
function change(index: number): Change {
  const id = index.toString(16).padStart(8, '0');
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, index)).toISOString();
  return {
    id,
    title: `Change ${index}: add a greeting function and its test`,
    task: 'Add a greeting function to src/greet.ts and a unit test for it. Keep the public API unchanged.',
    agentId: 'claude-code',
    baseRef: 'main',
    baseSha: 'a'.repeat(40),
    headSha: 'b'.repeat(40),
    branch: `lanes/${id}-add-a-greeting-function`,
    worktreePath: `/home/dev/.lanes/worktrees/${id}-add-a-greeting-function`,
    lane: 'review',
    createdAt: at,
    updatedAt: at,
    history: [
      { from: 'draft', to: 'sandbox', event: 'promote', at, actor: { type: 'user', id: 'dev@example.invalid' } },
      { from: 'sandbox', to: 'review', event: 'promote', at, actor: { type: 'extension', id: 'sandbox' } },
    ],
  };
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'lanes-bench-store-'));
  try {
    const storage = new RepoStorage(join(scratch, 'storage'), 'f'.repeat(64), 'bench-app');
    mkdirSync(storage.root, { recursive: true });
    const changes = Array.from({ length: COUNT }, (_, index) => change(index));

    // The one-time migration of the earlier one-file store, which also fills the store for the rest.
    await writeFile(storage.legacyChangesFile, JSON.stringify({ version: 1, changes }, null, 2));
    let started = performance.now();
    const migrated = new ChangeStore(new ChangeFolderPersistence(storage));
    await migrated.load();
    const migrateMs = performance.now() - started;
    if (migrated.all().length !== COUNT) throw new Error(`the migration kept ${migrated.all().length} changes`);

    const loads: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      started = performance.now();
      const store = new ChangeStore(new ChangeFolderPersistence(storage));
      await store.load();
      loads.push(performance.now() - started);
      if (store.all().length !== COUNT) throw new Error(`the store loaded ${store.all().length} changes`);
    }

    // Before: the one file read and checked the same way (JSON, then the schema).
    const oneFile = join(scratch, 'one-file.json');
    await writeFile(oneFile, JSON.stringify({ version: 1, changes }, null, 2));
    const wholeLoads: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      started = performance.now();
      const parsed = ChangeFileSchema.parse(JSON.parse(await readFile(oneFile, 'utf8')));
      wholeLoads.push(performance.now() - started);
      if (parsed.changes.length !== COUNT) throw new Error('the one file lost changes');
    }

    const store = new ChangeStore(new ChangeFolderPersistence(storage));
    await store.load();
    const target = changes[COUNT / 2]!.id;
    const baselineFile = join(scratch, 'baseline.json');
    const wholeFile = join(scratch, 'changes.json');
    const ours: number[] = [];
    const baseline: number[] = [];
    const whole: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const roundOurs: number[] = [];
      const roundBaseline: number[] = [];
      const roundWhole: number[] = [];
      for (let write = 0; write < WRITES; write++) {
        const title = `Round ${round}, write ${write}`;
        started = performance.now();
        const updated = await store.update(target, (c) => ({ ...c, title }));
        roundOurs.push(performance.now() - started);

        // The baseline: the same change's JSON, a plain write and fsync, nothing else.
        started = performance.now();
        const handle = await open(baselineFile, 'w');
        await handle.writeFile(`${JSON.stringify(updated, null, 2)}\n`, 'utf8');
        await handle.sync();
        await handle.close();
        roundBaseline.push(performance.now() - started);

        // Before: the whole store in one file, rewritten atomically for every write.
        if (write < 10) {
          started = performance.now();
          await writeFileAtomic(wholeFile, `${JSON.stringify({ version: 1, changes: store.all() }, null, 2)}\n`);
          roundWhole.push(performance.now() - started);
        }
      }
      ours.push(median(roundOurs));
      baseline.push(median(roundBaseline));
      whole.push(median(roundWhole));
    }
    const writeMs = median(ours);
    const baselineMs = median(baseline);
    const round3 = (value: number) => Math.round(value * 1000) / 1000;
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'changeStore.writeAt1000Ms': round3(writeMs),
        'changeStore.baselineWriteMs': round3(baselineMs),
        'changeStore.writeRatio': round3(writeMs / baselineMs),
        'changeStore.wholeFileWriteAt1000Ms': round3(median(whole)),
        'changeStore.loadAt1000Ms': round3(median(loads)),
        'changeStore.wholeFileLoadAt1000Ms': round3(median(wholeLoads)),
        'changeStore.migrate1000Ms': Math.round(migrateMs),
      })}`,
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
