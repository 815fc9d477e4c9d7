// The crash test: a process that runs the lanes (as the extension host does)
// starts an agent and is killed with SIGKILL mid-run; a new one opens the
// repository and must find the run, stop what is left of it, keep its work
// and audit `agent.interrupted`. This file is also that process: run with
// LANES_CRASH_CHILD set, it starts the agent and waits to be killed.
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { consoleLogger } from './support/consoleLogger';
import { PolicyService } from '../../src/infra/policy/policyService';
import { RepositoryLanes } from '../../src/infra/lanes/repositoryLanes';
import { createSampleRepository } from '../runners/fixtures.mjs';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const scriptedAgent = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };

interface CrashPlan {
  base: string;
  repo: string;
  agent: AgentConfig;
}

function openLanes(plan: Pick<CrashPlan, 'base' | 'repo'>): Promise<RepositoryLanes> {
  const logger = consoleLogger(true);
  return RepositoryLanes.open(plan.repo, join(plan.repo, '.git'), {
    storageRoot: join(plan.base, 'storage'),
    policy: new PolicyService({}, { cacheFile: join(plan.base, 'policy-cache.json'), logger }),
    logger,
    sandboxSettings: () => ({ engine: 'podman', defaultImage: IMAGE }),
  });
}

/** The process that gets killed: starts a draft and its agent, says so, and waits. */
async function crashChild(plan: CrashPlan): Promise<void> {
  const lanes = await openLanes(plan);
  const { change } = await lanes.draft.start({
    task: 'Run until killed',
    agent: { kind: 'cli', config: plan.agent },
    actor: user,
    createdBy: 'dev',
  });
  let said = false;
  await lanes.draft.runAgent(change.id, plan.agent, user, {
    // The agents print "started" once their partial work is on disk.
    onLine: (line) => {
      if (said || line.trim() !== 'started') return;
      said = true;
      process.stdout.write(`STARTED ${change.id}\n`);
    },
  });
}

if (process.env.LANES_CRASH_CHILD) {
  crashChild(JSON.parse(process.env.LANES_CRASH_CHILD) as CrashPlan).catch((error: Error) => {
    process.stdout.write(`FAILED ${error.message}\n`);
    process.exit(1);
  });
} else {
  describe('Agent runs survive nothing of a crash (SIGKILL of the lanes process mid-run)', function () {
    this.timeout(180_000);

    async function crashMidRun(agent: AgentConfig): Promise<{ plan: CrashPlan; changeId: string }> {
      const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-crash-')));
      const plan: CrashPlan = { base, repo: createSampleRepository(join(base, 'app')), agent };
      const child = spawn(process.execPath, [__filename], {
        env: { ...process.env, LANES_CRASH_CHILD: JSON.stringify(plan) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const changeId = await new Promise<string>((done, fail) => {
        let text = '';
        child.stdout.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          const started = /STARTED ([0-9a-f]{8})/.exec(text);
          if (started) done(started[1]!);
          if (/FAILED/.test(text)) fail(new Error(text));
        });
        child.once('exit', (code) => fail(new Error(`the lanes process ended by itself (${code}): ${text}`)));
      });
      // The editor's extension host dies at once, with no chance to clean up.
      child.kill('SIGKILL');
      await new Promise((done) => child.once('close', done));
      return { plan, changeId };
    }

    async function recoverAndCheck(plan: CrashPlan, changeId: string): Promise<RepositoryLanes> {
      const lanes = await openLanes(plan);
      const change = lanes.context.store.get(changeId)!;
      assert.equal(change.agentRun?.state, 'interrupted', JSON.stringify(change.agentRun));
      assert.deepEqual(
        lanes.interruptedAtOpen.map((c) => c.id),
        [changeId],
        'the editor is told, to offer Finish Draft or Discard',
      );
      assert.match(change.agentRun?.message ?? '', /Finish Draft/);
      assert.equal(change.lane, 'draft');
      await lanes.context.audit.flush();
      const events = readFileSync(lanes.context.storage.auditFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { action: string; changeId?: string });
      assert.ok(events.some((event) => event.action === 'agent.interrupted' && event.changeId === changeId));
      // Its partial work is kept: Finish Draft commits it.
      const finished = await lanes.draft.finish(changeId, { actor: user });
      assert.equal(finished.outcome, 'committed', finished.message);
      return lanes;
    }

    it('process boundary: the agent dies with the lanes process, and the next start marks the run interrupted', async () => {
      const agent: AgentConfig = {
        id: 'slow',
        label: 'Slow agent',
        command: [
          process.execPath,
          scriptedAgent,
          '@write partial.txt work before the crash\n@print started\n@spawn-grandchild\n@sleep forever',
        ],
      };
      const { plan, changeId } = await crashMidRun(agent);
      const worktree = join(plan.base, 'storage');
      const lanes = await recoverAndCheck(plan, changeId);
      const left = execFileSync('sh', ['-c', `ps -eo args | grep -F -- ${JSON.stringify(worktree)} | grep -v grep || true`], {
        encoding: 'utf8',
      }).trim();
      assert.equal(left, '', 'no agent process survives');
      await lanes.close();
    });

    it('container boundary: the container outlives the crash, and the next start removes it', async function () {
      if (!execFileSync('sh', ['-c', `podman image exists ${IMAGE} && echo yes || true`], { encoding: 'utf8' }).includes('yes'))
        this.skip();
      const agent: AgentConfig = {
        id: 'slow-container',
        label: 'Slow agent in a container',
        isolation: 'container',
        command: [
          'node',
          '-e',
          "require('fs').writeFileSync('partial.txt', 'work before the crash\\n'); console.log('started'); setInterval(() => {}, 1000)",
        ],
      };
      const { plan, changeId } = await crashMidRun(agent);
      const running = () =>
        execFileSync('podman', ['ps', '--all', '--quiet', '--filter', `label=agent-lanes.change=${changeId}`], { encoding: 'utf8' }).trim();
      assert.notEqual(running(), '', 'the premise: the container survived the crash');
      const lanes = await recoverAndCheck(plan, changeId);
      assert.equal(running(), '', 'no agent container survives');
      await lanes.close();
    });
  });
}
