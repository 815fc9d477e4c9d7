import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Frame, Locator, Page } from 'playwright-core';
import { CLAUDE_CODE_PRESET } from '../../src/core/draft/presets/claudeCode';
import { agentCliPrefix, installAgentCli } from '../../src/infra/draft/agentCliCache';
import { type AnthropicStandIn, type ScriptedTurn, startAnthropicStandIn } from '../fixtures/model-standins/anthropic';
import { createSampleRepository, tempDir } from '../runners/fixtures.mjs';
import { answerInput, frameWithText, pickItem, reviewFrame, runCommand, treeRow } from '../runners/workbenchUi.mjs';
import { type CodeServer, openFolder, openLanesView, repoRoot, screenshot, startWorkbench } from './workbench';

// A new user's first ten minutes, by clicking: the walkthrough sets up Claude Code (the real CLI at its pinned
// version, against the Anthropic stand-in), starts a first draft, and the change reaches a review.
const preset = CLAUDE_CODE_PRESET!;
const CACHE = process.env.AGENT_LANES_CLI_CACHE ?? join(homedir(), '.cache', 'agent-lanes', 'agent-clis');
const API_KEY = `sk-ant-api03-${'Wk5'.repeat(30)}-e2e`;
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** The conversation: read, edit, add a test, run the tests, answer. */
function conversation(worktree: string): ScriptedTurn[] {
  return [
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
    { content: [{ type: 'text', text: 'Added subtract() with a test; the tests pass.' }] },
  ];
}

/** Clicks a walkthrough step's title (it expands), then the link or button in it. */
async function walkthroughAction(page: Page, step: string, action: string): Promise<void> {
  const item = page.locator('.getting-started-step', { hasText: step }).first();
  await item.waitFor({ timeout: 30_000 });
  await item.click();
  const link = item.locator('a, .button-link, button', { hasText: action }).first();
  await link.waitFor({ timeout: 15_000 });
  await link.click();
}

/** A change's context menu entry, as a right click on its row shows it. */
async function contextAction(page: Page, row: Locator, action: string): Promise<void> {
  await row.click({ button: 'right' });
  const entry = page.locator('.context-view .action-label', { hasText: action }).first();
  await page.waitForTimeout(500);
  await screenshot(page, 'e2e-first-context-menu');
  await entry.waitFor({ timeout: 15_000 });
  await entry.click();
}

/** The metrics page once it shows every one of `selectors` (a filter's choice draws the page again). */
async function metricsWith(page: Page, selectors: string[]): Promise<Frame> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const counts = await Promise.all(
        selectors.map((selector) =>
          frame
            .locator(selector)
            .count()
            .catch(() => 0),
        ),
      );
      if (counts.every(Boolean)) return frame;
    }
    if (Date.now() > deadline) throw new Error(`No metrics page shows ${selectors.join(' and ')}.`);
    await page.waitForTimeout(250);
  }
}

