// Agent preset benchmark: what the Draft lane adds around a real agent CLI.
//   agent.presetOverheadRatio              one scripted Claude Code run through the lane (DraftLane.runAgent: boundary,
//                                          canary, the CLI, commit, analysis, transcript) ÷ the same CLI and conversation
//                                          run directly in the same boundary (openBoundary, the wrapped command to its
//                                          exit, close): the median of the rounds' own ratios (each round runs both, one
//                                          right after the other, in alternating order, so a slow moment of the machine
//                                          weighs on both sides of its ratio), 7 rounds after one unmeasured run of each;
//                                          agent.presetOverheadRatio.medians is the ratio of the two sides' medians
//   agent.presetOverheadRatio.claudeCode   the same figure, named for the preset
//   agent.presetRunMs.claudeCode           the lane's run, median ms
// The model is the Anthropic stand-in (test/fixtures/model-standins). Needs Linux x64, bubblewrap and the CLI in the
// cache (installed on first run, ~400 MB); otherwise skipped with the reason on stderr.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { substitutePlaceholders } from '../../src/core/draft/agentConfig';
import { presetAgentConfig } from '../../src/core/draft/agentPresets';
import { composePrompt } from '../../src/core/draft/draft';
import { CLAUDE_CODE_PRESET } from '../../src/core/draft/presets/claudeCode';
import { installAgentCli } from '../../src/infra/draft/agentCliCache';
import { openBoundary, probeProcessBackend } from '../../src/infra/draft/boundary/agentBoundary';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import { type ScriptedTurn, startAnthropicStandIn } from '../fixtures/model-standins/anthropic';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from '../unit/support/laneContext';
import { consoleLogger } from '../unit/support/consoleLogger';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CACHE = process.env.AGENT_LANES_CLI_CACHE ?? join(homedir(), '.cache', 'agent-lanes', 'agent-clis');
const API_KEY = `sk-ant-api03-${'Bq4'.repeat(30)}-bench`;
const user = { type: 'user' as const, id: 'bench@example.com' };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Read, edit, run the tests, answer: the conversation both sides replay. */
const turns = (worktree: string): ScriptedTurn[] => [
  { content: [{ type: 'tool_use', name: 'Read', input: { file_path: join(worktree, 'src', 'math.js') } }] },
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
  { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'node --test test/', description: 'Run the tests' } }] },
  { content: [{ type: 'text', text: 'Added subtract().' }] },
];

