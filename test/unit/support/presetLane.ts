import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DraftLane } from '../../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../../src/infra/lanes/laneContext';
import { SandboxLane } from '../../../src/infra/lanes/sandbox/sandboxLane';
import { createSampleRepository } from '../../runners/fixtures.mjs';
import { createLaneContext } from './laneContext';
import { PolicyServer } from './policyServer';

/** The extension's `agent-lanes mcp` (node esbuild.mjs makes it). */
export const MCP_SCRIPT = resolve(__dirname, '..', '..', '..', 'dist', 'mcp.js');

export interface PresetLane {
  base: string;
  repo: string;
  /** The HOME the run sees from the editor's side (the boundary hides it from the agent). */
  home: string;
  ctx: LaneContext;
  lane: DraftLane;
  /** Restores HOME and the variables set, stops the policy server and the sandbox; removes `base` unless kept. */
  close(options?: { keep?: boolean }): Promise<void>;
}

/**
 * What every real-CLI preset test needs around its agent: a sample repository
 * with one sandbox task, a HOME of its own (with the files a test plants), the
 * editor's environment as the test sets it, org policy from a real HTTP server
 * allowing the process boundary and only `allow` as egress, and the Draft lane
 * (with the lanes' MCP server and the process sandbox when `mcp`).
 */
export async function presetLane(options: {
  prefix: string;
  allow: string;
  mcp?: boolean;
  lanesYaml?: string;
  homeFiles?: Record<string, string>;
  env?: Record<string, string>;
}): Promise<PresetLane> {
  const base = realpathSync(mkdtempSync(join(tmpdir(), options.prefix)));
  const repo = createSampleRepository(join(base, 'app'));
  mkdirSync(join(repo, '.lanes'));
  writeFileSync(
    join(repo, '.lanes', 'lanes.yaml'),
    options.lanesYaml ?? 'tasks:\n  - id: unit\n    command: node --test test/\n    test: true\n',
  );
  execFileSync('git', ['add', '-A'], { cwd: repo });
  execFileSync('git', ['commit', '-q', '-m', 'Declare the sandbox tasks'], { cwd: repo });
  const home = join(base, 'home');
  mkdirSync(home, { recursive: true });
  for (const [path, content] of Object.entries({ '.gitconfig': '[user]\n\temail = dev@example.com\n', ...options.homeFiles })) {
    mkdirSync(join(home, path, '..'), { recursive: true });
    writeFileSync(join(home, path), content, { mode: 0o600 });
  }
  const variables = { HOME: home, ...options.env };
  const saved = Object.fromEntries(Object.keys(variables).map((name) => [name, process.env[name]]));
  Object.assign(process.env, variables);
  const policy = await new PolicyServer().start();
  policy.handler = (_request, response) =>
    response.end(
      `apiVersion: agentlanes.dev/v1\nmetadata: { id: preset-test, version: "1" }\nlanes:\n  agent:\n    isolation: [process]\n    network: { allow: ["${options.allow}"] }\n`,
    );
  const ctx = await createLaneContext(base, repo, { policySettings: { endpoint: policy.url() } });
  await ctx.policy.start();
  const sandbox = options.mcp ? new SandboxLane(ctx, { settings: { engine: 'docker', defaultImage: 'none' } }) : undefined;
  const lane = sandbox
    ? new DraftLane(ctx, {
        mcpServerScript: MCP_SCRIPT,
        runTasks: (changeId, actor, signal) => sandbox.runDraftTasks(changeId, actor, { signal }),
      })
    : new DraftLane(ctx);
  return {
    base,
    repo,
    home,
    ctx,
    lane,
    async close({ keep = false } = {}) {
      sandbox?.dispose();
      await policy.stop();
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      if (!keep) rmSync(base, { recursive: true, force: true });
    },
  };
}
