import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { type AgentConfig, mcpPlaceholders } from '../../src/core/draft/agentConfig';
import { AgentRunError, type RunAgentOptions, readAgentReport, runAgent } from '../../src/infra/draft/agentRunner';
import { createStreamRedactor } from '../../src/core/redaction';
import { cleanupTemp, tempDir } from './support/draftRepo';

const SCRIPTED_AGENT = resolve(__dirname, '../../../test/fixtures/agents/scripted-agent.mjs');
const scripted: AgentConfig = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, SCRIPTED_AGENT, '{promptFile}'] };

/** Alive and not a zombie (an orphan's zombie lingers where PID 1 does not reap). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((done) => setTimeout(done, 50));
  }
  return condition();
}

function readPids(file: string): number[] {
  return readFileSync(file, 'utf8').trim().split('\n').map(Number);
}

function setup(task: string, overrides: Partial<RunAgentOptions> = {}): RunAgentOptions {
  const worktree = tempDir('lanes-wt-');
  const storage = tempDir('lanes-storage-');
  return {
    agent: scripted,
    changeId: 'a1b2c3d4',
    worktreePath: worktree,
    prompt: { task, changeId: 'a1b2c3d4', baseRef: 'main', baseSha: 'b'.repeat(40) },
    promptFile: join(storage, 'a1b2c3d4', 'prompt.md'),
    evidenceFile: join(storage, 'a1b2c3d4', 'evidence.json'),
    logFile: join(storage, 'logs', 'a1b2c3d4.log'),
    killGraceMs: 500,
    ...overrides,
  };
}

describe('agent runner (real child processes)', function () {
  this.timeout(30_000);
  const leftovers: number[] = [];
  afterEach(() => {
    for (const pid of leftovers.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    cleanupTemp();
  });

  it('runs the agent in the worktree, streams its lines to the callback and the log, and reads its report', async () => {
    const lines: string[] = [];
    const options = setup('Please add a greeting function and a test.', { onLine: (line) => lines.push(line) });
    const result = await runAgent(options);
    assert.equal(result.outcome, 'succeeded', result.message);
    assert.equal(result.exitCode, 0);
    assert.ok(existsSync(join(options.worktreePath, 'src/greeting.js')), 'the agent wrote into its cwd, the worktree');
    assert.ok(lines.includes('wrote src/greeting.js'));
    assert.match(lines[0]!, new RegExp(`scripted agent in ${options.worktreePath} for change a1b2c3d4`));
    const log = readFileSync(options.logFile, 'utf8');
    assert.match(log, /agent scripted: .*scripted-agent\.mjs .*prompt\.md/);
    assert.match(log, /wrote test\/greeting\.test\.js/);
    assert.match(log, /succeeded: Agent "Scripted agent" finished/);
    const report = await readAgentReport(options.evidenceFile);
    assert.ok('report' in report, JSON.stringify(report));
    assert.match(report.report.summary!, /wrote src\/greeting\.js/);
    assert.equal(report.report.agentVersion, 'scripted-agent 1.0.0');
  });

  it('passes {prompt} as one argument, never through a shell, with the LANES_ variables and without git redirects', async () => {
    const script =
      'console.log(JSON.stringify({ args: process.argv.slice(1), cwd: process.cwd(), env: { e: process.env.LANES_EVIDENCE_FILE, c: process.env.LANES_CHANGE_ID, w: process.env.LANES_WORKTREE, extra: process.env.EXTRA, gitDir: process.env.GIT_DIR } }))';
    const agent: AgentConfig = {
      id: 'echo',
      label: 'Echo',
      command: [process.execPath, '-e', script, '{prompt}', 'wt={worktree}'],
      env: { EXTRA: 'yes' },
    };
    const lines: string[] = [];
    const options = setup('Task with "quotes"; $(touch /tmp/lanes-pwned) && `id`', { agent, onLine: (line) => lines.push(line) });
    process.env.GIT_DIR = '/somewhere/else/.git';
    try {
      const result = await runAgent(options);
      assert.equal(result.outcome, 'succeeded', result.message);
    } finally {
      delete process.env.GIT_DIR;
    }
    const seen = JSON.parse(lines[0]!) as { args: string[]; cwd: string; env: Record<string, string | undefined> };
    assert.equal(seen.args.length, 2);
    assert.equal(seen.args[0], readFileSync(options.promptFile, 'utf8'));
    assert.match(seen.args[0]!, /\$\(touch \/tmp\/lanes-pwned\) && `id`/);
    assert.equal(seen.args[1], `wt=${options.worktreePath}`);
    assert.equal(seen.cwd, options.worktreePath);
    assert.deepEqual(seen.env, { e: options.evidenceFile, c: 'a1b2c3d4', w: options.worktreePath, extra: 'yes' });
  });

  it("wires the lanes' MCP server in only when the run has one: mcpArgs after the program, mcpEnv, its placeholders", async () => {
    // A program of its own (as a CLI is), so the arguments put right after it reach it.
    const program = join(tempDir('lanes-bin-'), 'echo-agent');
    writeFileSync(
      program,
      `#!${process.execPath}\nconsole.log(JSON.stringify({ args: process.argv.slice(2), cfg: process.env.CFG ?? null }));\n`,
      {
        mode: 0o755,
      },
    );
    const agent: AgentConfig = {
      id: 'echo',
      label: 'Echo',
      command: [program, 'first'],
      mcpArgs: ['--mcp', '{mcpConfig}', 'lanes={mcpServerToml}'],
      mcpEnv: { CFG: '{"command":{mcpCommandJson},"environment":{mcpEnvJson}}' },
    };
    const server = { command: '/usr/bin/node', args: ['/x/mcp.js', '--channel', '/run/a "b".sock'], env: { LANES_CHANGE_ID: 'a1b2c3d4' } };
    const run = async (overrides: Partial<RunAgentOptions>) => {
      const lines: string[] = [];
      const result = await runAgent(setup('Task', { agent, onLine: (line) => lines.push(line), ...overrides }));
      assert.equal(result.outcome, 'succeeded', result.message);
      return JSON.parse(lines[0]!) as { args: string[]; cfg: string | null };
    };
    // Without a server (no channel opened): nothing of the wiring, so no CLI is pointed at a server that is not there.
    assert.deepEqual(await run({}), { args: ['first'], cfg: null });
    assert.deepEqual(await run({ mcpConfigFile: '/io/mcp.json' }), { args: ['first'], cfg: null });
    const seen = await run({ mcpConfigFile: '/io/mcp.json', mcpServer: server });
    assert.deepEqual(seen.args, ['--mcp', '/io/mcp.json', `lanes=${mcpPlaceholders(server).mcpServerToml}`, 'first']);
    assert.equal(
      seen.cfg && JSON.stringify(JSON.parse(seen.cfg)),
      JSON.stringify({ command: [server.command, ...server.args], environment: server.env }),
    );
  });

  it('mcpPlaceholders: a TOML inline table whose strings keep quotes and backslashes, and JSON for the rest', () => {
    const values = mcpPlaceholders({ command: 'C:\\node.exe', args: ['a "b"'], env: { K: 'v' } });
    assert.equal(values.mcpServerToml, '{ command = "C:\\\\node.exe", args = ["a \\"b\\""], env = { K = "v" } }');
    assert.equal(values.mcpCommandJson, '["C:\\\\node.exe","a \\"b\\""]');
    assert.equal(values.mcpEnvJson, '{"K":"v"}');
  });

  it('reports a command that does not exist as notFound, naming the setting and the command', async () => {
    const agent: AgentConfig = { id: 'ghost', label: 'Ghost', command: ['lanes-no-such-agent-command', '{promptFile}'] };
    const result = await runAgent(setup('anything', { agent }));
    assert.equal(result.outcome, 'notFound');
    assert.match(result.message, /"lanes-no-such-agent-command" of agent "Ghost" was not found/);
    assert.match(result.message, /agentLanes\.agents/);
  });

  it('reports a non-zero exit with its code', async () => {
    const result = await runAgent(setup('Change nothing and exit 3.'));
    assert.equal(result.outcome, 'failed');
    assert.equal(result.exitCode, 3);
    assert.match(result.message, /exited with code 3/);
  });

  it('the premise: killing only the agent leaves its grandchild running', async () => {
    const pidFile = join(tempDir(), 'pids');
    const agent = execa(process.execPath, [SCRIPTED_AGENT, 'sleep forever'], {
      env: { SCRIPTED_AGENT_PID_FILE: pidFile },
      reject: false,
      stdio: 'ignore',
    });
    assert.ok(await waitUntil(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').split('\n').length >= 3));
    const [, grandchild] = readPids(pidFile);
    leftovers.push(grandchild!);
    agent.kill('SIGKILL');
    await agent;
    await new Promise((done) => setTimeout(done, 300));
    assert.equal(isAlive(grandchild!), true, 'the grandchild survives its parent');
  });

  it('on timeout kills the whole process tree, grandchild included', async () => {
    const pidFile = join(tempDir(), 'pids');
    const agent: AgentConfig = { ...scripted, env: { SCRIPTED_AGENT_PID_FILE: pidFile } };
    const result = await runAgent(setup('Start work and sleep forever.', { agent, timeoutMs: 1_500 }));
    assert.equal(result.outcome, 'timedOut');
    assert.match(result.message, /did not finish within 1\.5 s.*raise "timeoutSeconds" of the agent "scripted" in agentLanes\.agents/);
    const [agentPid, grandchild] = readPids(pidFile);
    leftovers.push(agentPid!, grandchild!);
    assert.ok(await waitUntil(() => !isAlive(agentPid!) && !isAlive(grandchild!)), 'agent and grandchild are gone');
  });

  it('cancels through the AbortSignal, killing the process tree', async () => {
    const pidFile = join(tempDir(), 'pids');
    const controller = new AbortController();
    const agent: AgentConfig = { ...scripted, env: { SCRIPTED_AGENT_PID_FILE: pidFile } };
    const result = await runAgent(
      setup('sleep forever', {
        agent,
        signal: controller.signal,
        onLine: (line) => {
          if (line.startsWith('still working')) controller.abort();
        },
      }),
    );
    assert.equal(result.outcome, 'cancelled');
    const [agentPid, grandchild] = readPids(pidFile);
    leftovers.push(agentPid!, grandchild!);
    assert.ok(await waitUntil(() => !isAlive(grandchild!)), 'the grandchild is gone');
  });

  it('does not start when already cancelled', async () => {
    const controller = new AbortController();
    controller.abort();
    const options = setup('add a greeting function and a test', { signal: controller.signal });
    const result = await runAgent(options);
    assert.equal(result.outcome, 'cancelled');
    assert.equal(existsSync(join(options.worktreePath, 'src/greeting.js')), false);
  });

  it('kills what the agent left running in the background when it exits', async () => {
    const pidFile = join(tempDir(), 'pids');
    const agent: AgentConfig = { ...scripted, env: { SCRIPTED_AGENT_PID_FILE: pidFile } };
    const result = await runAgent(setup('@spawn-grandchild', { agent }));
    assert.equal(result.outcome, 'succeeded');
    const [, grandchild] = readPids(pidFile);
    leftovers.push(grandchild!);
    assert.ok(await waitUntil(() => !isAlive(grandchild!)), 'the background process is gone');
  });

  it('puts requested changes from a review into the prompt file', async () => {
    const options = setup('Add a greeting', {});
    options.prompt.requestedChanges = [{ body: 'Use a template literal', path: 'src/greeting.js', line: 4 }];
    const lines: string[] = [];
    const result = await runAgent({ ...options, onLine: (line) => lines.push(line) });
    assert.equal(result.outcome, 'succeeded');
    assert.match(readFileSync(options.promptFile, 'utf8'), /# Requested changes[\s\S]*- Use a template literal \(src\/greeting\.js:4\)/);
    assert.ok(lines.includes('addressing 1 requested change(s)'));
  });

  it('redacts each line before the callback and the log', async () => {
    const lines: string[] = [];
    const options = setup('@print token=SECRET123', {
      onLine: (line) => lines.push(line),
      redactLine: (line) => line.replace(/SECRET\d+/g, '[REDACTED]'),
    });
    await runAgent(options);
    assert.ok(lines.includes('token=[REDACTED]'));
    assert.doesNotMatch(readFileSync(options.logFile, 'utf8'), /SECRET123/);
  });

  it('issue 13: a private key the agent prints reaches neither the log nor the output callback, not one body line', async () => {
    const body = Array.from({ length: 11 }, (_, i) => `MIIEow${String(i).padStart(2, '0')}${'QkFTRTY0'.repeat(7)}`);
    const key = ['-----BEGIN RSA PRIVATE KEY-----', ...body, '-----END RSA PRIVATE KEY-----'];
    const lines: string[] = [];
    const options = setup(`@print before\\n${key.join('\\n')}\\nafter`, {
      onLine: (line) => lines.push(line),
      redactStream: () => createStreamRedactor(),
    });
    await runAgent(options);
    const log = readFileSync(options.logFile, 'utf8');
    for (const line of body) {
      assert.ok(!log.includes(line), `a body line reached agent.log: ${line}`);
      assert.ok(!lines.includes(line), `a body line reached the output: ${line}`);
    }
    assert.ok(lines.includes('[REDACTED:privateKeyBlock]'), lines.join('\n'));
    assert.ok(lines.includes('before') && lines.includes('after'));
  });

  it('removes a stale report before the run, so an old one never passes for new', async () => {
    const options = setup('@evidence none');
    mkdirSync(join(options.evidenceFile, '..'), { recursive: true });
    writeFileSync(options.evidenceFile, JSON.stringify({ summary: 'from an earlier run' }));
    await runAgent(options);
    assert.deepEqual(await readAgentReport(options.evidenceFile), { missing: true });
  });

  it('reports an invalid report with the field path, and refuses a report that is a symbolic link', async () => {
    const options = setup('bad evidence');
    await runAgent(options);
    const invalid = await readAgentReport(options.evidenceFile);
    assert.ok('error' in invalid);
    assert.match(invalid.error, /summary: .*expected string/i);
    const link = join(tempDir(), 'evidence.json');
    symlinkSync('/etc/passwd', link);
    const refused = await readAgentReport(link);
    assert.ok('error' in refused && /not a regular file/.test(refused.error));
  });

  it('refuses an evidence file, prompt file or log inside the worktree', async () => {
    const options = setup('x');
    await assert.rejects(
      runAgent({ ...options, evidenceFile: join(options.worktreePath, 'evidence.json') }),
      /evidence file .* lies inside the worktree/,
    );
    await assert.rejects(
      runAgent({ ...options, logFile: join(options.worktreePath, 'sub', 'log.txt') }),
      /log file .* lies inside the worktree/,
    );
    await assert.rejects(runAgent({ ...options, promptFile: 'relative.md' }), /must be an absolute path/);
  });

  it('refuses to run when the worktree is missing', async () => {
    const options = setup('x');
    await assert.rejects(
      runAgent({ ...options, worktreePath: join(options.worktreePath, 'gone') }),
      (error: Error) => error instanceof AgentRunError && /is missing.*Reconcile/.test(error.message),
    );
  });
});
