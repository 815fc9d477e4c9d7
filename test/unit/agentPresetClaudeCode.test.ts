import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { presetAgentConfig } from '../../src/core/draft/agentPresets';
import { CLAUDE_CODE_PRESET, CLAUDE_CODE_TRANSCRIPT } from '../../src/core/draft/presets/claudeCode';
import { type InstalledAgentCli, findAgentCli, installAgentCli } from '../../src/infra/draft/agentCliCache';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import { SandboxLane } from '../../src/infra/lanes/sandbox/sandboxLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { type AnthropicStandIn, type ScriptedTurn, startAnthropicStandIn } from '../fixtures/model-standins/anthropic';
import { findLeaks } from '../fixtures/model-standins/recording';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';
import { MCP_SCRIPT, presetLane } from './support/presetLane';

// Real Claude Code (the preset's pinned version, installed once into a cache that
// outlives the run), real bubblewrap, real git; only the model is a stand-in.
const preset = CLAUDE_CODE_PRESET!;
const CACHE = process.env.AGENT_LANES_CLI_CACHE ?? join(homedir(), '.cache', 'agent-lanes', 'agent-clis');
const API_KEY = `sk-ant-api03-${'Zq7'.repeat(30)}-standin`;
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const GITHUB_TOKEN = `ghp_${'K9'.repeat(18)}`;
const user = { type: 'user' as const, id: 'dev@example.com' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
const ROOT = resolve(__dirname, '..', '..', '..');

/** The conversation: read, edit, write, run a command (and try the user's secrets), then answer. */
function script(worktree: string): ScriptedTurn[] {
  return [
    { content: [{ type: 'tool_use', name: 'Read', input: { file_path: join(worktree, 'src', 'math.js') } }] },
    {
      content: [
        { type: 'text', text: 'I will add subtract next to add.' },
        {
          type: 'tool_use',
          name: 'Edit',
          input: {
            file_path: join(worktree, 'src', 'math.js'),
            old_string: 'exports.add = (a, b) => a + b;',
            new_string: 'exports.add = (a, b) => a + b;\nexports.subtract = (a, b) => a - b;',
          },
        },
      ],
    },
    {
      content: [
        {
          type: 'tool_use',
          name: 'Write',
          input: {
            file_path: join(worktree, 'test', 'subtract.test.js'),
            content:
              "const test = require('node:test');\nconst assert = require('node:assert');\nconst { subtract } = require('../src/math');\ntest('subtracts', () => assert.strictEqual(subtract(5, 3), 2));\n",
          },
        },
      ],
    },
    { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'node --test test/', description: 'Run the tests' } }] },
    // A model gone wrong: it goes for the user's credentials and the editor's environment.
    {
      content: [
        { type: 'tool_use', name: 'Bash', input: { command: 'cat ~/.aws/credentials; env | sort; exit 7', description: 'Look around' } },
      ],
    },
    { content: [{ type: 'text', text: 'Added subtract() in src/math.js with a test; the tests pass.' }] },
  ];
}

interface Setup {
  ctx: LaneContext;
  lane: DraftLane;
  repo: string;
  standIn: AnthropicStandIn;
  close(): Promise<void>;
}