describe('the first ten minutes, by clicking: walkthrough → Claude Code preset → first draft → review', function () {
  this.timeout(420_000);
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  let repo: string;
  let standIn: AnthropicStandIn;
  let policy: Server;

  before(async function () {
    if (process.platform !== 'linux' || process.arch !== 'x64') this.skip();
    // The CLI as a first Set Up would have installed it (npm, once); here from the tests' cache, so no 400 MB download.
    const installed = await installAgentCli(CACHE, preset, { timeoutMs: 9 * 60_000 });
    repo = realpathSync(createSampleRepository(join(tempDir('lanes-e2e-first-'), 'sample-app')));
    mkdirSync(join(repo, '.lanes'));
    writeFileSync(join(repo, '.lanes', 'lanes.yaml'), 'tasks:\n  - id: unit\n    command: node --test test/\n    test: true\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'Declare the sandbox tasks');

    let globalStorage = '';
    standIn = await startAnthropicStandIn({
      apiKey: API_KEY,
      host: '127.0.0.2',
      // The worktree exists once New Draft made it: the model's tool calls name files in it.
      get turns() {
        const repos = join(globalStorage, 'repos');
        const worktrees = existsSync(repos)
          ? readdirSync(repos).flatMap((name) =>
              existsSync(join(repos, name, 'worktrees'))
                ? readdirSync(join(repos, name, 'worktrees')).map((w) => join(repos, name, 'worktrees', w))
                : [],
            )
          : [];
        return worktrees.length ? conversation(worktrees[0]!) : [];
      },
    });
    const yaml = `apiVersion: agentlanes.dev/v1\nmetadata: { id: first-ten-minutes, version: "1" }\nlanes:\n  agent:\n    isolation: [process]\n    network: { allow: ["${standIn.host}:${standIn.port}"] }\n  sandbox:\n    processSandbox: allowed\n`;
    policy = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/yaml' });
      response.end(yaml);
    });
    await new Promise<void>((done) => policy.listen(0, '127.0.0.1', () => done()));
    ({ server, browser } = await startWorkbench({
      vsix: join(repoRoot, 'dist', 'agent-lanes.vsix'),
      settings: {
        'agentLanes.policy.endpoint': `http://127.0.0.1:${(policy.address() as { port: number }).port}/policy.yaml`,
        'agentLanes.agentPresets.baseUrls': { 'claude-code': standIn.url },
        // No container engine is asked for: the tasks run in the process sandbox the policy allows.
        'agentLanes.sandbox.containerEngine': 'docker',
      },
    }));
    globalStorage = join(server.userDataDir, 'User', 'globalStorage', 'agent-lanes.agent-lanes');
    const prefix = agentCliPrefix(join(globalStorage, 'agent-clis'), preset);
    mkdirSync(join(prefix, '..'), { recursive: true });
    symlinkSync(installed.prefix, prefix);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await standIn?.close();
    policy?.close();
  });

  it('sets up the agent and its key from the walkthrough, drafts, promotes and opens the review without typing a command', async () => {
    page = await openFolder(server, browser, repo);
    await openLanesView(page);
    await runCommand(page, 'Welcome: Open Walkthrough...');
    await pickItem(page, 'Get started with Agent Lanes');

    await walkthroughAction(page, 'Pick your agent', 'Set Up an Agent');
    await pickItem(page, 'Claude Code');
    // The key goes to VS Code's secret storage, never to settings.
    await answerInput(page, API_KEY);
    await page.locator('.notifications-toasts', { hasText: 'is ready' }).first().waitFor({ timeout: 60_000 });
    await screenshot(page, 'e2e-first-setup');
    await page.locator('.getting-started-step[aria-checked="true"]', { hasText: 'Pick your agent' }).waitFor({ timeout: 15_000 });

    await walkthroughAction(page, 'Start your first draft', 'New Draft');
    await answerInput(page, 'Add subtract() with a test');
    await pickItem(page, 'HEAD of');
    await pickItem(page, 'Claude Code');

    // The Lanes view stays open beside the walkthrough.
    const row = await treeRow(page, 'Add subtract() with a test', 120_000);
    // The model's turns were all asked for: the agent finished its conversation through the boundary.
    const deadline = Date.now() + 180_000;
    while (standIn.conversationRequests().length < 5) {
      if (Date.now() > deadline) {
        await screenshot(page, 'e2e-first-draft-failed');
        const toasts = await page.locator('.notifications-toasts').allInnerTexts();
        const logs = execFileSync(
          'sh',
          [
            '-c',
            `cat ${JSON.stringify(join(server.userDataDir, 'User', 'globalStorage', 'agent-lanes.agent-lanes'))}/repos/*/changes/*/agent.log | head -c 6000`,
          ],
          { encoding: 'utf8' },
        );
        console.error(logs.slice(-1500));

        throw new Error(
          `the agent made ${standIn.conversationRequests().length} of 5 model requests; notifications: ${toasts.join(' | ')}`,
        );
      }
      await page.waitForTimeout(500);
    }
    assert.deepEqual(standIn.specProblems, []);
    await page.waitForTimeout(2_000);
    await screenshot(page, 'e2e-first-draft');

    // Promote: the sandbox runs the task in the process sandbox and the change moves to Review.
    for (let attempt = 1; ; attempt++) {
      await contextAction(page, row, 'Promote');
      const moved = await treeRow(page, /ready to approve|needs a reviewer|awaiting review|in review/i, 60_000).then(
        () => true,
        () => false,
      );
      if (moved) break;
      if (attempt === 5) throw new Error('the change never reached Review');
    }
    // One toast for the move, naming the change; the process sandbox's notice is in it, not in a second toast.
    const toasts = page.locator('.notifications-toasts .notification-toast');
    await toasts.filter({ hasText: 'is ready for review' }).first().waitFor({ timeout: 30_000 });
    const texts = await toasts.allInnerTexts();
    assert.equal(texts.filter((text) => /ready for review/.test(text)).length, 1, texts.join('\n---\n'));
    assert.match(
      texts.find((text) => /ready for review/.test(text))!,
      /"Add subtract\(\) with a test" is ready for review.*process sandbox/s,
    );
    assert.ok(!texts.some((text) => /^No container engine/m.test(text)), texts.join('\n---\n'));
    await screenshot(page, 'e2e-first-promoted');
    const review = await treeRow(page, 'Add subtract() with a test', 30_000);
    await review.click();
    const frame = await reviewFrame(page, 60_000);
    await frame.locator('text=subtract').first().waitFor({ timeout: 30_000 });
    await page.waitForTimeout(1_000);
    await screenshot(page, 'e2e-first-review');
    // The review lists the files the model's tool calls changed, with the sandbox's evidence.
    for (const file of ['src/math.js', 'test/subtract.test.js']) await frame.locator(`text=${file}`).first().waitFor({ timeout: 30_000 });
    // The sandbox's evidence is behind the Evidence tab (the diff comes first).
    await frame.locator('#tab-evidence').click();
    await frame.locator('text=Isolation verified').first().waitFor({ timeout: 15_000 });

    // Its History: every event of the change, one entry each under the day's heading, fitting the editor.
    await contextAction(page, await treeRow(page, 'Add subtract() with a test', 30_000), 'Show History');
    const history = await frameWithText(page, 'History: Add subtract() with a test', 30_000);
    for (const action of ['change.create', 'agent.start', 'agent.stop', 'lane.transition'])
      await history.locator('code', { hasText: action }).first().waitFor({ timeout: 15_000 });
    assert.equal(await history.locator('table').count(), 0, 'no table to run off the edge');
    const overflow = await history.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(overflow <= 0, `the History fits its editor (${overflow} px too wide)`);
    await page.waitForTimeout(500);
    await screenshot(page, 'e2e-history');

    // The promotion metrics after this walk: one change drafted, through the sandbox, charted from the audit log.
    await page.keyboard.press('Escape');
    await runCommand(page, 'Agent Lanes: Show Promotion Metrics');
    const metrics = await frameWithText(page, 'Promotion metrics', 30_000);
    await metrics.locator('table.chart.funnel').first().waitFor({ timeout: 15_000 });
    const funnel = await metrics.locator('table.chart.funnel').first().textContent();
    assert.match(funnel ?? '', /Drafted1/);
    assert.match(funnel ?? '', /Sandbox passed1/);

    // Filters combine: this agent AND the last 7 days (the walk's change meets both); each choice draws the page again.
    await metrics.locator('#agent').selectOption(preset.id);
    const byAgent = await metricsWith(page, [`#agent option[selected][value="${preset.id}"]`]);
    await byAgent.locator('#period').selectOption('last7');
    const filtered = await metricsWith(page, [`#agent option[selected][value="${preset.id}"]`, '#period option[selected][value="last7"]']);
    assert.match((await filtered.locator('table.chart.funnel').first().textContent()) ?? '', /Drafted1/);
    await page.waitForTimeout(500);
    await screenshot(page, 'e2e-metrics');

    // A number lists the changes behind it (by keyboard: the numbers are buttons), and a listed change opens.
    const drafted = filtered.locator('table.chart.funnel tr', { hasText: 'Drafted' }).locator('button.figure').first();
    assert.equal(await drafted.textContent(), '1');
    await drafted.focus();
    await page.keyboard.press('Enter');
    const listed = filtered.locator('#changes tr[data-change]');
    await listed.first().waitFor({ timeout: 15_000 });
    assert.equal(await listed.count(), 1);
    const listedRow = (await listed.first().innerText()).replace(/\s+/g, ' ');
    assert.match(
      listedRow,
      new RegExp(`^[0-9a-f]{8} Add subtract\\(\\) with a test ${preset.id} \\S+ review \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} History$`),
    );
    assert.match((await filtered.locator('#list-caption').textContent()) ?? '', /· Drafted$/);
    const listOverflow = await filtered.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(listOverflow <= 0, `the list fits its editor (${listOverflow} px too wide)`);
    await page.waitForTimeout(500);
    await screenshot(page, 'e2e-metrics-list');
    await listed.first().locator('button.link').first().click();
    await page.locator('.tabs-container .tab.active', { hasText: 'Review: Add subtract() with a test' }).waitFor({ timeout: 15_000 });

    // The panel keeps its filters while it is open: shown again (the log read again), it has the same ones.
    // The review just opened may take the focus while the palette opens: runCommand tries again then.
    await runCommand(page, 'Agent Lanes: Show Promotion Metrics');
    await page.locator('.tabs-container .tab.active', { hasText: 'Promotion Metrics: sample-app' }).waitFor({ timeout: 15_000 });
    await metricsWith(page, [`#agent option[selected][value="${preset.id}"]`, '#period option[selected][value="last7"]']);
  });
});
