import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentPreset, TRANSCRIPT_PARSERS, findPreset, presetAgentConfig } from '../../src/core/draft/agentPresets';
import { installAgentCli } from '../../src/infra/draft/agentCliCache';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { startGeminiStandIn } from '../fixtures/model-standins/gemini';
import { startChatStandIn } from '../fixtures/model-standins/openaiChat';
import { presetLane } from './support/presetLane';

// Gemini CLI and OpenCode, each run once for real through the Draft lane, inside the process boundary (real
// bubblewrap, real egress proxy), against a loopback stand-in of its model API that scripts a conversation in which
// the model writes a file and runs commands. The CLIs are downloaded from npm at their pinned versions (about 450 MB
// together) into LANES_AGENT_CLI_CACHE (default: <tmp>/lanes-agent-clis), which the boundary hides like the
// extension's own storage, so the preset's program is bound in the way the product binds it.
// LANES_TEST_TRANSCRIPT_DIR, when set, receives each CLI's raw standard output (for the transcript fixtures).
const ENABLED = process.env.LANES_TEST_EXTRA_AGENTS === '1';
const SKIP_REASON =
  'set LANES_TEST_EXTRA_AGENTS=1 to run: CI runs the Claude Code and Codex scenarios; Gemini CLI and OpenCode are tested on demand (each downloads its CLI from npm)';

const user = { type: 'user' as const, id: 'dev@example.com' };
const API_KEY = 'lanes-test-key-not-a-secret-0123456789';
const cacheRoot = process.env.LANES_AGENT_CLI_CACHE ?? join(tmpdir(), 'lanes-agent-clis');

/** An address of this machine that is not loopback: the agent's client then goes through the proxy (NO_PROXY names loopback). */
function standInHost(): string {
  if (process.env.LANES_STANDIN_HOST) return process.env.LANES_STANDIN_HOST;
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  return '127.0.0.1';
}

interface RunResult {
  outcome: string;
  message: string;
  stdout: string;
  stderr: string;
  worktree: string;
  branch: string;
  repo: string;
  evidence: Awaited<ReturnType<LaneContext['evidence']['read']>>;
  /** The lanes' MCP tools the agent called, from the audit log. */
  toolEvents: string[];
}

/** Installs the preset's CLI, opens a lane on a sample repository with policy allowing only the stand-in, and runs the agent. */
async function runPreset(preset: AgentPreset, standInUrl: string, allow: string): Promise<RunResult> {
  const installed = await installAgentCli(cacheRoot, preset);
  // With the lanes' MCP server, as the editor runs it: the preset wires it into the CLI's own configuration.
  const { ctx, lane, repo, close } = await presetLane({ prefix: `lanes-preset-${preset.id}-`, allow, mcp: true });
  try {
    const agent = { ...presetAgentConfig(preset, installed.program, { baseUrl: standInUrl }), timeoutSeconds: 300 };
    const { change } = await lane.start({
      task: 'Create hello.txt saying hello, then run the checks.',
      agent: { kind: 'cli', config: agent },
      actor: user,
      createdBy: 'dev',
    });
    let stdout = '';
    let stderr = '';
    const outcome = await lane.runAgent(change.id, agent, user, {
      secrets: { [preset.apiKeyVar]: API_KEY },
      onLine: (line, stream) => {
        if (stream === 'stdout') stdout += `${line}\n`;
        else stderr += `${line}\n`;
      },
    });
    if (process.env.LANES_TEST_TRANSCRIPT_DIR) {
      mkdirSync(process.env.LANES_TEST_TRANSCRIPT_DIR, { recursive: true });
      writeFileSync(join(process.env.LANES_TEST_TRANSCRIPT_DIR, `${preset.id}-${preset.version}.jsonl`), stdout);
      writeFileSync(join(process.env.LANES_TEST_TRANSCRIPT_DIR, `${preset.id}-${preset.version}.stderr.txt`), stderr);
    }
    return {
      outcome: outcome.outcome,
      message: outcome.message,
      stdout,
      stderr,
      worktree: change.worktreePath,
      branch: change.branch,
      repo,
      evidence: await ctx.evidence.read(change.id),
      toolEvents: readFileSync(ctx.storage.auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: { tool?: string } })
        .filter((event) => event.action === 'agent.tool' && event.changeId === change.id)
        .map((event) => event.details.tool ?? ''),
    };
  } finally {
    await close({ keep: true });
  }
}

