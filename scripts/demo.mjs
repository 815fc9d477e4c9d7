// `npm run demo`: builds the VSIX, installs it into a real VS Code (the one the
// code-server package ships), generates a sample repository, serves a sample
// org policy and a GitHub stand-in on loopback, and walks a change down the
// lanes the way a person would (command palette, quick picks). Prints the URL
// to open; Ctrl+C stops it.
// --check: run everything, save screenshots under test-results/, then exit (CI).
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startCodeServer, workbenchUrl } from '../test/runners/codeServer.mjs';
import { createSampleRepository, git } from '../test/runners/fixtures.mjs';
import { answerInput, frameWithText, openLanesView, pickItem, reviewFrame, runCommand, treeRow } from '../test/runners/workbenchUi.mjs';
import { demoPreflightProblem, machineFacts } from './demo-preflight.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const check = process.argv.includes('--check');
const demoDir = join(root, '.demo');
const shots = join(root, 'test-results');
const step = (text) => console.log(`demo: ${text}`);

const facts = machineFacts();
const problem = demoPreflightProblem(facts);
if (problem) {
  console.error(problem);
  process.exit(1);
}
if (!facts.containersConfOk) step("setting podman's runtime to runc in /etc/containers/containers.conf (the file is replaced)");
execFileSync('bash', [join(root, 'scripts', 'setup-test-env.sh')], { stdio: 'inherit' });
execFileSync('npm', ['run', '--silent', 'package'], { cwd: root, stdio: 'inherit' });
execFileSync('bash', [join(root, 'scripts', 'build-sandbox-image.sh')], { stdio: 'inherit' });
execFileSync('node', ['esbuild.mjs', '--tests', 'test/fixtures/github-standin/cli.ts'], { cwd: root, stdio: 'inherit' });

rmSync(demoDir, { recursive: true, force: true });
mkdirSync(demoDir, { recursive: true });
mkdirSync(shots, { recursive: true });
const repo = createSampleRepository(join(demoDir, 'sample-app'));
mkdirSync(join(repo, '.lanes'), { recursive: true });
writeFileSync(
  join(repo, '.lanes', 'lanes.yaml'),
  'tasks:\n  - id: test\n    command: node --test test/\n    test: true\n    timeoutSeconds: 120\n',
);
git(repo, 'add', '-A');
git(repo, 'commit', '-q', '-m', 'Declare the sandbox tasks');

// "GitHub": a bare repository as origin, and the local stand-in for GitHub's REST API.
const bare = join(demoDir, 'origin.git');
git(demoDir, 'init', '-q', '--bare', '--initial-branch=main', bare);
git(repo, 'push', '-q', bare, 'main');
const github = spawn(
  process.execPath,
  [
    join(root, 'out', 'test', 'fixtures', 'github-standin', 'cli.js'),
    '--bare',
    bare,
    '--token',
    'demo-token',
    '--checks-after-ms',
    '20000',
    // After its checks pass, the pull request is merged (as a person would), and the org policy's staging deploy
    // workflow exists: the change then enters Release, where one production action is authorized and run.
    '--merge-after-checks',
    '--workflow',
    'deploy.yml:environment',
    '--runs-after-ms',
    '20000',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const standIn = JSON.parse(await new Promise((r) => createInterface({ input: github.stdout }).once('line', r)));
git(repo, 'remote', 'add', 'origin', standIn.remoteUrl);
git(repo, 'remote', 'set-url', '--push', 'origin', bare);
step(`GitHub stand-in at ${standIn.url}`);

// The org policy, served on loopback the way a platform team would serve it.
const policyText = readFileSync(join(root, 'test', 'fixtures', 'policy', 'sample-org-policy.yaml'), 'utf8');
const policyServer = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'application/yaml', etag: '"demo-1"' });
  response.end(policyText);
});
await new Promise((r) => policyServer.listen(0, '127.0.0.1', r));
const policyUrl = `http://127.0.0.1:${policyServer.address().port}/policy.yaml`;
step(`org policy served at ${policyUrl}`);

