import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { verifyAuditFile } from '../../src/infra/audit/log';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';

const scriptedAgent = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };

async function laneFor(): Promise<{ ctx: LaneContext; lane: DraftLane; repo: string }> {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-draft-')));
  const repo = createSampleRepository(join(base, 'app'));
  const ctx = await createLaneContext(base, repo);
  return { ctx, lane: new DraftLane(ctx), repo };
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** Where each New Draft's worktree came from, as its change.create audit event says (pool, moved or new). */
const worktreesCreated = (ctx: LaneContext): string[] =>
  readFileSync(ctx.storage.auditFile, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
    .filter((event) => event.action === 'change.create')
    .map((event) => event.details.worktree);

describe('Draft lane service (real git, real agent process)', function () {
  this.timeout(60_000);

  it('drafts in its own worktree, commits with trailers, analyses the diff and leaves the checkout untouched', async () => {
    const { ctx, lane, repo } = await laneFor();
    const statusBefore = git(repo, 'status', '--porcelain');
    const headBefore = git(repo, 'rev-parse', 'HEAD');
    const { change } = await lane.start({
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev@example.com',
    });
    assert.match(change.branch, /^lanes\/[0-9a-f]{8}-add-a-greeting-function-and-a-test$/);
    assert.ok(change.worktreePath.startsWith(ctx.storage.worktreesDir), 'the worktree lives in the extension storage');
    assert.equal(change.baseSha, headBefore);

    const lines: string[] = [];
    const outcome = await lane.runAgent(change.id, agent, user, { onLine: (line) => lines.push(line) });
    assert.equal(outcome.outcome, 'committed', outcome.message);
    assert.ok(
      lines.some((l) => l.includes('wrote src/greeting.js')),
      'output is streamed',
    );
    assert.equal(git(repo, 'status', '--porcelain'), statusBefore, "the user's checkout is untouched");
    assert.equal(git(repo, 'rev-parse', 'HEAD'), headBefore);
    assert.equal(existsSync(join(repo, 'src', 'greeting.js')), false);

    const message = git(repo, 'log', '-1', '--format=%B', change.branch);
    assert.match(message, new RegExp(`Lanes-Change-Id: ${change.id}`));
    assert.match(message, /AI-Agent: scripted/);
    assert.match(message, /AI-Prompt-Ref: prompt-/);

    const stored = ctx.store.get(change.id)!;
    assert.equal(stored.agentRun?.state, 'succeeded');
    assert.equal(stored.headSha, git(repo, 'rev-parse', change.branch));
    const evidence = await ctx.evidence.read(change.id);
    assert.equal(evidence.kind, 'ok');
    if (evidence.kind !== 'ok') return;
    assert.deepEqual(evidence.evidence.diff?.files.map((f) => f.path).sort(), ['src/greeting.js', 'test/greeting.test.js']);
    assert.match(evidence.evidence.diff?.hash ?? '', /^[0-9a-f]{64}$/);
    assert.ok(evidence.evidence.agentReport?.summary, 'the agent report is recorded');
    assert.equal(evidence.evidence.checkout?.untouched, true);

    await ctx.audit.flush();
    const verified = await verifyAuditFile(ctx.storage.auditFile);
    assert.ok(verified.ok);
    const actions = readFileSync(ctx.storage.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).action);
    for (const action of ['change.create', 'policy.decision', 'agent.start', 'agent.stop'])
      assert.ok(actions.includes(action), `audit has ${action}`);
  });

  it("takes New Draft's worktree from the warm pool, refills it, and never gives the next draft what an agent left", async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-draft-')));
    const repo = createSampleRepository(join(base, 'app'));
    const ctx = await createLaneContext(base, repo);
    const settings = { worktreePool: 1, sparsePaths: [] as unknown[] };
    const lane = new DraftLane(ctx, { draftSettings: () => settings });
    await lane.warmPool();
    const poolDir = join(ctx.storage.root, 'worktree-pool');
    assert.equal(readdirSync(poolDir).length, 1, 'one worktree ready when the repository opens');
    const input = {
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli' as const, config: agent },
      actor: user,
      createdBy: 'dev@example.com',
    };
    const { change } = await lane.start(input);
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    assert.ok(existsSync(join(change.worktreePath, 'src', 'greeting.js')));
    await lane.discard(change.id, user, { force: true });
    assert.equal(existsSync(change.worktreePath), false, 'discarded with its change, not returned to the pool');
    await lane.pool.refill(git(repo, 'rev-parse', 'HEAD'));
    const next = await lane.start(input);
    assert.equal(
      existsSync(join(next.change.worktreePath, 'src', 'greeting.js')),
      false,
      "the first agent's file never reaches the next draft",
    );
    assert.equal(git(next.change.worktreePath, 'status', '--porcelain', '--ignored'), '');
    await ctx.audit.flush();
    const created = worktreesCreated(ctx);
    assert.deepEqual(created, ['pool', 'pool']);
    settings.worktreePool = 0;
    await lane.warmPool();
    assert.deepEqual(readdirSync(poolDir), [], 'turned off: the pool is emptied');
    settings.sparsePaths = ['../outside'];
    await assert.rejects(lane.start(input), /agentLanes\.draft\.sparsePaths: "\.\.\/outside" contains "\.\."/);
  });

  it('refills the pool at the checkout HEAD after a draft from a named base, so the next draft needs no move', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-draft-')));
    const repo = createSampleRepository(join(base, 'app'));
    const older = git(repo, 'rev-parse', 'HEAD');
    writeFileSync(join(repo, 'later.txt'), 'a later commit\n');
    git(repo, 'add', 'later.txt');
    git(repo, '-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', 'commit', '-q', '-m', 'later');
    const headSha = git(repo, 'rev-parse', 'HEAD');
    const ctx = await createLaneContext(base, repo);
    const lane = new DraftLane(ctx, { draftSettings: () => ({ worktreePool: 1, sparsePaths: [] }) });
    await lane.warmPool();
    const input = { agent: { kind: 'chat' as const }, actor: user, createdBy: 'dev@example.com' };
    const named = await lane.start({ ...input, task: 'From the older commit', baseRef: older });
    assert.equal(named.change.baseSha, older);
    // The worktree the pool prepares behind that draft: at HEAD, not at the named base.
    const poolDir = join(ctx.storage.root, 'worktree-pool');
    let ready: string | undefined;
    for (let wait = 0; wait < 300 && !ready; wait++) {
      ready = readdirSync(poolDir).find((name) => name.startsWith('ready-'));
      if (!ready) await new Promise((settle) => setTimeout(settle, 50));
    }
    assert.ok(ready, 'the pool refilled');
    assert.equal(git(join(poolDir, ready), 'rev-parse', 'HEAD'), headSha);
    await lane.pool.refill(headSha);
    const next = await lane.start({ ...input, task: 'From HEAD' });
    assert.equal(next.change.baseSha, headSha);
    await ctx.audit.flush();
    const created = worktreesCreated(ctx);
    assert.deepEqual(created, ['moved', 'pool'], 'the pool was at HEAD for the second draft');
    await ctx.audit.close();
  });

  it('keeps an agent that writes into the user checkout by absolute path out of it (the boundary refuses the write)', async () => {
    const { ctx, lane, repo } = await laneFor();
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const { change } = await lane.start({
      task: `Misbehave\n@write ${join(repo, 'README.md')} overwritten by the agent`,
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'failed', 'the write failed inside the boundary, and so did the agent');
    assert.equal(readFileSync(join(repo, 'README.md'), 'utf8'), readme);
    assert.equal(ctx.store.get(change.id)?.alerts, undefined);
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    assert.equal(evidence.evidence.checkout?.untouched, true);
    assert.equal(evidence.evidence.isolation?.verified, true);
  });

  it('keeps a change with no changes in Draft, marked "no changes"', async () => {
    const { ctx, lane } = await laneFor();
    const { change } = await lane.start({ task: 'Change nothing', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'noChanges');
    assert.equal(ctx.store.get(change.id)?.agentRun?.state, 'noChanges');
    assert.equal(ctx.store.get(change.id)?.lane, 'draft');
  });

  it('reports an agent that is not installed, naming the setting', async () => {
    const { lane } = await laneFor();
    const missing = { id: 'ghost', label: 'Ghost', command: ['definitely-not-an-agent-binary', '{prompt}'] };
    const { change } = await lane.start({ task: 'Anything', agent: { kind: 'cli', config: missing }, actor: user, createdBy: 'dev' });
    const outcome = await lane.runAgent(change.id, missing, user);
    assert.equal(outcome.outcome, 'notFound');
    assert.match(outcome.message, /agentLanes\.agents/);
  });

  it('refuses a base ref that does not exist, leaving nothing behind', async () => {
    const { ctx, lane, repo } = await laneFor();
    await assert.rejects(
      lane.start({ task: 'x', baseRef: 'no-such-branch', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' }),
      /no-such-branch/,
    );
    assert.equal(ctx.store.all().length, 0);
    assert.equal(git(repo, 'branch', '--list', 'lanes/*'), '');
  });

  it('drafts the revert of a true merge commit against its first parent, leaving the checkout untouched', async () => {
    const { ctx, lane, repo } = await laneFor();
    const mainBefore = git(repo, 'rev-parse', 'HEAD');
    // A feature branch merged with a merge commit (what GitHub's "Create a merge commit" leaves), while main moved on too.
    git(repo, 'checkout', '-q', '-b', 'feature');
    execFileSync('sh', ['-c', 'printf "export const f = 1;\n" > src/feature.js'], { cwd: repo });
    git(repo, 'add', '.');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-qm', 'Add a feature');
    git(repo, 'checkout', '-q', '-');
    execFileSync('sh', ['-c', 'printf "notes\n" > NOTES.md'], { cwd: repo });
    git(repo, 'add', '.');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-qm', 'Notes on main');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@e', 'merge', '-q', '--no-ff', '-m', 'Merge feature', 'feature');
    const merge = git(repo, 'rev-parse', 'HEAD');
    assert.equal(git(repo, 'rev-list', '--parents', '-n', '1', merge).split(' ').length, 3, 'a true merge commit');
    const statusBefore = git(repo, 'status', '--porcelain');

    const outcome = await lane.startRevert({
      sha: merge,
      branch: 'main',
      title: 'Add a feature',
      reason: 'deploy failed',
      actor: user,
      createdBy: 'dev@example.com',
    });
    const revert = outcome.change;
    assert.equal(revert.agentId, 'agent-lanes-revert');
    assert.equal(revert.baseSha, merge);
    // Reverted against the first parent (main before the merge): the feature goes, main's own commit stays.
    assert.equal(git(repo, 'diff', '--stat', `${merge}^1`, revert.headSha!), '', "the revert's tree is main's tree before the merge");
    assert.equal(git(repo, 'show', `${revert.headSha!}:NOTES.md`), 'notes');
    assert.equal(git(repo, 'status', '--porcelain'), statusBefore, "the user's checkout is untouched");
    assert.equal(git(repo, 'rev-parse', 'HEAD'), merge);
    assert.notEqual(merge, mainBefore);
    assert.equal(ctx.store.get(revert.id)!.baseRef, 'main');
  });

  it('discards: removes the worktree and branch, keeps the record closed', async () => {
    const { ctx, lane, repo } = await laneFor();
    const { change } = await lane.start({
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    await lane.runAgent(change.id, agent, user);
    const closed = await lane.discard(change.id, user);
    assert.equal(closed.lane, 'closed');
    assert.equal(closed.closedReason, 'discarded');
    assert.equal(existsSync(change.worktreePath), false);
    assert.equal(git(repo, 'branch', '--list', change.branch), '');
    assert.equal(ctx.store.get(change.id)?.lane, 'closed');
  });

  it('discards a change the moment its agent shows as finished, while the lane still records the stop', async () => {
    const { ctx, lane } = await laneFor();
    const { change } = await lane.start({
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    // What the Lanes view and a quick person see: the agent's state leaves "running".
    const discarded = new Promise<string>((resolvePromise, reject) => {
      const subscription = ctx.store.onDidChange((changed) => {
        if (changed?.id !== change.id || !changed.agentRun || changed.agentRun.state === 'running') return;
        subscription.dispose();
        lane.discard(change.id, user).then((closed) => resolvePromise(closed.lane), reject);
      });
    });
    const run = lane.runAgent(change.id, agent, user);
    assert.equal(await discarded, 'closed');
    await run;
    const actions = (await ctx.audit.eventsFor(change.id)).map((event) => event.action);
    assert.ok(
      actions.indexOf('agent.stop') < actions.indexOf('change.discard'),
      `the stop is recorded before the discard: ${actions.join(', ')}`,
    );
  });

  it('answers a chat agent: policy on each path it writes, its report redacted into the evidence, each tool call audited', async () => {
    const { ctx, lane } = await laneFor();
    const { change } = await lane.start({ task: 'Chat draft', agent: { kind: 'chat' }, actor: user, createdBy: 'dev' });
    assert.equal((await lane.toolWriteDecision(change.id, 'src/greeting.js')).effect, 'allow');
    assert.equal((await lane.toolWriteDecision(change.id, '.github/workflows/ci.yml')).effect, 'block');

    const token = `ghp_${'a1B2c3D4e5'.repeat(4).slice(0, 36)}`;
    const fields = await lane.recordAgentReport(change.id, {
      summary: `Used ${token} to fetch`,
      assumptions: ['none'],
      confidenceLimits: [],
    });
    assert.deepEqual(fields.sort(), ['assumptions', 'confidenceLimits', 'summary']);
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    assert.ok(evidence.evidence.agentReport?.summary?.startsWith('Used '));
    assert.ok(!JSON.stringify(evidence.evidence).includes(token), 'the token is not in the evidence');

    await lane.auditToolCall(change.id, { type: 'agent', id: 'vscode-chat' }, 'agentLanes_reportEvidence', { fields });
    const tools = (await ctx.audit.eventsFor(change.id)).filter((event) => event.action === 'agent.tool');
    assert.deepEqual(
      tools.map((event) => event.details),
      [{ tool: 'agentLanes_reportEvidence', fields }],
    );
  });
});
