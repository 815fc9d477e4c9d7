import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { LANE_CHANNEL_METHODS } from '../../src/core/draft/laneChannel';
import { type DraftOutcome, DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { SandboxLane } from '../../src/infra/lanes/sandbox/sandboxLane';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';

const root = resolve(__dirname, '..', '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'agents');
const mcpScript = join(root, 'dist', 'mcp.js');
const user = { type: 'user' as const, id: 'dev@example.com' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
const SECRET = 'AKIAZ3MXQ7PLR4TW2KDN';

// Two tasks on the worktree as it is: one passes only when the agent's (uncommitted) file is there, one fails loudly.
const LANES_YAML = `tasks:
  - id: made
    command: test -f src/made-by-agent.txt && echo found the agent file
  - id: unit
    command: echo "expected failure output" && exit 3
`;

interface Setup {
  base: string;
  ctx: LaneContext;
  draft: DraftLane;
  repo: string;
}

async function setup(options: { script?: string; longPath?: boolean; engine?: 'podman' | 'docker' } = {}): Promise<Setup> {
  let base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-mcp-')));
  // Storage deep enough that agent-io/lanes.sock would not fit a Unix socket path: the channel goes to a short folder, bound too.
  if (options.longPath) mkdirSync((base = join(base, 'a-storage-folder-with-a-long-name-as-in-an-editors-global-storage')));
  const repo = createSampleRepository(join(base, 'app'));
  mkdirSync(join(repo, '.lanes'));
  writeFileSync(join(repo, '.lanes', 'lanes.yaml'), LANES_YAML);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'Declare the sandbox tasks');
  const ctx = await createLaneContext(base, repo);
  // No docker here: the tasks run in the process sandbox (bubblewrap, no network), which the default policy allows.
  const sandbox = new SandboxLane(ctx, { settings: { engine: 'docker', defaultImage: 'unused' } });
  const draft = new DraftLane(ctx, {
    boundarySettings: () => ({ engine: options.engine ?? 'docker', defaultImage: 'localhost/agent-lanes-sandbox:test' }),
    runTasks: (changeId, actor, signal) => sandbox.runDraftTasks(changeId, actor, { signal }),
    mcpServerScript: options.script ?? mcpScript,
    finishGraceSeconds: 1,
  });
  return { base, ctx, draft, repo };
}

type AuditLine = {
  action: string;
  changeId?: string;
  actor: { type: string; id: string };
  decisionId?: string;
  details: Record<string, unknown>;
};
const auditOf = (ctx: LaneContext): AuditLine[] =>
  readFileSync(ctx.storage.auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditLine);

async function waitFor(path: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`${path} did not appear`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

const textOf = (result: Awaited<ReturnType<Client['callTool']>>) =>
  (result.content as { type: string; text?: string }[]).map((part) => part.text ?? '').join('');

describe('agent-lanes mcp: the lanes as MCP tools for the agent of one change (real git, bubblewrap, podman, SDK client)', function () {
  this.timeout(180_000);

  before(function () {
    if (!existsSync(mcpScript) || !existsSync(join(root, 'dist', 'cli.js')))
      execFileSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
  });

  it('serves its change while the run lasts: task, tasks on the worktree as it is, redacted evidence, finish; refuses the rest and audits every call', async () => {
    const { base, ctx, draft } = await setup();
    const task = 'Add a marker file.\n@write src/made-by-agent.txt made\n@evidence none\n@sleep 120';
    const agent: AgentConfig = {
      id: 'scripted',
      label: 'Scripted agent',
      command: [process.execPath, join(fixtures, 'scripted-agent.mjs'), '{promptFile}'],
    };
    const { change } = await draft.start({ task, agent: { kind: 'cli', config: agent }, actor: user, createdBy: user.id });
    // As a review sends a change back: the requested changes go to the agent.
    const requested = { at: '2026-12-04T10:00:00.000Z', by: 'reviewer@example.com', comment: 'Name the marker after the task.' };
    await ctx.store.update(change.id, (c) => ({ ...c, requestedChanges: [requested] }));
    const running: Promise<DraftOutcome> = draft.runAgent(change.id, agent, user);
    const ioDir = join(ctx.storage.changeDir(change.id), 'agent-io');
    await waitFor(join(ioDir, 'lanes.sock'));
    await waitFor(join(change.worktreePath, 'src', 'made-by-agent.txt'));

    // The MCP configuration the run was given: the server entry an agent's CLI starts.
    const config = JSON.parse(readFileSync(join(ioDir, 'mcp.json'), 'utf8')) as {
      mcpServers: { 'agent-lanes': { command: string; args: string[]; env: Record<string, string> } };
    };
    const entry = config.mcpServers['agent-lanes'];
    assert.deepEqual(entry.args, [mcpScript, '--channel', join(ioDir, 'lanes.sock')]);
    assert.equal(entry.env.LANES_CHANGE_ID, change.id);
    const client = new Client({ name: 'lanes-test', version: '1.0.0' });
    await client.connect(new StdioClientTransport({ command: entry.command, args: entry.args, env: entry.env, stderr: 'pipe' }));
    try {
      const tools = (await client.listTools()).tools;
      assert.deepEqual(tools.map((tool) => tool.name).sort(), [...LANE_CHANNEL_METHODS].sort());
      assert.ok(tools.every((tool) => (tool.description ?? '').length > 40));

      // Links the agent plants in its exchange folder toward files of the host are never followed by the lane.
      const hostFile = join(base, 'host-only.txt');
      writeFileSync(hostFile, 'host secret, not for the agent\n');
      for (const name of ['prompt.md', 'agent-report.json']) {
        rmSync(join(ioDir, name), { force: true });
        symlinkSync(hostFile, join(ioDir, name));
      }

      const got = await client.callTool({ name: 'lanes_get_task', arguments: {} });
      assert.ok(!got.isError, textOf(got));
      const taskResult = JSON.parse(textOf(got)) as { task: string; prompt: string; changeId: string; requestedChanges: unknown[] };
      assert.equal(taskResult.changeId, change.id);
      assert.equal(taskResult.task, task);
      assert.match(taskResult.prompt, /# Task/);
      assert.deepEqual(taskResult.requestedChanges, [requested]);
      assert.match(taskResult.prompt, /# Requested changes[\s\S]*Name the marker after the task\./);

      // The tasks run now, in the sandbox, on the uncommitted worktree; nothing moves.
      const ran = await client.callTool({ name: 'lanes_run_tasks', arguments: {} });
      assert.ok(!ran.isError, textOf(ran));
      const tasks = JSON.parse(textOf(ran)) as {
        verdict: string;
        isolation: string;
        counts: Record<string, number>;
        tasks: { id: string; outcome: string; exitCode: number | null; logTail: string }[];
      };
      assert.equal(tasks.verdict, 'failed');
      assert.equal(tasks.isolation, 'process');
      assert.equal(tasks.counts.passed, 1);
      assert.equal(tasks.counts.failed, 1);
      const [made, unit] = tasks.tasks;
      assert.equal(made!.outcome, 'passed', made!.logTail);
      assert.match(made!.logTail, /found the agent file/);
      assert.equal(unit!.exitCode, 3);
      assert.match(unit!.logTail, /expected failure output/);
      const stored = ctx.store.get(change.id)!;
      assert.equal(stored.lane, 'draft');
      assert.equal(stored.sandbox, undefined);

      const reported = await client.callTool({
        name: 'lanes_report_evidence',
        arguments: {
          summary: `Wrote the marker. The key ${SECRET} was in the notes.`,
          assumptions: ['One marker is enough.'],
          confidenceLimits: ['Not tested on Windows.'],
        },
      });
      assert.ok(!reported.isError, textOf(reported));
      assert.match(textOf(reported), /"redactions": 1/);
      assert.equal(readFileSync(hostFile, 'utf8'), 'host secret, not for the agent\n', 'the planted link was replaced, not followed');
      assert.ok(!textOf(got).includes('host secret'));
      const reportFile = readFileSync(join(ioDir, 'agent-report.json'), 'utf8');
      assert.ok(!reportFile.includes(SECRET), reportFile);
      assert.match(reportFile, /REDACTED/);

      // Another change's id: refused.
      const other = await client.callTool({ name: 'lanes_get_task', arguments: { changeId: 'deadbeef' } });
      assert.equal(other.isError, true);
      assert.match(textOf(other), new RegExp(`serves change ${change.id} only; a call for change deadbeef is refused`));

      const finished = await client.callTool({ name: 'lanes_finish_draft', arguments: {} });
      assert.ok(!finished.isError, textOf(finished));
      assert.match(textOf(finished), /stays in Draft/);
      const late = await client.callTool({ name: 'lanes_report_evidence', arguments: { summary: 'one more thing' } });
      assert.equal(late.isError, true);
      assert.match(textOf(late), /has ended: the agent called lanes_finish_draft/);

      // The agent did not exit: it is stopped after the grace period and its run counts as finished, its work committed.
      const outcome = await running;
      assert.equal(outcome.outcome, 'committed', outcome.message);
      assert.equal(outcome.run?.outcome, 'succeeded');
      assert.match(outcome.run?.message ?? '', /finished its draft \(lanes_finish_draft\)/);
      assert.equal(git(change.worktreePath, 'show', 'HEAD:src/made-by-agent.txt'), 'made');
      assert.equal(outcome.change.lane, 'draft');
      const evidence = await ctx.evidence.read(change.id);
      assert.equal(evidence.kind, 'ok');
      const agentReport = evidence.kind === 'ok' ? evidence.evidence.agentReport : undefined;
      assert.match(agentReport?.summary ?? '', /^Wrote the marker\. The key \[REDACTED/);
      assert.ok(!JSON.stringify(agentReport).includes(SECRET));
      assert.deepEqual(agentReport?.confidenceLimits, ['Not tested on Windows.']);
      assert.ok(!readFileSync(ctx.storage.auditFile, 'utf8').includes(SECRET));

      // After the run: the channel is gone, and the server says so.
      const after = await client.callTool({ name: 'lanes_get_task', arguments: {} });
      assert.equal(after.isError, true);
      assert.match(textOf(after), /closed: the agent run it belonged to has ended/);
      assert.ok(!existsSync(join(ioDir, 'lanes.sock')));
    } finally {
      await client.close();
    }

    // Every call: an agent.tool event by the agent; each allowed one with its agentCall decision, each refusal a blocked one.
    const audit = auditOf(ctx).filter((event) => event.changeId === change.id);
    const calls = audit.filter((event) => event.action === 'agent.tool' && event.details.via === 'laneChannel');
    assert.deepEqual(
      calls.map((event) => `${String(event.details.tool)}:${String(event.details.outcome)}`),
      [
        'lanes_get_task:ok',
        'lanes_run_tasks:ok',
        'lanes_report_evidence:ok',
        'lanes_get_task:refused',
        'lanes_finish_draft:ok',
        'lanes_report_evidence:refused',
      ],
    );
    const decisions = new Map(
      audit
        .filter((event) => event.action === 'policy.decision' && event.details.action === 'agentCall')
        .map((event) => [event.decisionId, event]),
    );
    for (const call of calls) {
      assert.deepEqual(call.actor, { type: 'agent', id: 'scripted' });
      const decision = decisions.get(call.details.decisionId as string);
      assert.ok(decision, `a decision for ${JSON.stringify(call.details)}`);
      assert.equal(decision.details.effect, call.details.outcome === 'refused' ? 'block' : 'allow');
    }
    assert.equal(
      audit.find((event) => event.details.requestedChangeId === 'deadbeef' && event.action === 'policy.decision')?.details.effect,
      'block',
    );
    // The trial run's tasks are audited as task runs of the draft, with their runTask decisions.
    assert.equal(audit.filter((event) => event.action === 'task.run' && event.details.draft === true).length, 2);
    assert.ok(audit.some((event) => event.action === 'policy.decision' && event.details.action === 'runTask'));
  });

  it('an agent inside the process boundary starts `agent-lanes mcp` from its MCP configuration and works through it', async () => {
    // The extension lives in the home folder, which the boundary hides: its mcp.js is bound back, read-only.
    const home = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-mcp-home-')));
    const script = join(home, '.vscode', 'extensions', 'agent-lanes', 'dist', 'mcp.js');
    mkdirSync(join(script, '..'), { recursive: true });
    copyFileSync(mcpScript, script);
    const savedHome = process.env.HOME;
    process.env.HOME = home;
    try {
      const { ctx, draft } = await setup({ script, longPath: true });
      // One file with the SDK inside, as a real CLI ships: the boundary binds a script named in
      // the command, not the node_modules beside it (which may lie in a hidden folder, such as /tmp).
      const agentScript = join(home, 'mcp-agent.bundle.mjs');
      execFileSync(join(root, 'node_modules', '.bin', 'esbuild'), [
        join(fixtures, 'mcp-agent.mjs'),
        '--bundle',
        '--platform=node',
        '--format=esm',
        `--outfile=${agentScript}`,
        '--log-level=error',
        "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      ]);
      const agent: AgentConfig = {
        id: 'mcp-agent',
        label: 'MCP agent',
        command: [process.execPath, agentScript],
        isolation: 'process',
      };
      const { change } = await draft.start({
        task: 'Add src/from-mcp.js',
        agent: { kind: 'cli', config: agent },
        actor: user,
        createdBy: user.id,
      });
      const lines: string[] = [];
      const ioDir = join(ctx.storage.changeDir(change.id), 'agent-io');
      assert.ok(Buffer.byteLength(join(ioDir, 'lanes.sock')) > 103);
      const outcome = await draft.runAgent(change.id, agent, user, { onLine: (line) => lines.push(line) });
      const channel = (
        JSON.parse(readFileSync(join(ioDir, 'mcp.json'), 'utf8')) as { mcpServers: Record<string, { env: Record<string, string> }> }
      ).mcpServers['agent-lanes']!.env.LANES_CHANNEL!;
      assert.match(channel, /agent-lanes-ch-[^/]+\/lanes\.sock$/);
      assert.ok(!existsSync(join(channel, '..')), 'the short folder goes with the run');
      const said = new Map(
        lines
          .filter((line) => line.startsWith('MCP-AGENT '))
          .map((line) => JSON.parse(line.slice('MCP-AGENT '.length)) as { what: string; value: unknown })
          .map(({ what, value }) => [what, value]),
      );
      assert.equal(outcome.run?.isolation?.backend, 'process', lines.join('\n'));
      assert.equal(outcome.run?.isolation?.verified, true);
      assert.deepEqual(said.get('tools'), [...LANE_CHANNEL_METHODS].sort(), lines.join('\n'));
      assert.equal(said.get('task'), 'Add src/from-mcp.js');
      const tasks = said.get('tasks') as { verdict: string; tasks: { id: string; outcome: string }[] };
      assert.equal(tasks.verdict, 'failed', JSON.stringify(tasks));
      assert.deepEqual(
        tasks.tasks.map((task) => `${task.id}:${task.outcome}`),
        ['made:failed', 'unit:failed'],
      );
      assert.match(String(said.get('report')), /1 secret-like value/);
      assert.match(String(said.get('finish')), /Your turn on change/);
      assert.deepEqual(said.get('after'), {
        isError: true,
        text: `The draft of change ${change.id} has ended: the agent called lanes_finish_draft, and no further call is accepted.`,
      });
      // The agent exited by itself after finishing: an ordinary successful run, its file committed, its report redacted.
      assert.equal(outcome.outcome, 'committed', outcome.message);
      assert.equal(outcome.run?.outcome, 'succeeded');
      assert.match(git(change.worktreePath, 'show', 'HEAD:src/from-mcp.js'), /lanes channel/);
      const evidence = await ctx.evidence.read(change.id);
      const summary = evidence.kind === 'ok' ? evidence.evidence.agentReport?.summary : undefined;
      assert.match(summary ?? '', /^Added src\/from-mcp\.js\. Key \[REDACTED/);
      const calls = auditOf(ctx).filter((event) => event.changeId === change.id && event.action === 'agent.tool');
      assert.equal(calls.length, 5);
      assert.ok(calls.every((event) => event.actor.id === 'mcp-agent'));
    } finally {
      if (savedHome === undefined) delete process.env.HOME;
      else process.env.HOME = savedHome;
    }
  });
  it("an agent in the container boundary starts the same server from its configuration (the image's node, mcp.js mounted read-only)", async function () {
    if (spawnSync('podman', ['image', 'exists', 'localhost/agent-lanes-sandbox:test']).status !== 0) this.skip();
    const { ctx, draft } = await setup({ engine: 'podman' });
    // No SDK in the image: this agent speaks MCP's JSON-RPC over the server's stdio itself.
    const rawClient = `
      const { spawn } = require('node:child_process');
      const { readFileSync } = require('node:fs');
      const entry = JSON.parse(readFileSync(process.env.LANES_MCP_CONFIG, 'utf8')).mcpServers['agent-lanes'];
      const server = spawn(entry.command, entry.args, { env: { ...entry.env, PATH: process.env.PATH }, stdio: ['pipe', 'pipe', 'inherit'] });
      const waiting = new Map();
      let buffered = '';
      server.stdout.on('data', (chunk) => {
        buffered += chunk;
        let at;
        while ((at = buffered.indexOf('\\n')) >= 0) {
          const message = JSON.parse(buffered.slice(0, at));
          buffered = buffered.slice(at + 1);
          waiting.get(message.id)?.(message);
        }
      });
      let next = 1;
      const send = (method, params) => new Promise((done) => {
        const id = next++;
        waiting.set(id, done);
        server.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\\n');
      });
      (async () => {
        await send('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
        server.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\\n');
        const task = await send('tools/call', { name: 'lanes_get_task', arguments: {} });
        console.log('RAW-TASK ' + JSON.stringify(JSON.parse(task.result.content[0].text).task));
        const finish = await send('tools/call', { name: 'lanes_finish_draft', arguments: {} });
        console.log('RAW-FINISH ' + JSON.stringify(finish.result.isError === true));
        server.kill();
      })();
    `;
    const agent: AgentConfig = { id: 'raw-mcp', label: 'Raw MCP agent', command: ['node', '-e', rawClient], isolation: 'container' };
    const { change } = await draft.start({
      task: 'Say hello from the container',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: user.id,
    });
    const lines: string[] = [];
    const outcome = await draft.runAgent(change.id, agent, user, { onLine: (line) => lines.push(line) });
    assert.equal(outcome.run?.isolation?.backend, 'container', outcome.message);
    assert.ok(lines.includes('RAW-TASK "Say hello from the container"'), lines.join('\n'));
    assert.ok(lines.includes('RAW-FINISH false'), lines.join('\n'));
    const calls = auditOf(ctx).filter((event) => event.changeId === change.id && event.action === 'agent.tool');
    assert.deepEqual(
      calls.map((event) => `${String(event.details.tool)}:${String(event.details.outcome)}`),
      ['lanes_get_task:ok', 'lanes_finish_draft:ok'],
    );
  });
  it('without a channel the server still lists its tools, and each call says what is missing', async () => {
    const client = new Client({ name: 'lanes-test', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [join(root, 'dist', 'cli.js'), 'mcp'], env: {}, stderr: 'pipe' }),
    );
    try {
      assert.equal((await client.listTools()).tools.length, LANE_CHANNEL_METHODS.length);
      const result = await client.callTool({ name: 'lanes_get_task', arguments: {} });
      assert.equal(result.isError, true);
      assert.match(textOf(result), /No lane channel: LANES_CHANNEL is not set and --channel was not given/);
    } finally {
      await client.close();
    }
  });
});
