import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { presetAgentConfig } from '../../src/core/draft/agentPresets';
import { CODEX_PRESET, CODEX_TRANSCRIPT } from '../../src/core/draft/presets/codex';
import type { Evidence } from '../../src/core/evidence';
import { type InstalledAgentCli, installAgentCli } from '../../src/infra/draft/agentCliCache';
import { checkPresetCli } from '../../src/infra/draft/agentPresetCheck';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { SandboxLane } from '../../src/infra/lanes/sandbox/sandboxLane';
import { type FailureMode, type OpenAiStandIn, type ScriptStep, startOpenAiStandIn } from '../fixtures/model-standins/openai';
import { MCP_SCRIPT, presetLane } from './support/presetLane';

// The real Codex CLI (installed once into a cache that outlives the run), in
// the real process boundary (bubblewrap), talking through the egress proxy to
// a loopback stand-in of OpenAI's Responses API, on a real git repository.
const preset = CODEX_PRESET!;
const root = resolve(__dirname, '..', '..', '..');
const CACHE = process.env.AGENT_LANES_CLI_CACHE ?? join(homedir(), '.cache', 'agent-lanes', 'agent-clis');
const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const STANDIN_HOST = '127.0.0.2';
const user = { type: 'user' as const, id: 'dev@example.com' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

const PATCH = [
  '*** Begin Patch',
  '*** Update File: src/math.js',
  '@@',
  ' exports.add = (a, b) => a + b;',
  '+exports.multiply = (a, b) => a * b;',
  '*** Add File: test/multiply.test.js',
  "+const test = require('node:test');",
  "+const assert = require('node:assert');",
  "+const { multiply } = require('../src/math');",
  "+test('multiplies', () => assert.strictEqual(multiply(2, 3), 6));",
  '*** End Patch',
].join('\n');

const FINAL = 'Added multiply() to src/math.js and a test for it in test/multiply.test.js.';

/** The model's side: read a file, run a command, edit through apply_patch, run a failing command, then say what it did. */
function script(seen: string[]): ScriptStep[] {
  return [
    () => ({ kind: 'function_call', name: 'exec_command', arguments: { cmd: 'cat README.md src/math.js' } }),
    (request) => {
      seen.push(request.toolOutputs[0]?.output ?? '');
      return {
        kind: 'function_call',
        name: 'exec_command',
        arguments: { cmd: "node -e \"console.log('sum', require('./src/math').add(2, 3))\"" },
      };
    },
    (request) => {
      seen.push(request.toolOutputs[1]?.output ?? '');
      return { kind: 'custom_tool_call', name: 'apply_patch', input: PATCH };
    },
    (request) => {
      seen.push(request.toolOutputs[2]?.output ?? '');
      return { kind: 'function_call', name: 'exec_command', arguments: { cmd: 'ls no-such-folder' } };
    },
    (request) => {
      seen.push(request.toolOutputs[3]?.output ?? '');
      return { kind: 'message', text: FINAL };
    },
  ];
}

interface Setup {
  ctx: LaneContext;
  lane: DraftLane;
  repo: string;
  base: string;
  standIn: OpenAiStandIn;
  apiKey: string;
  homeSecret: string;
  editorToken: string;
  seen: string[];
  agent: AgentConfig;
  close(): Promise<void>;
}

async function setup(cli: InstalledAgentCli, options: { steps?: (seen: string[]) => ScriptStep[]; mcp?: boolean } = {}): Promise<Setup> {
  const apiKey = `sk-proj-${randomBytes(24).toString('hex')}`;
  const seen: string[] = [];
  // Not 127.0.0.1: inside the boundary the egress launcher's NO_PROXY sends 127.0.0.1 to the agent's own
  // loopback (its network namespace), so a stand-in on the host is reached at another loopback address.
  const standIn = await startOpenAiStandIn({ apiKey, script: (options.steps ?? script)(seen), host: STANDIN_HOST });
  // A secret in the user's home folder and a token in the editor's environment: neither may reach the model.
  const homeSecret = `home-secret-${randomBytes(12).toString('hex')}`;
  const editorToken = `ghp_${randomBytes(18).toString('hex').slice(0, 36)}`;
  const lane = await presetLane({
    prefix: 'lanes-codex-',
    allow: `${STANDIN_HOST}:${standIn.port}`,
    mcp: options.mcp ?? false,
    homeFiles: { '.config/token.txt': `${homeSecret}\n` },
    env: { GITHUB_TOKEN: editorToken },
  });
  return {
    ctx: lane.ctx,
    lane: lane.lane,
    repo: lane.repo,
    base: lane.base,
    standIn,
    apiKey,
    homeSecret,
    editorToken,
    seen,
    agent: presetAgentConfig(preset, cli.program, { baseUrl: standIn.baseUrl }),
    async close() {
      await standIn.close();
      // The folders go after the suite (`made`), so a failure's logs can still be read while it runs.
      await lane.close({ keep: true });
    },
  };
}

const readEvidence = async (ctx: LaneContext, id: string): Promise<Evidence> => {
  const read = await ctx.evidence.read(id);
  assert.equal(read.kind, 'ok');
  return (read as { evidence: Evidence }).evidence;
};

describe('Codex CLI preset: the real CLI in the process boundary against an OpenAI stand-in', function () {
  this.timeout(15 * 60_000);
  let cli: InstalledAgentCli;
  let env: Setup | undefined;
  const made: string[] = [];

  before(async () => {
    cli = await installAgentCli(CACHE, preset);
    if (!existsSync(MCP_SCRIPT)) execFileSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
  });
  afterEach(async () => {
    if (env) made.push(env.base);
    await env?.close();
    env = undefined;
  });
  after(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  it('installs the pinned version and knows it', async () => {
    assert.equal(cli.version, preset.version);
    assert.deepEqual(await checkPresetCli(preset, cli.program), { ok: true, version: preset.version });
  });

  it('edits files through its own tools, the lane commits and analyses, the evidence holds its transcript, and the change is promoted on', async () => {
    env = await setup(cli);
    const { lane, ctx, standIn } = env;
    const { change } = await lane.start({
      task: 'Add a multiply function to src/math.js with a test.',
      agent: { kind: 'cli', config: env.agent },
      actor: user,
      createdBy: user.id,
    });
    const outcome = await lane.runAgent(change.id, env.agent, user, { secrets: { CODEX_API_KEY: env.apiKey }, timeoutMs: 5 * 60_000 });
    const log = readFileSync(join(ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
    assert.equal(outcome.outcome, 'committed', `${outcome.message}\n${log.slice(-4000)}`);

    // The stand-in: every request followed OpenAI's description (less the named extensions), and so did every answer.
    assert.deepEqual(standIn.selfCheck, []);
    const posts = standIn.requests.filter((request) => request.method === 'POST' && request.path === '/v1/responses');
    assert.equal(posts.filter((request) => request.status === 200).length, 5, 'one request per scripted step');
    for (const request of posts) assert.deepEqual(request.violations, [], `request ${request.body.slice(0, 200)}`);
    assert.ok(posts.every((request) => request.headers.authorization === `Bearer ${env!.apiKey}`));
    // The tools really ran in the worktree: the file was read, the command ran, the patch applied, the failure was seen.
    assert.match(env.seen[0] ?? '', /A sample repository for Agent Lanes/);
    assert.match(env.seen[1] ?? '', /sum 5/);
    assert.match(env.seen[2] ?? '', /Success|src\/math\.js/);
    assert.match(env.seen[3] ?? '', /No such file|cannot access/);

    // Nothing of the user's home or the editor's environment reached the model.
    for (const request of standIn.requests) {
      const text = `${JSON.stringify(request.headers)}\n${request.body}`;
      assert.ok(!text.includes(env.homeSecret), 'the secret in the home folder never reaches a model request');
      assert.ok(!text.includes(env.editorToken), "the editor's GITHUB_TOKEN never reaches a model request");
    }

    // The lane committed and analysed exactly the agent's edit.
    const files = outcome.change.headSha ? git(env.repo, 'diff', '--name-status', `${change.baseSha}..${outcome.change.headSha}`) : '';
    assert.equal(files, 'M\tsrc/math.js\nA\ttest/multiply.test.js');
    assert.match(git(env.repo, 'show', `${outcome.change.headSha}:src/math.js`), /exports\.multiply = \(a, b\) => a \* b;/);
    const evidence = await readEvidence(ctx, change.id);
    assert.deepEqual(
      evidence.diff?.files.map((file) => [file.path, file.status]),
      [
        ['src/math.js', 'modified'],
        ['test/multiply.test.js', 'added'],
      ],
    );
    assert.equal(evidence.isolation?.backend, 'process');
    assert.equal(evidence.isolation?.verified, true);
    assert.deepEqual(evidence.isolation?.network.allow, [`${STANDIN_HOST}:${standIn.port}`]);
    assert.ok(
      !log.includes(env.apiKey) && !JSON.stringify(evidence).includes(env.apiKey),
      'the API key is redacted from the log and the evidence',
    );

    // The transcript, read from the CLI's real --json output.
    const transcript = evidence.transcript;
    assert.ok(transcript, 'the evidence holds the transcript');
    assert.equal(transcript.format, 'codex-jsonl');
    assert.deepEqual(
      transcript.toolCalls.map((call) => call.name),
      ['exec_command', 'exec_command', 'apply_patch', 'exec_command'],
    );
    assert.match(transcript.toolCalls[2]?.input ?? '', /src\/math\.js/);
    assert.deepEqual(
      transcript.commands.map((command) => command.exitCode),
      [0, 0, 2],
    );
    assert.match(transcript.commands[0]?.command ?? '', /cat README\.md src\/math\.js/);
    assert.equal(transcript.finalMessage, FINAL);
    assert.ok(transcript.usage && transcript.usage.inputTokens > 0 && transcript.usage.outputTokens > 0, JSON.stringify(transcript.usage));
    // The same output, read again, gives the same transcript (the parser is pure).
    const stdout = log
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .join('\n');
    const { model, modelFrom, ...fromOutput } = transcript;
    assert.deepEqual({ ...CODEX_TRANSCRIPT!(stdout), unreadLines: 0 }, { ...fromOutput, unreadLines: 0 });
    // Codex's events name no model: the evidence takes the one its command line asked for, and says so.
    assert.deepEqual({ model, modelFrom }, { model: 'gpt-5.5', modelFrom: 'command' });
    // To refresh the recorded output the transcript's own test reads (test/fixtures/agents/codex-exec.jsonl).
    if (process.env.AGENT_LANES_RECORD_CODEX_OUTPUT)
      writeFileSync(process.env.AGENT_LANES_RECORD_CODEX_OUTPUT, `${stdout.split(env.base).join('/tmp/lanes-codex-run')}\n`);

    // The change moves on: the Sandbox runs its tests in a container and promotes it to Review.
    const sandbox = new SandboxLane(ctx, {
      settings: { engine: 'podman', defaultImage: IMAGE, extensionRoot: root },
      upTimeoutMs: 120_000,
    });
    try {
      const promoted = await sandbox.run(change.id, user);
      assert.equal(promoted.verdict, 'passed', promoted.message);
      assert.equal(promoted.change.lane, 'review', promoted.message);
    } finally {
      // The change's container stays up for Review in the product; a test leaves nothing running.
      await sandbox.removeContainers(change.id).catch(() => undefined);
      sandbox.dispose();
    }
  });
  it("starts the lanes' MCP server from its `-c mcp_servers` override (its tools sit behind Codex's tool search)", async () => {
    // Codex 0.171.0 defers every MCP tool behind its client-side `tool_search`, which OpenAI's published
    // description of the Responses API this stand-in checks against does not cover; so the model asks Codex
    // about the configured server through the plain `list_mcp_resources` tool instead, once for the lanes'
    // server and once for a name no configuration gives.
    env = await setup(cli, {
      mcp: true,
      steps: (seen) => [
        () => ({ kind: 'function_call', name: 'list_mcp_resources', arguments: { server: 'agent-lanes' } }),
        (request) => {
          seen.push(request.toolOutputs.at(-1)?.output ?? '');
          return { kind: 'function_call', name: 'list_mcp_resources', arguments: { server: 'not-configured' } };
        },
        (request) => {
          seen.push(request.toolOutputs.at(-1)?.output ?? '');
          return { kind: 'message', text: FINAL };
        },
      ],
    });
    const { lane, ctx } = env;
    const { change } = await lane.start({
      task: 'Look around.',
      agent: { kind: 'cli', config: env.agent },
      actor: user,
      createdBy: user.id,
    });
    const outcome = await lane.runAgent(change.id, env.agent, user, { secrets: { CODEX_API_KEY: env.apiKey }, timeoutMs: 5 * 60_000 });
    const log = readFileSync(join(ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
    assert.notEqual(outcome.outcome, 'failed', `${outcome.message}\n${log.slice(-4000)}`);
    assert.deepEqual(env.standIn.selfCheck, []);
    assert.equal(env.seen.length, 2, log.slice(-3000));
    const [lanes, unknown] = env.seen as [string, string];
    // The lanes' server ran and answered over MCP (it serves tools, no resources); the other name is unknown to Codex.
    assert.match(lanes, /resources\/list failed for `agent-lanes`: Mcp error: -32601: Method not found/, lanes);
    assert.match(unknown, /unknown MCP server 'not-configured'/, unknown);
  });

  it('asks a program its version once, and again when the file changed (a copy replaced after the check is refused)', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-codex-swap-')));
    made.push(dir);
    const program = join(dir, 'codex');
    const calls = join(dir, 'calls');
    writeFileSync(program, `#!/bin/sh\necho x >> '${calls}'\necho "codex-cli 0.171.0"\n`, { mode: 0o755 });
    assert.deepEqual(await checkPresetCli(preset, program), { ok: true, version: preset.version });
    assert.deepEqual(await checkPresetCli(preset, program), { ok: true, version: preset.version });
    assert.equal(readFileSync(calls, 'utf8'), 'x\n', 'the second pick did not run --version again');
    writeFileSync(program, `#!/bin/sh\necho x >> '${calls}'\necho "codex-cli 0.170.0 (swapped)"\n`, { mode: 0o755 });
    const swapped = await checkPresetCli(preset, program);
    assert.equal(swapped.ok, false);
    assert.equal(readFileSync(calls, 'utf8'), 'x\nx\n');
  });

  it('refuses a CLI at an untested version with the tested version and the command that installs it', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-codex-old-')));
    made.push(dir);
    const old = join(dir, 'codex');
    writeFileSync(old, '#!/bin/sh\necho "codex-cli 0.170.0"\n', { mode: 0o755 });
    const check = await checkPresetCli(preset, old);
    assert.equal(check.ok, false);
    assert.ok(!check.ok);
    assert.equal(check.version, '0.170.0');
    assert.match(check.message, /version 0\.170\.0, but Agent Lanes has tested 0\.171\.0 only/);
    assert.match(check.message, /npm install --prefix <folder> --ignore-scripts @openai\/codex@0\.171\.0/);
  });

  it('without an API key, a run fails in Draft with Codex saying so', async () => {
    env = await setup(cli);
    await failedRun(env, undefined, /401 Unauthorized: You didn't provide an API key/);
  });

  for (const [name, mode, message] of [
    ['a wrong key (401)', { status: 401 }, /401 Unauthorized: Incorrect API key provided/],
    ['a rate limit (429 with retry-after)', { status: 429, retryAfterSeconds: 1 }, /429 Too Many Requests|Rate limit reached/],
    ['a server error (500)', { status: 500 }, /experiencing high demand/],
    ['a broken stream', { status: 'brokenStream' }, /stream disconnected before completion|stream closed before response\.completed/],
  ] as const) {
    it(`fails in Draft on ${name}, with Codex's message in the log and nothing committed`, async () => {
      env = await setup(cli);
      const requests = await failedRun(env, mode, message);
      if (mode.status === 429)
        assert.ok(requests.filter((request) => request.status === 429).length >= 1, 'the stand-in answered 429 with retry-after');
    });
  }
});

/** Runs the agent against a stand-in that fails one way; the change must stay in Draft, unchanged, with the reason in its log. */
async function failedRun(env: Setup, mode: FailureMode | undefined, message: RegExp) {
  env.standIn.failWith(mode);
  const { change } = await env.lane.start({
    task: 'Add a multiply function to src/math.js with a test.',
    agent: { kind: 'cli', config: env.agent },
    actor: user,
    createdBy: user.id,
  });
  const outcome = await env.lane.runAgent(change.id, env.agent, user, {
    ...(mode ? { secrets: { CODEX_API_KEY: mode.status === 401 ? 'sk-proj-wrong-key-0000' : env.apiKey } } : {}),
    timeoutMs: 4 * 60_000,
  });
  const log = readFileSync(join(env.ctx.storage.changeDir(change.id), 'agent.log'), 'utf8');
  assert.equal(outcome.outcome, 'failed', `${outcome.message}\n${log.slice(-3000)}`);
  assert.equal(outcome.change.lane, 'draft');
  assert.equal(outcome.change.agentRun?.state, 'failed');
  assert.match(log, message);
  assert.match(log, /"type":"turn\.failed"/);
  // Nothing half committed: the lane branch is still at the base.
  assert.equal(git(env.repo, 'rev-parse', change.branch), change.baseSha);
  assert.deepEqual(env.standIn.selfCheck, []);
  return env.standIn.requests;
}
