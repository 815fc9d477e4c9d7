// Seeds a real change for the review tests: a git worktree on a lane branch
// with a commit, its evidence written through EvidenceStore, and its record
// in the repository's change store. Plain Node: the end-to-end test and the
// benchmark use it too.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Change, Lane } from '../../../src/core/change';
import type { ChangeStore } from '../../../src/core/changeStore';
import { type Evidence, type FileChange, FILE_STATUSES } from '../../../src/core/evidence';
import { EvidenceStore } from '../../../src/infra/storage/evidenceStore';
import type { RepoStorage } from '../../../src/infra/storage/repoStorage';
import { type ReviewDiffListing, listReviewDiff } from '../../../src/infra/review/reviewDiff';

export interface SeedTarget {
  root: string;
  storage: RepoStorage;
  store: ChangeStore;
}

export interface SeedOptions {
  id: string;
  title?: string;
  /** Files to write in the worktree before the commit (a Buffer for binary content). */
  files?: Record<string, string | Buffer>;
  evidence?: 'complete' | 'missing' | 'invalid';
  createdBy?: string;
  lane?: Lane;
}

export interface Seeded {
  change: Change;
  worktree: string;
  listing: ReviewDiffListing;
  evidence?: Evidence;
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Scripted Agent',
      GIT_AUTHOR_EMAIL: 'agent@example.invalid',
      GIT_COMMITTER_NAME: 'Scripted Agent',
      GIT_COMMITTER_EMAIL: 'agent@example.invalid',
    },
  }).trim();
}

export function writeFiles(root: string, files: Record<string, string | Buffer>): void {
  for (const [path, contents] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), contents);
  }
}

export const DEFAULT_FILES: Record<string, string> = {
  'src/greeting.js': 'exports.greet = (name) => `Hello, ${name}!`;\n',
  'test/greeting.test.js':
    "const test = require('node:test');\nconst assert = require('node:assert');\nconst { greet } = require('../src/greeting');\ntest('greets', () => assert.strictEqual(greet('Ada'), 'Hello, Ada!'));\n",
  'README.md': '# review-app\n\nA sample repository for Agent Lanes.\n\nNow with a greeting.\n',
};

