// Writes a large, valid, hash-chained audit log for the metrics benchmark:
// every event is sealed by the product's own sealEvent, so `agent-lanes audit
// verify` accepts the log. Changes run the lanes as the product records them
// (change.create, agent.start, policy decisions, lane transitions, review,
// pull request), with requested changes, blocked gates, re-runs and discards
// mixed in, many of them in flight at once, over several months.
// The generator tallies what it wrote, so a benchmark can check the metrics.
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_HASH, genesisDetails, sealEvent, type AuditEventInput } from '../../../src/core/audit/audit';

/** Bump when the events written change: cached logs of another version are not reused. */
const GENERATOR_VERSION = 1;

export const BENCH_REPO_KEY = '5ee0c0de'.repeat(8);
const AGENTS = ['codex', 'claude-code', 'aider', 'copilot-agent', 'gemini-cli'];
const USERS = ['ana@example.com', 'bo@example.com', 'chen@example.com', 'dev@example.com', 'eli@example.com', 'fay@example.com'];
const POLICY = 'acme-platform@14';
const START = Date.UTC(2026, 0, 5, 8);
/** Simulated time between events: 10,000,000 events span about eight months. */
const MS_PER_EVENT = 2_100;
const IN_FLIGHT = 48;

export interface StageTally {
  drafted: number;
  sandboxPassed: number;
  approved: number;
  prOpened: number;
  merged: number;
}

export interface GeneratedLog {
  file: string;
  events: number;
  changes: number;
  /** Per agent: the stages its changes reached, and the rework recorded. */
  agents: Record<string, StageTally & { requestedChangesRounds: number; agentReruns: number }>;
}