const show = (repo: string, branch: string, path: string) =>
  execFileSync('git', ['show', `${branch}:${path}`], { cwd: repo, encoding: 'utf8' });

(ENABLED ? describe : describe.skip)(`Real agent CLIs through the process boundary (${ENABLED ? 'on demand' : SKIP_REASON})`, function () {
  this.timeout(900_000);

  it('Gemini CLI: writes a file and runs commands against a Gemini API stand-in, reached only through the egress proxy', async () => {
    const preset = findPreset('gemini-cli')!;
    const standIn = await startGeminiStandIn({
      apiKey: API_KEY,
      host: standInHost(),
      script: [
        // The lanes' MCP server first, under the name Gemini CLI gives its tools.
        { functionCalls: [{ name: 'mcp_agent-lanes_lanes_get_task', args: {} }] },
        {
          text: 'I will create the file.',
          functionCalls: [{ name: 'write_file', args: { file_path: 'hello.txt', content: 'hello from gemini\n' } }],
        },
        {
          functionCalls: [
            {
              name: 'run_shell_command',
              args: { command: 'cat hello.txt > ran.txt && git status --short', description: 'Copy and check' },
            },
          ],
        },
        { functionCalls: [{ name: 'run_shell_command', args: { command: 'exit 3', description: 'A failing check' } }] },
        { text: 'Created hello.txt and ran the checks.' },
      ],
    });
    try {
      const allow = new URL(standIn.url).host;
      const result = await runPreset(preset, standIn.url, allow);
      console.log(
        `      gemini-cli ${preset.version}: ${result.outcome}; requests: ${standIn.requests.map((r) => `${r.model}:${r.action}${r.turn === undefined ? '' : `#${r.turn}`}`).join(', ')}`,
      );
      assert.equal(result.outcome, 'committed', `${result.message}\n${result.stderr}`);
      const offered = [...new Set(standIn.requests.flatMap((request) => request.toolNames))].filter((name) => name.includes('lanes_'));
      console.log(`      lanes MCP tools offered to the model: ${offered.join(', ')}`);
      assert.equal(offered.length, 4, 'the CLI started the lanes MCP server from its settings and offered its four tools');
      const answer = JSON.stringify(standIn.requests.find((request) => request.turn === 1)?.functionResponses ?? []);
      assert.match(answer, /Create hello\.txt saying hello/, `lanes_get_task answered with the task: ${answer.slice(0, 500)}`);
      assert.deepEqual(result.toolEvents, ['lanes_get_task'], 'the call was audited on the change');
      assert.equal(
        show(result.repo, result.branch, 'hello.txt'),
        'hello from gemini\n',
        'the file the model asked for is in the lane commit',
      );
      assert.equal(
        show(result.repo, result.branch, 'ran.txt'),
        'hello from gemini\n',
        'the command the model asked for ran in the worktree',
      );
      assert.ok(
        standIn.requests.length > 0 && standIn.requests.every((request) => request.keyMatched),
        'every request carried the API key',
      );
      assert.deepEqual(
        standIn.requests.filter((request) => request.withTools).map((request) => request.turn),
        [0, 1, 2, 3, 4],
        'the whole scripted conversation was played',
      );
      assert.ok(result.evidence.kind === 'ok');
      const isolation = result.evidence.evidence.isolation!;
      assert.equal(isolation.backend, 'process');
      assert.equal(isolation.verified, true);
      assert.deepEqual(isolation.network.allow, [allow]);
      console.log(`      refused connections: ${JSON.stringify(isolation.network.refused)} (${isolation.network.refusedTotal})`);
      assert.equal(isolation.network.refusedTotal, 0, 'with usage statistics and updates off the CLI asks for nothing but the model API');
      const transcript = TRANSCRIPT_PARSERS['gemini-stream-json']!(result.stdout);
      assert.ok(transcript, 'the output is stream-json');
      assert.deepEqual(
        transcript.toolCalls.map((call) => call.name),
        ['mcp_agent-lanes_lanes_get_task', 'write_file', 'run_shell_command', 'run_shell_command'],
      );
      assert.deepEqual(
        transcript.commands.map((command) => command.exitCode),
        [0, 3],
      );
      assert.equal(transcript.finalMessage, 'Created hello.txt and ran the checks.');
      console.log(`      transcript: ${JSON.stringify(transcript)}`);
    } finally {
      await standIn.close();
    }
  });

  it('OpenCode: writes a file and runs commands against a Chat Completions stand-in, reached only through the egress proxy', async () => {
    const preset = findPreset('opencode')!;
    const standIn = await startChatStandIn({
      apiKey: API_KEY,
      host: standInHost(),
      script: [
        // The lanes' MCP server first, under the name OpenCode gives its tools.
        { toolCalls: [{ name: 'agent-lanes_lanes_get_task', args: {} }] },
        // With a GPT-5 model OpenCode offers apply_patch in place of write and edit.
        {
          text: 'I will create the file.',
          toolCalls: [
            { name: 'apply_patch', args: { patchText: '*** Begin Patch\n*** Add File: hello.txt\n+hello from opencode\n*** End Patch' } },
          ],
        },
        {
          toolCalls: [{ name: 'bash', args: { command: 'cat hello.txt > ran.txt && git status --short', description: 'Copy and check' } }],
        },
        { toolCalls: [{ name: 'bash', args: { command: 'exit 3', description: 'A failing check' } }] },
        { text: 'Created hello.txt and ran the checks.' },
      ],
    });
    try {
      const allow = new URL(standIn.url).host;
      const result = await runPreset(preset, standIn.url, allow);
      console.log(
        `      opencode ${preset.version}: ${result.outcome}; requests: ${standIn.requests.map((r) => `${r.path}${r.turn === undefined ? '' : `#${r.turn}`}`).join(', ')}`,
      );
      assert.equal(result.outcome, 'committed', `${result.message}\n${result.stderr}`);
      const offered = [...new Set(standIn.requests.flatMap((request) => request.toolNames))].filter((name) => name.includes('lanes_'));
      console.log(`      lanes MCP tools offered to the model: ${offered.join(', ')}`);
      assert.equal(offered.length, 4, 'the CLI started the lanes MCP server from its configuration and offered its four tools');
      const answer = JSON.stringify(standIn.requests.find((request) => request.turn === 1)?.toolResults ?? []);
      assert.match(answer, /Create hello\.txt saying hello/, `lanes_get_task answered with the task: ${answer.slice(0, 500)}`);
      assert.deepEqual(result.toolEvents, ['lanes_get_task'], 'the call was audited on the change');
      assert.equal(show(result.repo, result.branch, 'hello.txt'), 'hello from opencode\n');
      assert.equal(show(result.repo, result.branch, 'ran.txt'), 'hello from opencode\n');
      assert.ok(
        standIn.requests.length > 0 && standIn.requests.every((request) => request.keyMatched),
        'every request carried the API key',
      );
      assert.deepEqual(
        standIn.requests.filter((request) => request.withTools).map((request) => request.turn),
        [0, 1, 2, 3, 4],
        'the whole scripted conversation was played',
      );
      assert.ok(result.evidence.kind === 'ok');
      const isolation = result.evidence.evidence.isolation!;
      assert.equal(isolation.backend, 'process');
      assert.equal(isolation.verified, true);
      console.log(`      refused connections: ${JSON.stringify(isolation.network.refused)} (${isolation.network.refusedTotal})`);
      // 1.18.33 installs @opencode-ai/plugin into its config folder at every start, with no switch to turn it off.
      assert.deepEqual(
        [...new Set(isolation.network.refused.map((record) => `${record.host}:${record.port}`))],
        ['registry.npmjs.org:443'],
      );
      const transcript = TRANSCRIPT_PARSERS['opencode-json']!(result.stdout);
      assert.ok(transcript, 'the output is JSON events');
      assert.deepEqual(
        transcript.toolCalls.map((call) => call.name),
        ['agent-lanes_lanes_get_task', 'apply_patch', 'bash', 'bash'],
      );
      assert.deepEqual(
        transcript.commands.map((command) => command.exitCode),
        [0, 3],
      );
      assert.equal(transcript.finalMessage, 'Created hello.txt and ran the checks.');
      console.log(`      transcript: ${JSON.stringify(transcript)}`);
    } finally {
      await standIn.close();
    }
  });
});
