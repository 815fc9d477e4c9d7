// `npm run demo`: builds the VSIX, installs it into a real VS Code (the one the
// code-server package ships), generates a sample repository, serves a sample
// org policy and a GitHub stand-in on loopback, and walks a change down the
// lanes the way a person would (command palette, quick picks). Prints the URL
// to open; Ctrl+C stops it.
// --check: run everything, save screenshots under test-results/, then exit (CI).
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startCodeServer, workbenchUrl } from '../test/runners/codeServer.mjs';
import { createSampleRepository, git } from '../test/runners/fixtures.mjs';
import { answerInput, openLanesView, pickItem, runCommand, treeRow } from '../test/runners/workbenchUi.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const check = process.argv.includes('--check');
const demoDir = join(root, '.demo');
const shots = join(root, 'test-results');
const step = (text) => console.log(`demo: ${text}`);

execFileSync('bash', [join(root, 'scripts', 'setup-test-env.sh')], { stdio: 'inherit' });
execFileSync('npm', ['run', '--silent', 'package'], { cwd: root, stdio: 'inherit' });

rmSync(demoDir, { recursive: true, force: true });
mkdirSync(demoDir, { recursive: true });
mkdirSync(shots, { recursive: true });
const repo = createSampleRepository(join(demoDir, 'sample-app'));
mkdirSync(join(repo, '.lanes'), { recursive: true });
writeFileSync(join(repo, '.lanes', 'lanes.yaml'), 'tasks:\n  - id: test\n    command: node --test test/\n    timeoutSeconds: 120\n');
git(repo, 'add', '-A');
git(repo, 'commit', '-q', '-m', 'Declare the sandbox tasks');

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
    'agentLanes.agents': [{ id: 'demo-agent', label: 'Demo agent (scripted)', command: [process.execPath, demoAgent, '{promptFile}'], timeoutSeconds: 120 }],
  },
});
const url = workbenchUrl(server, { folder: repo });

const browser = await launchBrowser();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
await page.goto(url);
await openLanesView(page);
await page.locator('.statusbar-item', { hasText: 'acme-platform' }).waitFor({ timeout: 60_000 });

step('Draft: "Add a greeting function and a test" with the demo agent');
await runCommand(page, 'Lanes: New Draft');
await answerInput(page, 'Add a greeting function and a test');
await answerInput(page, ''); // the base: HEAD of main
await pickItem(page, 'Demo agent (scripted)');
await treeRow(page, 'Add a greeting function and a test');
await page.waitForTimeout(1500);
await page.screenshot({ path: join(shots, 'demo-draft.png') });

await browser.close();
console.log(`\nAgent Lanes demo is running on a sample repository (${repo}).`);
console.log(`Open this URL in a browser:\n\n  ${url}\n`);
if (check) {
  await server.stop();
  policyServer.close();
  console.log('demo check: OK');
  process.exit(0);
}
console.log('Press Ctrl+C to stop.');
const stop = async () => {
  await server.stop();
  policyServer.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
await new Promise(() => {});