async function main(): Promise<void> {
  const preset = CLAUDE_CODE_PRESET!;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.error('agent preset bench skipped: Linux x64 only');
    console.log('BENCH_RESULT {}');
    return;
  }
  const probe = await probeProcessBackend();
  if (!probe.available) {
    console.error(`agent preset bench skipped: ${probe.message}`);
    console.log('BENCH_RESULT {}');
    return;
  }
  const cli = await installAgentCli(CACHE, preset);
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-bench-preset-')));
  const repo = createSampleRepository(join(base, 'app'));
  let script: ScriptedTurn[] = [];
  const standIn = await startAnthropicStandIn({
    apiKey: API_KEY,
    host: '127.0.0.2',
    get turns() {
      return script;
    },
  });
  const allow = [`${standIn.host}:${standIn.port}`];
  const policyServer: Server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/yaml' });
    response.end(
      `apiVersion: agentlanes.dev/v1\nmetadata: { id: preset-bench, version: "1" }\nlanes:\n  agent:\n    isolation: [process]\n    network: { allow: ["${allow[0]}"] }\n`,
    );
  });
  await new Promise<void>((done) => policyServer.listen(0, '127.0.0.1', () => done()));
  const policyUrl = `http://127.0.0.1:${(policyServer.address() as { port: number }).port}/policy.yaml`;
  const ctx = await createLaneContext(base, repo, { logger: consoleLogger(false), policySettings: { endpoint: policyUrl } });
  await ctx.policy.start();
  const lane = new DraftLane(ctx);
  const agent = presetAgentConfig(preset, cli.program, { baseUrl: standIn.url });

  const throughLane = async (): Promise<number> => {
    const { change } = await lane.start({ task: 'Add subtract()', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'bench' });
    script = turns(change.worktreePath);
    const start = performance.now();
    const outcome = await lane.runAgent(change.id, agent, user, { secrets: { ANTHROPIC_API_KEY: API_KEY } });
    const elapsed = performance.now() - start;
    if (outcome.outcome !== 'committed') throw new Error(`lane run: ${outcome.message}`);
    console.error(
      `lane run ${elapsed.toFixed(0)} ms: agent run ${outcome.run?.durationMs} ms (canary ${outcome.run?.isolation?.canaryMs} ms), commit and analysis ${(elapsed - (outcome.run?.durationMs ?? 0)).toFixed(0)} ms`,
    );
    return elapsed;
  };

  const direct = async (): Promise<number> => {
    const { change } = await lane.start({ task: 'Add subtract()', agent: { kind: 'cli', config: agent }, actor: user, createdBy: 'bench' });
    script = turns(change.worktreePath);
    const dir = join(base, 'direct', change.id);
    const ioDir = join(dir, 'agent-io');
    mkdirSync(ioDir, { recursive: true, mode: 0o700 });
    const prompt = composePrompt({ task: change.task, changeId: change.id, baseRef: change.baseRef, baseSha: change.baseSha });
    const argv = substitutePlaceholders(agent.command, { prompt, promptFile: join(ioDir, 'prompt.md'), worktree: change.worktreePath });
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: process.env.LANG ?? 'C.UTF-8',
      TMPDIR: '/tmp',
      GIT_TERMINAL_PROMPT: '0',
      ...agent.env,
      ANTHROPIC_API_KEY: API_KEY,
    };
    const start = performance.now();
    const boundary = await openBoundary({
      backend: 'process',
      changeId: change.id,
      repoRoot: repo,
      worktreePath: change.worktreePath,
      branch: change.branch,
      headSha: change.baseSha,
      runDir: join(dir, 'agent-run'),
      ioDir,
      hiddenFolders: [join(base, 'storage')],
      canaryFolders: [dir],
      argv,
      env,
      allow,
      limits: { timeoutSeconds: 600 },
    });
    const { command } = boundary;
    const result = await execa(command.file, command.args, {
      cwd: command.cwd,
      env: command.env,
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
    });
    await boundary.close();
    const elapsed = performance.now() - start;
    console.error(`direct run ${elapsed.toFixed(0)} ms`);
    if (result.exitCode !== 0) throw new Error(`direct run: exit ${result.exitCode}: ${result.stderr.slice(-500)}`);
    if (!execFileSync('git', ['status', '--porcelain'], { cwd: change.worktreePath, encoding: 'utf8' }).includes('src/math.js'))
      throw new Error('direct run: the CLI did not edit the file');
    return elapsed;
  };

  try {
    await throughLane();
    await direct();
    const ours: number[] = [];
    const plain: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which goes first, so neither always gets the warmer cache.
      if (round % 2 === 0) {
        plain.push(await direct());
        ours.push(await throughLane());
      } else {
        ours.push(await throughLane());
        plain.push(await direct());
      }
    }
    console.error(
      `lane: ${ours.map((ms) => ms.toFixed(0)).join(', ')} ms; direct in the boundary: ${plain.map((ms) => ms.toFixed(0)).join(', ')} ms`,
    );
    const ratio = Number(median(ours.map((ms, round) => ms / plain[round]!)).toFixed(3));
    console.log(
      `BENCH_RESULT ${JSON.stringify({
        'agent.presetOverheadRatio': ratio,
        'agent.presetOverheadRatio.claudeCode': ratio,
        'agent.presetOverheadRatio.medians': Number((median(ours) / median(plain)).toFixed(3)),
        'agent.presetRunMs.claudeCode': Math.round(median(ours)),
      })}`,
    );
  } finally {
    policyServer.close();
    await standIn.close();
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
