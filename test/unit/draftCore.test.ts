import assert from 'node:assert/strict';
import { parseAgentsSetting, substitutePlaceholders } from '../../src/core/draft/agentConfig';
import { MAX_AGENT_REPORT_BYTES, parseAgentReport } from '../../src/core/draft/agentEvidence';
import {
  type RepositoryState,
  assessDraftStart,
  changeIdFromLaneName,
  composePrompt,
  laneBranchName,
  slugify,
} from '../../src/core/draft/draft';
import { countUncommitted, parsePorcelainV2, parseWorktreeList, unquoteGitPath } from '../../src/core/git/gitOutput';

const clean: RepositoryState = {
  branch: 'main',
  headSha: 'a'.repeat(40),
  operations: [],
  uncommitted: { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 },
};

describe('draft core', () => {
  describe('names', () => {
    it('slugifies a task into a branch-safe name', () => {
      assert.equal(slugify('Add a greeting function, and a test!'), 'add-a-greeting-function-and-a-test');
      assert.equal(slugify('Café: crème brûlée'), 'cafe-creme-brulee');
      assert.equal(slugify('!!!'), 'draft');
      assert.equal(slugify('x'.repeat(100)).length, 40);
      assert.equal(slugify('ab-'.repeat(30)).endsWith('-'), false);
    });

    it('names the lane branch lanes/<id>-<slug> and reads the id back', () => {
      assert.equal(laneBranchName('0123abcd', 'fix-bug'), 'lanes/0123abcd-fix-bug');
      assert.equal(changeIdFromLaneName('lanes/0123abcd-fix-bug'), '0123abcd');
      assert.equal(changeIdFromLaneName('0123abcd-fix-bug'), '0123abcd');
      assert.equal(changeIdFromLaneName('lanes/other'), undefined);
      assert.throws(() => laneBranchName('0123abcd', 'a..b'), /not a usable slug/);
    });
  });

  describe('assessDraftStart', () => {
    it('allows a clean repository without warnings', () => {
      assert.deepEqual(assessDraftStart(clean, false), { allowed: true, warnings: [] });
    });

    it('allows uncommitted changes, warns, and tells the agent they are not included', () => {
      const result = assessDraftStart({ ...clean, uncommitted: { staged: 1, unstaged: 2, untracked: 3, conflicted: 0 } }, false);
      assert.equal(result.allowed, true);
      assert.match(result.warnings[0]!, /uncommitted changes \(1 staged, 2 modified, 3 untracked\).*not included/);
      assert.match(result.promptNote!, /uncommitted changes are not included/);
    });

    it('allows a merge in progress with a warning that the draft starts from HEAD', () => {
      const result = assessDraftStart(
        { ...clean, operations: ['merge'], uncommitted: { staged: 0, unstaged: 0, untracked: 0, conflicted: 1 } },
        false,
      );
      assert.equal(result.allowed, true);
      assert.match(result.warnings[0]!, /A merge is in progress.*starts from the HEAD commit/);
      assert.match(result.warnings[1]!, /1 conflicted/);
    });

    it('refuses a rebase in progress without an explicit base, and allows it with one', () => {
      const rebasing: RepositoryState = { ...clean, branch: undefined, operations: ['rebase'] };
      const refused = assessDraftStart(rebasing, false);
      assert.equal(refused.allowed, false);
      assert.match(refused.refusal!, /rebase is in progress.*git rebase --continue.*name a base/);
      const allowed = assessDraftStart(rebasing, true);
      assert.equal(allowed.allowed, true);
      assert.match(allowed.warnings[0]!, /rebase is in progress.*the base you named/);
    });

    it('refuses a repository without commits', () => {
      const result = assessDraftStart({ operations: [], uncommitted: { staged: 0, unstaged: 0, untracked: 1, conflicted: 0 } }, false);
      assert.equal(result.allowed, false);
      assert.match(result.refusal!, /no commits yet/);
    });
  });

  describe('composePrompt', () => {
    it('holds the task, the working agreement and the report format', () => {
      const prompt = composePrompt({ task: 'Add a greeting', changeId: '0123abcd', baseRef: 'main', baseSha: 'b'.repeat(40) });
      assert.match(prompt, /^# Task\n\nAdd a greeting\n/);
      assert.match(prompt, /change 0123abcd, based on main \(bbbbbbbbbbbb\)/);
      assert.match(prompt, /LANES_EVIDENCE_FILE/);
      assert.doesNotMatch(prompt, /Requested changes/);
    });

    it('lists requested changes from a review, with where and who', () => {
      const prompt = composePrompt({
        task: 'Add a greeting',
        changeId: '0123abcd',
        baseRef: 'main',
        baseSha: 'b'.repeat(40),
        note: "The user's uncommitted changes are not included.",
        requestedChanges: [
          { body: 'Rename greet to hello', path: 'src/greeting.js', line: 3, author: 'ada' },
          { body: 'Add a test\nfor empty names' },
        ],
      });
      assert.match(prompt, /# Requested changes/);
      assert.match(prompt, /- Rename greet to hello \(src\/greeting\.js:3\) — ada/);
      assert.match(prompt, /- Add a test\n {2}for empty names/);
      assert.match(prompt, /uncommitted changes are not included/);
    });
  });

  describe('agentLanes.agents', () => {
    it('accepts valid agents and reports each invalid entry with its path', () => {
      const result = parseAgentsSetting([
        { id: 'scripted', label: 'Scripted', command: ['node', 'agent.mjs', '{promptFile}'], timeoutSeconds: 60 },
        { id: 'bad id!', label: 'X', command: ['x'] },
        { id: 'empty', label: 'Empty', command: [] },
        { id: 'scripted', label: 'Again', command: ['y'] },
        { id: 'extra', label: 'Extra', command: ['z'], shell: true },
      ]);
      assert.deepEqual(
        result.agents.map((agent) => agent.id),
        ['scripted'],
      );
      assert.equal(result.errors.length, 4);
      assert.match(result.errors[0]!, /^agentLanes\.agents\[1\]\.id: /);
      assert.match(result.errors[1]!, /^agentLanes\.agents\[2\]\.command: .*at least the program/);
      assert.match(result.errors[2]!, /agentLanes\.agents\[3\]\.id: "scripted" is used twice/);
      assert.match(result.errors[3]!, /agentLanes\.agents\[4\]: .*shell/);
    });

    it('refuses a setting that is not a list, with an example', () => {
      assert.match(parseAgentsSetting({ id: 'x' }).errors[0]!, /must be a list of agents, like/);
      assert.deepEqual(parseAgentsSetting(undefined), { agents: [], errors: [] });
    });

    it('substitutes placeholders inside each argument, keeping each argument whole', () => {
      const args = substitutePlaceholders(
        ['agent', '--prompt={prompt}', '{promptFile}', '--cwd', '{worktree}', '{unknown}', '{"json": 1}'],
        {
          prompt: 'two words; rm -rf / $(echo)',
          promptFile: '/s/prompt.md',
          worktree: '/s/wt',
        },
      );
      assert.deepEqual(args, [
        'agent',
        '--prompt=two words; rm -rf / $(echo)',
        '/s/prompt.md',
        '--cwd',
        '/s/wt',
        '{unknown}',
        '{"json": 1}',
      ]);
      const mcp = ['claude', '--mcp-config', '{mcpConfig}'];
      assert.deepEqual(substitutePlaceholders(mcp, { prompt: 'p', promptFile: 'f', worktree: 'w', mcpConfig: '/s/mcp.json' }), [
        'claude',
        '--mcp-config',
        '/s/mcp.json',
      ]);
      assert.deepEqual(substitutePlaceholders(mcp, { prompt: 'p', promptFile: 'f', worktree: 'w' }), ['claude', '--mcp-config', '']);
    });
  });

  describe('parseAgentReport', () => {
    it('treats a missing file as no report, not an error', () => {
      assert.deepEqual(parseAgentReport(undefined), { missing: true });
    });

    it('accepts a valid report', () => {
      const result = parseAgentReport(
        JSON.stringify({ summary: 'Did it', assumptions: ['a'], confidenceLimits: ['b'], agentVersion: '1.0' }),
      );
      assert.deepEqual(result, { report: { summary: 'Did it', assumptions: ['a'], confidenceLimits: ['b'], agentVersion: '1.0' } });
    });

    it('names the field path of a wrong type', () => {
      const result = parseAgentReport(JSON.stringify({ assumptions: ['ok', 7] }));
      assert.ok('error' in result);
      assert.match(result.error, /assumptions\.1: .*expected string/i);
    });

    it('names unknown fields and lists the known ones', () => {
      const result = parseAgentReport(JSON.stringify({ summary: 'x', mood: 'great' }));
      assert.ok('error' in result);
      assert.match(
        result.error,
        /unknown field "mood" at \(top level\); the known fields are summary, assumptions, confidenceLimits, agentVersion/,
      );
    });

    it('gives the position of a JSON syntax error without quoting the file', () => {
      const result = parseAgentReport('{\n  "summary": "secret-ish text",\n  oops\n}');
      assert.ok('error' in result);
      assert.match(result.error, /not valid JSON: \w+ at line 3, column 3/);
      assert.doesNotMatch(result.error, /secret-ish/);
    });

    it('refuses an empty file and an oversized one', () => {
      const empty = parseAgentReport('  \n');
      assert.ok('error' in empty && /is empty/.test(empty.error));
      const big = parseAgentReport(JSON.stringify({ summary: 'x'.repeat(MAX_AGENT_REPORT_BYTES) }));
      assert.ok('error' in big && /over the limit/.test(big.error));
    });

    it('refuses a value over the schema limits, naming the field', () => {
      const result = parseAgentReport(JSON.stringify({ summary: 'x'.repeat(20_001) }));
      assert.ok('error' in result);
      assert.match(result.error, /summary: /);
    });
  });

  describe('git output parsers', () => {
    it('parses porcelain v2 status records, renames included', () => {
      const output = [
        '# branch.oid ' + 'c'.repeat(40),
        '# branch.head main',
        '1 .M N... 100644 100644 100644 ' + 'a'.repeat(40) + ' ' + 'a'.repeat(40) + ' src/a file.ts',
        '2 R. N... 100644 100644 100644 ' + 'b'.repeat(40) + ' ' + 'b'.repeat(40) + ' R100 new name.ts',
        'old name.ts',
        'u UU N... 100644 100644 100644 100644 ' + ['1', '2', '3'].map((c) => c.repeat(40)).join(' ') + ' conflict.txt',
        '? untracked.txt',
        '',
      ].join('\0');
      const status = parsePorcelainV2(output);
      assert.equal(status.branch, 'main');
      assert.equal(status.headSha, 'c'.repeat(40));
      assert.deepEqual(
        status.entries.map((entry) => [entry.kind, entry.path, entry.origPath]),
        [
          ['ordinary', 'src/a file.ts', undefined],
          ['renamed', 'new name.ts', 'old name.ts'],
          ['unmerged', 'conflict.txt', undefined],
          ['untracked', 'untracked.txt', undefined],
        ],
      );
      assert.deepEqual(countUncommitted(status.entries), { staged: 1, unstaged: 1, untracked: 1, conflicted: 1 });
    });

    it('parses a detached HEAD and a repository without commits', () => {
      assert.deepEqual(parsePorcelainV2('# branch.oid (initial)\0# branch.head (detached)\0'), { entries: [] });
    });

    it('parses worktree list records with lock and prune reasons', () => {
      const list = parseWorktreeList(
        [
          'worktree /r',
          'HEAD ' + 'a'.repeat(40),
          'branch refs/heads/main',
          '',
          'worktree /s/wt/x',
          'HEAD ' + 'b'.repeat(40),
          'branch refs/heads/lanes/x',
          'locked initializing',
          'prunable gitdir file points to non-existent location',
          '',
          'worktree /s/wt/y',
          'HEAD ' + 'c'.repeat(40),
          'detached',
          '',
          '',
        ].join('\0'),
      );
      assert.equal(list.length, 3);
      assert.deepEqual(list[1], {
        path: '/s/wt/x',
        head: 'b'.repeat(40),
        branchRef: 'refs/heads/lanes/x',
        bare: false,
        detached: false,
        locked: 'initializing',
        prunable: 'gitdir file points to non-existent location',
      });
      assert.equal(list[2]!.detached, true);
    });

    it('unquotes C-quoted paths, octal UTF-8 included', () => {
      assert.equal(unquoteGitPath('"b/tab\\there"'), 'b/tab\there');
      assert.equal(unquoteGitPath('"b/caf\\303\\251 \\"q\\" \\\\"'), 'b/café "q" \\');
      assert.equal(unquoteGitPath('b/plain.txt'), 'b/plain.txt');
    });
  });
});