const demoAgent = join(root, 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const server = await startCodeServer({
  installVsix: join(root, 'dist', 'agent-lanes.vsix'),
  userDataDir: join(demoDir, 'user-data'),
  extensionsDir: join(demoDir, 'extensions'),
  settings: {
    'workbench.colorTheme': 'Default Dark Modern',
    'agentLanes.policy.endpoint': policyUrl,
    'agentLanes.agents': [
      { id: 'demo-agent', label: 'Demo agent (scripted)', command: [process.execPath, demoAgent, '{promptFile}'], timeoutSeconds: 120 },
    ],
    'agentLanes.sandbox.containerEngine': 'podman',
    'agentLanes.sandbox.defaultImage': 'localhost/agent-lanes-sandbox:test',
    'agentLanes.sandbox.devcontainerCliPath': join(root, 'node_modules', '.bin', 'devcontainer'),
    'agentLanes.github.apiBaseUrl': standIn.url,
  },
});
const url = workbenchUrl(server, { folder: repo });

const browser = await launchBrowser();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
process.on('uncaughtException', async (error) => {
  console.error(`demo: failed: ${error.message}`);
  await page.screenshot({ path: join(shots, 'demo-failure.png') }).catch(() => undefined);
  await server.stop();
  policyServer.close();
  github.kill('SIGTERM');
  process.exit(1);
});
await page.goto(url);
await openLanesView(page);
await page.locator('.statusbar-item', { hasText: 'acme-platform' }).waitFor({ timeout: 60_000 });

step('Draft: "Add a greeting function and a test" with the demo agent');
await runCommand(page, 'Agent Lanes: New Draft');
await answerInput(page, 'Add a greeting function and a test');
await answerInput(page, ''); // the base: HEAD of main
await pickItem(page, 'Demo agent (scripted)');
await treeRow(page, 'Add a greeting function and a test');
await treeRow(page, 'demo-agent · just now');
await page.waitForTimeout(1000);
await page.screenshot({ path: join(shots, 'demo-draft.png') });

const draft = async (task, agentLabel = 'Demo agent (scripted)') => {
  await runCommand(page, 'Agent Lanes: New Draft');
  await answerInput(page, task);
  await answerInput(page, '');
  await pickItem(page, agentLabel);
};
/**
 * Promote waits for the draft's agent: until its run has ended (committed) the
 * change is not promotable and the picker does not list it, so ask again.
 */
const promote = async (title) => {
  for (let attempt = 1; ; attempt++) {
    await runCommand(page, 'Agent Lanes: Promote');
    const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
    if (
      await row.waitFor({ timeout: 5_000 }).then(
        () => true,
        () => false,
      )
    )
      break;
    if (attempt === 30) throw new Error(`"${title}" never became promotable`);
    await page.keyboard.press('Escape');
    await page.waitForTimeout(2_000);
  }
  await pickItem(page, title);
};

step('Sandbox: the task "test" runs in a dev container with the network off');
await promote('Add a greeting function and a test');
await treeRow(page, /ready to approve|blocked:|awaiting review/, 180_000);

step('Review: a second person opens the review and approves the exact diff');
// The reviewer is somebody else than the author: self-approval is forbidden by policy.
git(repo, 'config', 'user.email', 'reviewer@example.com');
await runCommand(page, 'Agent Lanes: Open Review');
await pickItem(page, 'Add a greeting function and a test');
let frame = await reviewFrame(page);
await frame.locator('.verdict.needs-approval').waitFor({ timeout: 60_000 });
await page.waitForTimeout(500);
await page.screenshot({ path: join(shots, 'demo-review.png') });
// The scripted agent ran inside bubblewrap, and the canary proved the boundary first (the Evidence tab; the diff comes first).
await frame.locator('#tab-evidence').click();
await frame.locator('.isolation.verified', { hasText: 'isolation verified' }).waitFor({ timeout: 30_000 });
await frame.locator('#ev-isolation').scrollIntoViewIfNeeded();
await page.waitForTimeout(1000);
await page.screenshot({ path: join(shots, 'demo-review-isolation.png') });
// "Fails without the change": the agent's new test ran against the base commit's other files, and failed there.
await frame.locator('#ev-failsWithoutChange', { hasText: 'test/greeting.test.js — fails on the base' }).waitFor({ timeout: 30_000 });
await frame.locator('#ev-failsWithoutChange').scrollIntoViewIfNeeded();
await page.waitForTimeout(500);
await page.screenshot({ path: join(shots, 'demo-review-fails-without-change.png') });
await frame.evaluate('window.scrollTo(0, 0)');
await frame.locator('vscode-button#approve').click();
await frame.locator('.verdict.approved').waitFor({ timeout: 30_000 });

step('Pull request: a draft PR with evidence and provenance, against the GitHub stand-in');
await runCommand(page, 'Agent Lanes: Sign In to GitHub with a Token');
await answerInput(page, 'demo-token');
await runCommand(page, 'Agent Lanes: Open Pull Request');
await pickItem(page, 'Add a greeting function and a test');
await treeRow(page, '#1', 120_000);
// The open review follows: read-only now, with the pull request, and the approval said once (by the header).
await frame.locator('.verdict.read-only', { hasText: 'In Pull request #1' }).waitFor({ timeout: 60_000 });
const actionStatus = (await frame.locator('#action-status').innerText()).trim();
if (actionStatus) throw new Error(`demo: the review still says "${actionStatus}" after the change left Review`);

step('A second change waits in Review; a third is blocked by the org policy (infra/** is off limits)');
await draft('Add a dependency');
await treeRow(page, 'Add a dependency');
await promote('Add a dependency');
await treeRow(page, /ready to approve|blocked:|awaiting review/, 180_000);
await draft('Touch the infrastructure');
await treeRow(page, 'Touch the infrastructure');
await promote('Touch the infrastructure');
await page.waitForTimeout(3000);
await page.keyboard.press('Escape');
await page.screenshot({ path: join(shots, 'demo-lanes.png') });

step('Release: the first change was merged; a person authorizes the staging deploy for the exact merged commit');
await treeRow(page, 'merged', 180_000);
// The quick pick closes when the workbench takes focus elsewhere (seen once on a loaded machine): ask again once.
for (let attempt = 1; ; attempt++) {
  try {
    await runCommand(page, 'Agent Lanes: Run Production Action');
    await pickItem(page, 'Add a greeting function and a test');
    await pickItem(page, 'deploy-staging');
    break;
  } catch (error) {
    if (attempt === 2) throw error;
    step(`the action's quick pick closed before it was answered (${error.message.split('\n')[0]}); asking again`);
    await page.keyboard.press('Escape');
  }
}
await page.locator('.monaco-dialog-box', { hasText: 'Run "deploy-staging"' }).waitFor({ timeout: 30_000 });
await page.screenshot({ path: join(shots, 'demo-release-authorize.png') });
await page.locator('.monaco-dialog-box .monaco-button', { hasText: /^Run Action$/ }).click();
await treeRow(page, 'deploy-staging running', 60_000);
await treeRow(page, 'deploy-staging succeeded', 120_000);
await page.waitForTimeout(500);
await page.screenshot({ path: join(shots, 'demo-release.png') });

step('Metrics: the promotion funnel of this walk, read from the audit log');
await runCommand(page, 'Agent Lanes: Show Promotion Metrics');
const metrics = await frameWithText(page, 'Promotion metrics');
await metrics.locator('table.chart.funnel').first().waitFor({ timeout: 15_000 });
const funnel = (await metrics.locator('table.chart.funnel').first().textContent()) ?? '';
for (const figure of ['Drafted3', 'Merged1'])
  if (!funnel.includes(figure)) throw new Error(`demo: the metrics funnel does not show ${figure}: ${funnel}`);
await page.waitForTimeout(500);
await page.screenshot({ path: join(shots, 'demo-metrics.png') });

await browser.close();
console.log(`\nAgent Lanes demo is running on a sample repository (${repo}).`);
console.log(`Open this URL in a browser:\n\n  ${url}\n`);
if (check) {
  await server.stop();
  policyServer.close();
  github.kill('SIGTERM');
  console.log('demo check: OK');
  process.exit(0);
}
console.log('Press Ctrl+C to stop.');
const stop = async () => {
  await server.stop();
  policyServer.close();
  github.kill('SIGTERM');
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
await new Promise(() => {});