/** Deterministic PRNG (mulberry32): the same log on every machine. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 8 hex digits like the product's change ids, distinct for every index (an odd multiplier is a bijection mod 2^32). */
function changeId(index: number): string {
  return (Math.imul(index + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0');
}

interface Change {
  id: string;
  agent: string;
  user: string;
  steps: AuditEventInput[];
  next: number;
}

/** The events one change records, in order, from its draft to its end. */
function script(index: number, rand: () => number): Change {
  const id = changeId(index);
  const agent = AGENTS[Math.floor(rand() * rand() * AGENTS.length)]!;
  const user = USERS[index % USERS.length]!;
  const dev = { type: 'user' as const, id: user };
  const ext = { type: 'extension' as const, id: 'agent-lanes' };
  const branch = `lanes/${id}`;
  const promptRef = `prompt:${id}`;
  const steps: AuditEventInput[] = [];
  const move = (event: string, from: string, to: string, actor: AuditEventInput['actor'] = dev) =>
    steps.push({ actor, action: 'lane.transition', changeId: id, details: { event, from, to } });
  const decision = (action: string, effect: string, explanation: string, extra: Record<string, unknown> = {}) =>
    steps.push({
      actor: ext,
      action: 'policy.decision',
      changeId: id,
      policy: POLICY,
      decisionId: `${id}-${steps.length}`,
      details: { action, effect, subject: id, explanation, ...extra },
    });
  const run = () =>
    steps.push({
      actor: dev,
      action: 'agent.start',
      changeId: id,
      details: { agentId: agent, command: agent, promptRef, isolation: rand() < 0.7 ? 'container' : 'worktree' },
    });
  steps.push({
    actor: dev,
    action: 'change.create',
    changeId: id,
    details: {
      title: `Change ${index}: fix the ${['parser', 'login form', 'cache', 'exporter', 'scheduler'][index % 5]}`,
      agentId: agent,
      baseRef: 'main',
      baseSha: (Math.imul(index, 0x85ebca6b) >>> 0).toString(16).padStart(8, '0').repeat(5),
      branch,
      promptRef,
      warnings: [],
      worktree: 'new',
    },
  });
  run();
  if (rand() < 0.05) {
    steps.push({ actor: dev, action: 'change.discard', changeId: id, details: { reason: 'not needed' } });
    return { id, agent, user, steps, next: 0 };
  }
  if (rand() < 0.3) decision('agentCall', 'allow', `agent ${agent} read the task`);
  move('promote', 'draft', 'sandbox');
  if (rand() < 0.12) {
    decision('gate.sandboxToReview', 'block', 'a required task failed: npm test', {
      rules: [{ rule: 'requiredTasks', effect: 'block', policy: POLICY }],
    });
    move('sendBack', 'sandbox', 'draft');
    run();
    move('promote', 'draft', 'sandbox');
  }
  decision('gate.sandboxToReview', 'allow', 'required tasks passed');
  move('promote', 'sandbox', 'review');
  if (rand() < 0.06) {
    steps.push({ actor: dev, action: 'review.reject', changeId: id, details: { comment: 'wrong approach' } });
    move('reject', 'review', 'closed');
    return { id, agent, user, steps, next: 0 };
  }
  const rounds = rand() < 0.2 ? 1 + Math.floor(rand() * 2) : 0;
  for (let round = 0; round < rounds; round++) {
    steps.push({ actor: dev, action: 'review.requestChanges', changeId: id, details: { comment: 'please add a test' } });
    move('requestChanges', 'review', 'draft');
    run();
    move('promote', 'draft', 'sandbox');
    move('promote', 'sandbox', 'review');
  }
  steps.push({
    actor: dev,
    action: 'review.approve',
    changeId: id,
    details: { diffHash: `sha256:${id}`, evidenceHash: `sha256:${branch}` },
  });
  const files = 1 + Math.floor(rand() * 12);
  const blocked = rand() < 0.04;
  decision('createPullRequest', blocked ? 'requireApproval' : 'allow', blocked ? 'touches a protected path' : 'within limits', {
    facts: { files: Array.from({ length: Math.min(files, 3) }, (_, i) => ({ path: `src/m${i}.ts`, additions: 10 + i, deletions: i })) },
    ...(blocked ? { rules: [{ rule: 'protectedPaths', effect: 'requireApproval', policy: POLICY }] } : {}),
  });
  move('promote', 'review', 'pullRequest');
  const failed = rand() < 0.03;
  steps.push({
    actor: dev,
    action: 'pr.create',
    changeId: id,
    details: failed
      ? { outcome: 'failed', error: 'remote rejected' }
      : { outcome: 'created', number: index + 1, url: `https://git.example.com/acme/app/pull/${index + 1}` },
  });
  if (failed) return { id, agent, user, steps, next: 0 };
  const merged = rand() < 0.85;
  steps.push({ actor: ext, action: 'pr.closed', changeId: id, details: { number: index + 1, state: merged ? 'merged' : 'closed' } });
  move(merged ? 'pullRequestMerged' : 'pullRequestClosed', 'pullRequest', 'closed', ext);
  return { id, agent, user, steps, next: 0 };
}

const emptyTally = () => ({ drafted: 0, sandboxPassed: 0, approved: 0, prOpened: 0, merged: 0, requestedChangesRounds: 0, agentReruns: 0 });

/**
 * Writes `count` events to `file` (streamed) and returns what it wrote. The
 * last changes may stop partway, as a log read mid-work does.
 */
export async function writeAuditLog(file: string, count: number): Promise<GeneratedLog> {
  const rand = random(17);
  const out = createWriteStream(file);
  const agents: GeneratedLog['agents'] = {};
  const reached = new Map<string, { runs: number; passed: boolean }>();
  const genesis = sealEvent({
    seq: 1,
    at: new Date(START).toISOString(),
    actor: { type: 'extension', id: 'agent-lanes' },
    action: 'audit.created',
    details: genesisDetails(BENCH_REPO_KEY),
    prevHash: GENESIS_HASH,
  });
  let prevHash = genesis.event.hash;
  let chunk = `${genesis.line}\n`;
  const active: Change[] = [];
  let changes = 0;
  for (let seq = 2; seq <= count; seq++) {
    while (active.length < IN_FLIGHT) active.push(script(changes++, rand));
    const slot = Math.floor(rand() * active.length);
    const change = active[slot]!;
    const step = change.steps[change.next++]!;
    if (change.next === change.steps.length) {
      active[slot] = active[active.length - 1]!;
      active.pop();
    }
    const { event, line } = sealEvent({
      seq,
      at: new Date(START + seq * MS_PER_EVENT).toISOString(),
      actor: step.actor,
      action: step.action,
      changeId: step.changeId,
      details: step.details ?? {},
      policy: step.policy,
      decisionId: step.decisionId,
      prevHash,
    });
    prevHash = event.hash;
    tally(agents, reached, change, step);
    chunk += `${line}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.write(chunk);
  out.end();
  await once(out, 'finish');
  return { file, events: count, changes: reached.size, agents };
}

function tally(
  agents: GeneratedLog['agents'],
  reached: Map<string, { runs: number; passed: boolean }>,
  change: Change,
  step: AuditEventInput,
): void {
  const figures = (agents[change.agent] ??= emptyTally());
  const details = step.details ?? {};
  switch (step.action) {
    case 'change.create':
      reached.set(change.id, { runs: 0, passed: false });
      figures.drafted++;
      break;
    case 'agent.start': {
      const state = reached.get(change.id)!;
      if (state.runs++ > 0) figures.agentReruns++;
      break;
    }
    case 'lane.transition': {
      const state = reached.get(change.id)!;
      if (details.from === 'sandbox' && details.to === 'review' && !state.passed) {
        state.passed = true;
        figures.sandboxPassed++;
      }
      break;
    }
    case 'review.approve':
      figures.approved++;
      break;
    case 'review.requestChanges':
      figures.requestedChangesRounds++;
      break;
    case 'pr.create':
      if (details.outcome !== 'failed') figures.prOpened++;
      break;
    case 'pr.closed':
      if (details.state === 'merged') figures.merged++;
      break;
    default:
      break;
  }
}

/**
 * The log of `count` events, generated once and kept under the system's
 * temporary folder (keyed by the generator version), so later runs reuse it.
 */
export async function cachedAuditLog(count: number): Promise<GeneratedLog> {
  const dir = join(tmpdir(), 'agent-lanes-bench');
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `metrics-v${GENERATOR_VERSION}-${count}`);
  const file = `${base}.jsonl`;
  const summary = `${base}.json`;
  if (existsSync(file) && existsSync(summary)) return { ...(JSON.parse(readFileSync(summary, 'utf8')) as GeneratedLog), file };
  const partial = `${base}.partial-${process.pid}`;
  const generated = await writeAuditLog(partial, count);
  renameSync(partial, file);
  writeFileSync(summary, JSON.stringify({ ...generated, file }));
  return { ...generated, file };
}