describe('Claude Code preset: the real CLI through the Draft lane (bubblewrap, egress proxy, Anthropic stand-in)', function () {
  this.timeout(600_000);
  let cli: InstalledAgentCli;
  let env: Setup | undefined;

  before(async function () {
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    if (!existsSync(MCP_SCRIPT)) execFileSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, stdio: 'inherit' });
    // First run: an npm install of the pinned version (about 400 MB, the native binary); later runs find it.
    cli = await installAgentCli(CACHE, preset, { timeoutMs: 9 * 60_000 });
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  async function setup(
    turns: (worktree: string) => ScriptedTurn[],
    options: { mcp?: boolean } = {},
  ): Promise<Setup & { worktreeTurns: (worktree: string) => void }> {
    let script: ScriptedTurn[] = [];
    const standIn = await startAnthropicStandIn({
      apiKey: API_KEY,
      model: 'claude-standin-1',
      // Not 127.0.0.1: inside the boundary that is the boundary's own loopback (the egress launcher's NO_PROXY sends
      // it there, direct); another loopback address is the host's, reached only through the proxy, listed exactly.
      host: '127.0.0.2',
      get turns() {
        return script;
      },
    });
    // Secrets a model must never see: a credentials file in the user's home, tokens in the editor's environment.
    const lane = await presetLane({
      prefix: 'lanes-claude-',
      allow: `${standIn.host}:${standIn.port}`,
      mcp: options.mcp ?? false,
      homeFiles: { '.aws/credentials': `[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = ${AWS_SECRET}\n` },
      env: { GITHUB_TOKEN },
    });
    return {
      ctx: lane.ctx,
      lane: lane.lane,
      repo: lane.repo,
      standIn,
      worktreeTurns: (worktree) => (script = turns(worktree)),
      async close() {
        await standIn.close();
        await lane.close();
      },
    };
  }

  const agentFor = (standIn: AnthropicStandIn, extraEnv: Record<string, string> = {}): AgentConfig => {
    const config = presetAgentConfig(preset, cli.program, { baseUrl: standIn.url });
    return { ...config, env: { ...config.env, ...extraEnv } };
  };

  it('edits, writes and runs a command through its own tools; the lane commits, analyses and keeps the transcript; no secret reaches the model; Sandbox passes it to Review', async () => {
    const s = await setup(script);
    env = s;
    const agent = agentFor(s.standIn);
    const { change } = await s.lane.start({
      task: 'Add subtract() with a test',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    s.worktreeTurns(change.worktreePath);
    const lines: string[] = [];
    const outcome = await s.lane.runAgent(change.id, agent, user, {
      secrets: { ANTHROPIC_API_KEY: API_KEY },
      onLine: (line, stream) => lines.push(`${stream}: ${line}`),
    });
    assert.equal(outcome.outcome, 'committed', `${outcome.message}\n${lines.slice(-30).join('\n')}`);

    // The diff the model's tool calls made, committed by the lane.
    assert.equal(
      git(s.repo, 'show', `${change.branch}:src/math.js`),
      'exports.add = (a, b) => a + b;\nexports.subtract = (a, b) => a - b;',
    );
    assert.match(git(s.repo, 'show', `${change.branch}:test/subtract.test.js`), /subtract\(5, 3\), 2/);
    assert.deepEqual(git(s.repo, 'diff', '--name-status', change.baseSha, change.branch).split('\n'), [
      'M\tsrc/math.js',
      'A\ttest/subtract.test.js',
    ]);
    const record = s.ctx.store.get(change.id)!;
    assert.equal(record.lane, 'draft');
    assert.equal(record.agentRun?.state, 'succeeded');

    // Every request matched Anthropic's description; nothing else was asked for; nothing left the allowlist.
    assert.deepEqual(s.standIn.specProblems, []);
    assert.deepEqual(s.standIn.unhandled, []);
    assert.ok(s.standIn.conversationRequests().length >= 6, 'one Messages request per turn');
    const evidence = await s.ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    const { isolation, transcript, diff } = evidence.evidence;
    assert.equal(isolation?.backend, 'process');
    assert.equal(isolation?.verified, true);
    assert.equal(isolation?.network.refusedTotal, 0, `refused: ${JSON.stringify(isolation?.network.refused)}`);
    assert.ok((isolation?.network.allowedTotal ?? 0) >= 1, 'the model API was reached through the proxy');
    assert.equal(diff?.totals.files, 2);

    // The transcript in the evidence: model, usage, tool calls, commands with exit codes, final answer.
    assert.ok(transcript, 'the evidence holds the transcript');
    assert.equal(transcript.format, 'claude-stream-json');
    // The model the CLI asked for (its default), as the API names the model that answered.
    assert.equal(transcript.model, s.standIn.conversationRequests()[0]!.model);
    assert.deepEqual(
      transcript.toolCalls.map((call) => call.name),
      ['Read', 'Edit', 'Write', 'Bash', 'Bash'],
    );
    assert.deepEqual(transcript.commands, [
      { command: 'node --test test/', exitCode: 0 },
      { command: 'cat ~/.aws/credentials; env | sort; exit 7', exitCode: 7 },
    ]);
    assert.equal(transcript.finalMessage, 'Added subtract() in src/math.js with a test; the tests pass.');
    assert.ok((transcript.usage?.outputTokens ?? 0) > 0);

    // The model saw the command's output, and in it none of the user's secrets.
    assert.deepEqual(findLeaks(s.standIn.requests, { AWS_SECRET, GITHUB_TOKEN }), []);
    // The agent's own key is in its own environment, so a command that lists it shows it to the key's own API
    // (CLAUDE_CODE_SUBPROCESS_ENV_SCRUB would hide it, but in 2.1.332 it also turns bypassPermissions back into prompts).
    assert.deepEqual(
      findLeaks(s.standIn.requests.slice(0, -1), { ANTHROPIC_API_KEY: API_KEY }, { allowedHeaders: ['x-api-key'] }),
      [],
      'before the env listing, the key went only in its header',
    );
    const last = JSON.stringify(s.standIn.conversationRequests().at(-1));
    assert.match(last, /Exit code 7/, "the model got the command's result");
    assert.match(last, /IS_SANDBOX=1/, 'the env listing reached the model: the check above is not vacuous');
    assert.ok(!readFileSync(join(s.ctx.storage.changeDir(change.id), 'agent.log'), 'utf8').includes(API_KEY), 'the key is not in the log');

    // The change moves on: Sandbox runs its task (the process sandbox here: no container engine is asked for),
    // the new test fails on the base, and the change reaches Review.
    const sandbox = new SandboxLane(s.ctx, { settings: { engine: 'docker', defaultImage: 'none' } });
    try {
      const run = await sandbox.run(change.id, user);
      assert.equal(run.verdict, 'passed', run.message);
      assert.equal(run.change.lane, 'review', run.message);
      assert.deepEqual(
        run.tasks.map((task) => [task.id, task.exitCode]),
        [['unit', 0]],
      );
      const reviewed = await s.ctx.evidence.read(change.id);
      assert.ok(reviewed.kind === 'ok' && reviewed.evidence.transcript, 'the transcript stays in the evidence the review reads');
      assert.equal(reviewed.evidence.tasks[0]?.failsOnBase, true, "the model's new test fails without the change");
    } finally {
      sandbox.dispose();
    }
  });

  it("calls the lanes' MCP server through its own MCP client: task, tasks in the sandbox, evidence, finish — each audited", async () => {
    const tool = (name: string, input: Record<string, unknown> = {}): ScriptedTurn => ({
      content: [{ type: 'tool_use', name: `mcp__agent-lanes__${name}`, input }],
    });
    const s = await setup(
      (worktree) => [
        tool('lanes_get_task'),
        {
          content: [
            {
              type: 'tool_use',
              name: 'Edit',
              input: {
                file_path: join(worktree, 'src', 'math.js'),
                old_string: 'exports.add = (a, b) => a + b;',
                new_string: 'exports.add = (a, b) => a + b;\nexports.subtract = (a, b) => a - b;',
              },
            },
          ],
        },
        tool('lanes_run_tasks'),
        tool('lanes_report_evidence', { summary: 'Added subtract() next to add().', assumptions: ['Integers only.'] }),
        tool('lanes_finish_draft'),
        { content: [{ type: 'text', text: 'Done: subtract() added; the lane ran the tests.' }] },
      ],
      { mcp: true },
    );
    env = s;
    const agent = agentFor(s.standIn);
    const { change } = await s.lane.start({ task: 'Add subtract()', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    s.worktreeTurns(change.worktreePath);
    const lines: string[] = [];
    const outcome = await s.lane.runAgent(change.id, agent, user, {
      secrets: { ANTHROPIC_API_KEY: API_KEY },
      onLine: (line, stream) => lines.push(`${stream}: ${line}`),
    });
    assert.equal(outcome.outcome, 'committed', `${outcome.message}\n${lines.slice(-30).join('\n')}`);
    assert.deepEqual(s.standIn.specProblems, []);

    // The CLI started the server from the run's MCP configuration: its init event lists the server's tools
    // (Claude Code defers MCP tools behind its tool search, so the first request need not carry them).
    const log = readFileSync(join(s.ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
    const init = log
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { type: string; subtype?: string; tools?: string[] })
      .find((event) => event.type === 'system' && event.subtype === 'init');
    assert.deepEqual(init?.tools?.filter((name) => name.startsWith('mcp__')).sort(), [
      'mcp__agent-lanes__lanes_finish_draft',
      'mcp__agent-lanes__lanes_get_task',
      'mcp__agent-lanes__lanes_report_evidence',
      'mcp__agent-lanes__lanes_run_tasks',
    ]);
    const requests = s.standIn.conversationRequests();
    // The tools' answers reached the model: its task, and the sandbox's run of the worktree as the agent left it.
    const sent = requests.map((request) => JSON.stringify(request.messages));
    assert.ok(
      sent.some((text) => text.includes('Add subtract()')),
      'lanes_get_task answered with the task',
    );
    const afterRun = sent.find((text) => text.includes('\\"unit\\"'));
    assert.ok(afterRun, `lanes_run_tasks answered with the task results: ${sent.at(-1)?.slice(-1500)}`);

    // Every call was a policy decision and an audit event on this change.
    const audit = readFileSync(s.ctx.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: { tool?: string } });
    assert.deepEqual(
      audit.filter((event) => event.action === 'agent.tool').map((event) => [event.changeId, event.details.tool]),
      ['lanes_get_task', 'lanes_run_tasks', 'lanes_report_evidence', 'lanes_finish_draft'].map((name) => [change.id, name]),
    );
    // The evidence holds what the agent reported through the server, and the transcript names the MCP calls.
    const evidence = await s.ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    assert.equal(evidence.evidence.agentReport?.summary, 'Added subtract() next to add().');
    assert.deepEqual(
      evidence.evidence.transcript?.toolCalls.map((call) => call.name),
      [
        'mcp__agent-lanes__lanes_get_task',
        'Edit',
        'mcp__agent-lanes__lanes_run_tasks',
        'mcp__agent-lanes__lanes_report_evidence',
        'mcp__agent-lanes__lanes_finish_draft',
      ],
    );
    assert.equal(
      git(s.repo, 'show', `${change.branch}:src/math.js`),
      'exports.add = (a, b) => a + b;\nexports.subtract = (a, b) => a - b;',
    );
  });

  for (const [name, fault, expected] of [
    ['401 (a wrong key)', { kind: 'unauthorized' }, /401|invalid x-api-key|authentication/i],
    ['429 with retry-after', { kind: 'rateLimited', retryAfterSeconds: 1 }, /429|rate limit/i],
    ['500', { kind: 'serverError' }, /500|Internal server error|api_error/i],
    ['a stream cut off mid-message', { kind: 'brokenStream' }, /error|terminated|socket|connection|closed/i],
  ] as const) {
    it(`when the API answers ${name}, the agent fails, the change stays in Draft with the message in its log, nothing is committed`, async () => {
      const s = await setup(script);
      env = s;
      // Fewer retries than the CLI's default, so a failure shows in seconds; the retry itself is still seen.
      const agent = agentFor(s.standIn, { CLAUDE_CODE_MAX_RETRIES: '1' });
      const { change } = await s.lane.start({
        task: 'Add subtract()',
        agent: { kind: 'cli', config: agent },
        actor: user,
        createdBy: 'dev',
      });
      s.worktreeTurns(change.worktreePath);
      s.standIn.setFault(fault);
      const outcome = await s.lane.runAgent(change.id, agent, user, { secrets: { ANTHROPIC_API_KEY: API_KEY } });
      assert.equal(outcome.outcome, 'failed', outcome.message);
      const record = s.ctx.store.get(change.id)!;
      assert.equal(record.lane, 'draft');
      assert.equal(record.agentRun?.state, 'failed');
      assert.equal(git(s.repo, 'rev-parse', change.branch), change.baseSha, 'nothing committed');
      assert.equal(git(change.worktreePath, 'status', '--porcelain'), '', 'nothing half written');
      const log = readFileSync(join(s.ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
      assert.match(log, expected, log.slice(-2000));
      assert.match(outcome.message, /It said: "(API Error|Invalid API key)/, 'the message names what the CLI said');
      if (fault.kind === 'rateLimited')
        assert.ok(s.standIn.requests.filter((r) => r.status === 429).length >= 2, 'retried after retry-after');
      assert.deepEqual(s.standIn.specProblems, []);
    });
  }

  it('without the API key it fails with a clear message and commits nothing', async () => {
    const s = await setup(script);
    env = s;
    const agent = agentFor(s.standIn);
    const { change } = await s.lane.start({ task: 'Add subtract()', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    s.worktreeTurns(change.worktreePath);
    const outcome = await s.lane.runAgent(change.id, agent, user, {});
    assert.equal(outcome.outcome, 'failed', outcome.message);
    const log = readFileSync(join(s.ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
    assert.match(log, /Not logged in/, log.slice(-2000));
    // The editor refuses earlier ("needs ANTHROPIC_API_KEY… Set Agent Secret"); here the lane still says why the CLI stopped.
    assert.match(outcome.message, /It said: "Not logged in/);
    assert.equal(git(s.repo, 'rev-parse', change.branch), change.baseSha);
    assert.equal(s.standIn.conversationRequests().length, 0, 'no request reached the model without a key');
  });

  it('a CLI that is not installed is "not found" with the install command and the tested version', async () => {
    const s = await setup(script);
    env = s;
    const missing = join(tmpdir(), 'no-such-cache', 'claude');
    const agent = presetAgentConfig(preset, missing, { baseUrl: s.standIn.url });
    const { change } = await s.lane.start({ task: 'Add subtract()', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'dev' });
    const outcome = await s.lane.runAgent(change.id, agent, user, { secrets: { ANTHROPIC_API_KEY: API_KEY } });
    assert.equal(outcome.outcome, 'notFound');
    assert.match(outcome.message, /npm install -g @anthropic-ai\/claude-code@2\.1\.332/);
    assert.match(outcome.message, /2\.1\.332 is the version Agent Lanes was tested with/);
  });

  it('a cached CLI of another version is not taken for the pinned one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lanes-cli-cache-'));
    try {
      const prefix = join(root, `${preset.id}-${preset.version}`);
      mkdirSync(join(prefix, 'node_modules', '@anthropic-ai', 'claude-code'), { recursive: true });
      writeFileSync(join(prefix, 'node_modules', '@anthropic-ai', 'claude-code', 'package.json'), JSON.stringify({ version: '2.0.0' }));
      assert.equal(await findAgentCli(root, preset), undefined);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('Claude Code transcript (stream-json)', () => {
  it('reads model, usage, tool calls, commands with exit codes and the final answer; other lines are counted', () => {
    const lines = [
      { type: 'system', subtype: 'init', model: 'claude-x', tools: ['Bash'] },
      {
        type: 'assistant',
        message: { model: 'claude-x', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'make test' } }] },
      },
      { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: 'Exit code 2\nfailed', is_error: true }] } },
      { type: 'assistant', message: { content: [{ type: 'tool_use', id: 't2', name: 'Bash', input: { command: 'ls' } }] } },
      { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't2', content: [{ type: 'text', text: 'a\nb' }] }] } },
      { type: 'assistant', message: { content: [{ type: 'tool_use', id: 't3', name: 'Bash', input: { command: 'sleep 9' } }] } },
      {
        type: 'result',
        subtype: 'success',
        result: 'All done.',
        usage: { input_tokens: 10, cache_creation_input_tokens: 5, cache_read_input_tokens: 7, output_tokens: 3 },
      },
    ];
    const transcript = CLAUDE_CODE_TRANSCRIPT!([...lines.map((line) => JSON.stringify(line)), 'not json', ''].join('\n'));
    assert.deepEqual(transcript, {
      format: 'claude-stream-json',
      model: 'claude-x',
      usage: { inputTokens: 15, outputTokens: 3, cacheReadTokens: 7 },
      toolCalls: [
        { name: 'Bash', input: 'command: make test' },
        { name: 'Bash', input: 'command: ls' },
        { name: 'Bash', input: 'command: sleep 9' },
      ],
      commands: [
        { command: 'make test', exitCode: 2 },
        { command: 'ls', exitCode: 0 },
        { command: 'sleep 9', exitCode: null },
      ],
      finalMessage: 'All done.',
      unreadLines: 1,
    });
    assert.equal(CLAUDE_CODE_TRANSCRIPT!('plain text\nonly'), undefined);
  });
});

describe('Anthropic stand-in: answers as the API does', () => {
  let standIn: AnthropicStandIn;
  before(async () => {
    standIn = await startAnthropicStandIn({ apiKey: 'sk-ant-test', turns: [{ content: [{ type: 'text', text: 'Hello.' }] }] });
  });
  after(() => standIn.close());
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${standIn.url}${path}`, {
      method: 'POST',
      headers: { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const valid = { model: 'claude-x', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] };

  it('streams a scripted turn whose events match the description, and answers without streaming too', async () => {
    const streamed = await post('/v1/messages', { ...valid, stream: true, tools: [{ name: 't', input_schema: { type: 'object' } }] });
    assert.equal(streamed.status, 200);
    const text = await streamed.text();
    assert.deepEqual(
      [...text.matchAll(/^event: (\w+)$/gm)].map((match) => match[1]),
      [
        'message_start',
        'content_block_start',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    const plain = await post('/v1/messages', valid);
    assert.equal(((await plain.json()) as { type: string }).type, 'message');
    assert.deepEqual(standIn.specProblems, []);
  });

  it('refuses what the description refuses with 400 invalid_request_error, a bad key with 401, an unknown path with 404', async () => {
    for (const body of [{ ...valid, max_tokens: 'many' }, { ...valid, mood: 'happy' }, { model: 'claude-x', messages: [] }, '{not json']) {
      const response = await post('/v1/messages', body);
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = (await response.json()) as { type: string; error: { type: string; message: string }; request_id: string };
      assert.equal(error.type, 'error');
      assert.equal(error.error.type, 'invalid_request_error');
      assert.match(error.request_id, /^req_/);
    }
    assert.equal((await post('/v1/messages', valid, { 'x-api-key': 'wrong' })).status, 401);
    assert.equal((await post('/v1/complete', valid)).status, 404);
    assert.deepEqual(standIn.unhandled, ['POST /v1/complete']);
  });

  it('answers 429 with retry-after on demand', async () => {
    standIn.setFault({ kind: 'rateLimited', retryAfterSeconds: 3 });
    const response = await post('/v1/messages', valid);
    standIn.setFault(undefined);
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '3');
    assert.equal(((await response.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
  });
});

describe('Draft lane: the transcript of an agent whose config names a format', function () {
  this.timeout(120_000);
  it('is read from the redacted stdout, redacted again, and kept in the evidence; another run without one drops it', async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-transcript-')));
    const repo = createSampleRepository(join(base, 'app'));
    const ctx = await createLaneContext(base, repo);
    const lane = new DraftLane(ctx);
    const secret = 'sk-ant-api03-transcript-secret-value';
    const token = `ghp_${'T4'.repeat(18)}`;
    const events = [
      { type: 'system', subtype: 'init', model: 'claude-scripted' },
      {
        type: 'assistant',
        message: { content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: `echo ${token} ${secret}` } }] },
      },
      { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] } },
      { type: 'result', result: `Done; the key was ${secret}.`, usage: { input_tokens: 3, output_tokens: 2 } },
    ];
    const program = `require('fs').writeFileSync('out.txt', 'x\\n'); for (const e of ${JSON.stringify(events)}) console.log(JSON.stringify(e));`;
    const agent: AgentConfig = {
      id: 'scripted-claude',
      label: 'Scripted',
      command: [process.execPath, '-e', program],
      transcript: 'claude-stream-json',
    };
    const { change } = await lane.start({
      task: 'Print a transcript',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    const outcome = await lane.runAgent(change.id, agent, user, { secrets: { SOME_KEY: secret } });
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const evidence = await ctx.evidence.read(change.id);
    assert.ok(evidence.kind === 'ok');
    const transcript = evidence.evidence.transcript!;
    assert.equal(transcript.model, 'claude-scripted');
    assert.equal(transcript.commands.length, 1);
    assert.equal(transcript.commands[0]!.exitCode, 0);
    const stored = JSON.stringify(transcript);
    assert.ok(!stored.includes(secret) && !stored.includes(token), stored);
    assert.match(transcript.commands[0]!.command, /REDACTED/);

    // The same change run again by an agent without a format: no stale transcript stays.
    writeFileSync(join(change.worktreePath, 'out.txt'), 'y\n');
    const plain: AgentConfig = {
      id: 'plain',
      label: 'Plain',
      command: [process.execPath, '-e', "require('fs').writeFileSync('out.txt', 'z\\n')"],
    };
    assert.equal((await lane.runAgent(change.id, plain, user)).outcome, 'committed');
    const after = await ctx.evidence.read(change.id);
    assert.ok(after.kind === 'ok');
    assert.equal(after.evidence.transcript, undefined);
    rmSync(base, { recursive: true, force: true });
  });
});
