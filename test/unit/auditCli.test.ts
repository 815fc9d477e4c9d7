import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAuditCli } from '../../src/cli/audit';
import { parseAuditLine } from '../../src/core/audit/audit';
import { exportAudit } from '../../src/infra/audit/export';
import { AuditLog } from '../../src/infra/audit/log';

const REPO = '1'.repeat(64);
const agent = { type: 'agent', id: 'coder' } as const;

describe('agent-lanes audit (command line)', function () {
  this.timeout(30_000);
  let dir: string;
  let file: string;
  const capture = () => {
    const out = { logs: [] as string[], errors: [] as string[] };
    return { out, io: { log: (s: string) => out.logs.push(s), error: (s: string) => out.errors.push(s) } };
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-audit-cli-'));
    file = join(dir, 'audit.jsonl');
    const log = await AuditLog.open(file, { repoKey: REPO });
    for (let i = 0; i < 5; i++) await log.append({ actor: agent, action: 'task.run', details: { i } });
    await log.close();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verify prints OK with the count and head hash, exit 0', async () => {
    const { out, io } = capture();
    const head = parseAuditLine((await readFile(file, 'utf8')).trim().split('\n').pop()!)!.hash;
    assert.equal(await runAuditCli(['audit', 'verify', file], io), 0);
    assert.equal(out.logs[0], `OK: 6 events, head hash ${head}`);
    assert.equal(await runAuditCli(['verify', file, '--repo-key', REPO, '--json'], io), 0);
    assert.deepEqual(JSON.parse(out.logs.at(-1)!).count, 6);
  });

  it('verify says that a cut end is caught only with --checkpoint, and does not say so once one is given', async () => {
    const cut = join(dir, 'cut.jsonl');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    await writeFile(cut, `${lines.slice(0, -2).join('\n')}\n`);
    const { out, io } = capture();
    assert.equal(await runAuditCli(['verify', cut], io), 0, 'a chain cut at its end still verifies');
    assert.match(out.logs.join('\n'), /Not checked: events removed from the end of the log.*--checkpoint/);
    const { checkpointFile } = await exportAudit(file, join(dir, 'export-for-cut'));
    const withCheckpoint = capture();
    assert.equal(await runAuditCli(['verify', cut, '--checkpoint', checkpointFile], withCheckpoint.io), 1);
    assert.doesNotMatch(withCheckpoint.out.logs.join('\n'), /Not checked/);
  });

  it('verify of a file that is not an audit log says so, not "0 events verify"', async () => {
    const other = join(dir, 'notes.txt');
    await writeFile(other, 'hello world\nsecond line\n');
    const { out, io } = capture();
    assert.equal(await runAuditCli(['verify', other], io), 1);
    assert.match(out.errors.join('\n'), /notes\.txt is not an Agent Lanes audit log: its first line is not an audit event/);
    assert.doesNotMatch(out.errors.join('\n'), /0 events/);
  });

  it('verify prints the first broken seq and the problem, exit 1', async () => {
    const broken = join(dir, 'broken.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    [lines[2], lines[3]] = [lines[3]!, lines[2]!];
    await writeFile(broken, lines.join('\n'));
    const { out, io } = capture();
    assert.equal(await runAuditCli(['verify', broken], io), 1);
    assert.equal(out.errors[0], 'BROKEN at seq 3 (line 3): reordered');
    assert.match(out.errors[1]!, /event 4 is on line 3, before event 3 on line 4/);

    const foreign = capture();
    assert.equal(await runAuditCli(['verify', file, '--repo-key', '9'.repeat(64)], foreign.io), 1);
    assert.match(foreign.out.errors[0]!, /foreignRepository/);
  });

  it('verify with a checkpoint reports truncation', async () => {
    const exported = await exportAudit(file, join(dir, 'export'));
    const short = join(dir, 'short.jsonl');
    await writeFile(short, (await readFile(file, 'utf8')).split('\n').slice(0, 3).join('\n') + '\n');
    const { out, io } = capture();
    assert.equal(await runAuditCli(['verify', short, '--checkpoint', exported.checkpointFile], io), 1);
    assert.equal(out.errors[0], 'BROKEN at seq 4 (line 4): truncated');
  });

  it('verify with a checkpoint of another repository says so, not "rewritten"; one missing event reads as one', async () => {
    const otherFile = join(dir, 'other', 'audit.jsonl');
    const other = await AuditLog.open(otherFile, { repoKey: '2'.repeat(64) });
    for (let i = 0; i < 5; i++) await other.append({ actor: agent, action: 'task.run', details: { i } });
    await other.close();
    const foreign = await exportAudit(otherFile, join(dir, 'other-export'));
    const { out, io } = capture();
    assert.equal(await runAuditCli(['verify', file, '--checkpoint', foreign.checkpointFile], io), 1);
    assert.equal(out.errors[0], 'BROKEN at seq 1 (line 1): foreignRepository');
    assert.match(out.errors[1]!, /The checkpoint .*belongs to another repository \(222222222222…\), not to this log's \(111111111111…\)/);

    const exported = await exportAudit(file, join(dir, 'export-one'));
    const short = join(dir, 'one-short.jsonl');
    await writeFile(short, (await readFile(file, 'utf8')).split('\n').slice(0, 5).join('\n') + '\n');
    const cut = capture();
    assert.equal(await runAuditCli(['verify', short, '--checkpoint', exported.checkpointFile], cut.io), 1);
    assert.equal(cut.out.errors[0], 'BROKEN at seq 6 (line 6): truncated');
    assert.match(cut.out.errors[1]!, /recorded 6 events: event 6 was removed from the end\./);
  });

  it('repair cuts a torn line and records it, exit 0', async () => {
    const torn = join(dir, 'torn.jsonl');
    await writeFile(torn, (await readFile(file, 'utf8')) + '{"action":"pu');
    const { out, io } = capture();
    assert.equal(await runAuditCli(['repair', torn], io), 0, out.errors.join('\n'));
    assert.match(out.logs[0]!, /Removed a torn last line of 13 bytes after event 6; recorded as event 7/);
    assert.match(out.logs[1]!, /^OK: 7 events/);
    const last = parseAuditLine((await readFile(torn, 'utf8')).trim().split('\n').pop()!)!;
    assert.equal(last.action, 'audit.repaired');
    assert.equal(last.actor.type, 'user');
    const again = capture();
    assert.equal(await runAuditCli(['repair', torn], again.io), 0);
    assert.match(again.out.logs[0]!, /nothing to repair/);
  });

  it('answers bad usage with exit 2 and says what to do', async () => {
    const notCheckpoint = join(dir, 'other.json');
    await writeFile(notCheckpoint, '{"count": 3}');
    const cases: [string[], RegExp][] = [
      [[], /Usage:/],
      [['audit'], /Usage:/],
      [['audit', 'check', file], /Unknown audit command "check"/],
      [['audit', 'verify'], /needs exactly one FILE; got 0/],
      [['audit', 'verify', file, file], /needs exactly one FILE; got 2/],
      [['audit', 'verify', join(dir, 'missing.jsonl')], /Cannot read the audit log .*missing.jsonl: no such file/],
      [['audit', 'verify', dir], /is a folder; give the audit log file/],
      [['audit', 'verify', file, '--frobnicate'], /Unknown option '--frobnicate'/],
      [['audit', 'verify', file, '--checkpoint', file], /Cannot read the checkpoint .*Export Audit Log/],
      [['audit', 'verify', file, '--checkpoint', notCheckpoint], /is not an audit checkpoint \(format: .*Export Audit Log/],
      [['audit', 'repair', file, '--repo-key', REPO], /repair takes only FILE/],
    ];
    for (const [args, message] of cases) {
      const { out, io } = capture();
      assert.equal(await runAuditCli(args, io), 2, args.join(' '));
      assert.match(out.errors.join('\n'), message, args.join(' '));
    }
    const help = capture();
    assert.equal(await runAuditCli(['audit', '--help'], help.io), 0);
    assert.match(help.out.logs[0]!, /agent-lanes audit verify FILE/);
  });

  it('repair refuses a file that is not an audit log, exit 1', async () => {
    const text = join(dir, 'text.txt');
    await writeFile(text, 'not a log\n');
    const { out, io } = capture();
    assert.equal(await runAuditCli(['repair', text], io), 1);
    assert.match(out.errors[0]!, /Cannot repair .*not an Agent Lanes audit log/);
    await truncate(text, 0);
  });
});