/** Evidence as the sandbox would record it for the listed diff: every field filled. */
export function completeEvidence(
  change: Pick<Change, 'id' | 'baseSha' | 'baseRef'>,
  headSha: string,
  listing: ReviewDiffListing,
): Evidence {
  const now = new Date().toISOString();
  const files: FileChange[] = listing.files.map((file) => ({
    path: file.path,
    ...(file.oldPath !== undefined ? { oldPath: file.oldPath } : {}),
    status: (FILE_STATUSES as readonly string[]).includes(file.status) ? (file.status as FileChange['status']) : 'modified',
    additions: file.additions ?? 0,
    deletions: file.deletions ?? 0,
    binary: file.display === 'binary',
  }));
  return {
    schemaVersion: 1,
    changeId: change.id,
    agent: { id: 'scripted-agent', version: '1.4.2' },
    prompt: {
      ref: `prompt-${change.id}`,
      redacted: 'Add a greeting function and a test for it. Use the token [REDACTED:github-token] to read the issue.',
      redaction: { total: 1, byKind: { githubToken: 1 } },
    },
    base: { ref: change.baseRef, sha: change.baseSha },
    headSha,
    diff: { hash: listing.hash, files, totals: listing.totals },
    flags: [{ kind: 'newDependency', path: 'package.json', detail: 'adds left-pad@1.3.0 to dependencies' }],
    agentReport: {
      summary: 'Added greet(name) in src/greeting.js and a node:test test for it; mentioned it in the README.',
      assumptions: ['Names are plain strings; no localisation is needed.', 'The README is the only documentation to update.'],
      confidenceLimits: ['Not tested with names containing emoji.'],
      agentVersion: '1.4.2',
    },
    // What a real agent CLI's transcript gives: the review puts its claims next to the sandbox's run.
    transcript: {
      format: 'claude-stream-json',
      model: 'claude-sonnet-test',
      usage: { inputTokens: 18_240, outputTokens: 1_120 },
      toolCalls: [
        { name: 'Read', input: 'src/index.js' },
        { name: 'Write', input: 'src/greeting.js' },
        { name: 'Bash', input: 'npm test' },
      ],
      commands: [{ command: 'npm test', exitCode: 0 }],
      finalMessage: 'Added greet(name) with a test. All tests pass.',
      unreadLines: 0,
    },
    tasks: [
      {
        id: 'test',
        command: 'npm test',
        required: true,
        isolation: 'container',
        image: 'localhost/agent-lanes-sandbox:test',
        networkMode: 'none',
        outcome: 'passed',
        exitCode: 0,
        durationMs: 4210,
        counts: { passed: 2, failed: 0, skipped: 0, format: 'node' },
        logDigest: `sha256:${'ab'.repeat(32)}`,
        logTruncated: false,
        redaction: { total: 0, byKind: {} },
        failsOnBase: true,
        startedAt: now,
      },
      {
        id: 'lint',
        command: 'npm run lint',
        required: false,
        isolation: 'container',
        image: 'localhost/agent-lanes-sandbox:test',
        networkMode: 'none',
        outcome: 'passed',
        exitCode: 0,
        durationMs: 1330,
        logDigest: `sha256:${'cd'.repeat(32)}`,
        logTruncated: false,
        redaction: { total: 0, byKind: {} },
        failsOnBase: null,
        startedAt: now,
      },
    ],
    isolation: {
      backend: 'process',
      verified: true,
      sandbox: 'bubblewrap 0.8.0',
      network: {
        allow: ['registry.npmjs.org'],
        refused: [
          { host: 'telemetry.example.invalid', port: 443, at: now },
          { host: '169.254.169.254', port: 80, at: now },
        ],
        refusedTotal: 2,
        allowedTotal: 14,
      },
      limits: { timeoutSeconds: 1800, cpus: 2, memoryMb: 4096, pids: 512, diskMb: 2048 },
      notEnforced: ['cpus'],
      probes: [
        { name: 'writeOutside', outcome: 'refused', detail: 'the write to the checkout failed: read-only file system' },
        { name: 'readHome', outcome: 'refused', detail: 'the home directory is empty inside the boundary' },
        { name: 'editorEnvironment', outcome: 'refused', detail: 'no VSCODE_* variable reached the agent' },
        { name: 'connectHost', outcome: 'refused', detail: 'connecting to example.com:443 failed: refused by the proxy' },
        { name: 'push', outcome: 'refused', detail: 'the agent’s git has no remote' },
      ],
      canaryMs: 135,
    },
    decisions: [
      {
        decisionId: `d-${change.id}`,
        at: now,
        action: 'gate.sandboxToReview',
        subject: change.id,
        effect: 'allow',
        matchedRules: [{ policy: 'agent-lanes-local@1', rule: 'lanes.requiredTasks', effect: 'allow', reason: 'npm test passed' }],
        explanation: 'Every required task passed; no stop condition matched.',
      },
    ],
  };
}

/** A lane worktree with one commit of `files`, its evidence, and its record in the store. */
export async function seedChange(target: SeedTarget, options: SeedOptions): Promise<Seeded> {
  const branch = `lanes/${options.id}-review`;
  mkdirSync(target.storage.worktreesDir, { recursive: true });
  const worktree = join(target.storage.worktreesDir, options.id);
  const baseSha = git(target.root, 'rev-parse', 'HEAD');
  git(target.root, 'worktree', 'add', '-q', '-b', branch, worktree, baseSha);
  writeFiles(worktree, options.files ?? DEFAULT_FILES);
  git(worktree, 'add', '-A');
  git(worktree, 'commit', '-q', '-m', options.title ?? 'Agent work');
  const headSha = git(worktree, 'rev-parse', 'HEAD');
  const listing = await listReviewDiff(target.root, baseSha, headSha);
  const now = new Date().toISOString();
  const change: Change = {
    id: options.id,
    title: options.title ?? 'Add a greeting function',
    task: 'Add a greeting function and a test for it.',
    agentId: 'scripted-agent',
    createdBy: options.createdBy ?? 'author@example.invalid',
    baseRef: 'main',
    baseSha,
    branch,
    worktreePath: worktree,
    headSha,
    lane: options.lane ?? 'review',
    createdAt: now,
    updatedAt: now,
    sandbox: { verdict: 'passed', at: now, headSha, failedTasks: [] },
    history: [],
  };
  const evidenceStore = new EvidenceStore(target.storage);
  let evidence: Evidence | undefined;
  if ((options.evidence ?? 'complete') === 'complete') {
    evidence = completeEvidence(change, headSha, listing);
    await evidenceStore.write(evidence);
  } else if (options.evidence === 'invalid') {
    mkdirSync(dirname(evidenceStore.fileFor(change.id)), { recursive: true });
    writeFileSync(evidenceStore.fileFor(change.id), JSON.stringify({ schemaVersion: 1, changeId: change.id, agent: { id: 42 } }));
  }
  await target.store.add(change);
  return { change, worktree, listing, ...(evidence ? { evidence } : {}) };
}
