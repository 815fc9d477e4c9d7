// `npm run demo`: builds the VSIX, installs it into a real VS Code (the one the
// code-server package ships), generates a sample repository and opens Agent
// Lanes on it. Prints the URL to open; Ctrl+C stops it.
// --check: start everything, verify the Lanes view renders, then exit (used by CI).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startCodeServer, workbenchUrl } from '../test/runners/codeServer.mjs';
import { createSampleRepository } from '../test/runners/fixtures.mjs';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const check = process.argv.includes('--check');
const demoDir = join(root, '.demo');

execFileSync('bash', [join(root, 'scripts', 'setup-test-env.sh')], { stdio: 'inherit' });
execFileSync('npm', ['run', '--silent', 'package'], { cwd: root, stdio: 'inherit' });

rmSync(demoDir, { recursive: true, force: true });
mkdirSync(demoDir, { recursive: true });
const repo = createSampleRepository(join(demoDir, 'sample-app'));

const server = await startCodeServer({
  installVsix: join(root, 'dist', 'agent-lanes.vsix'),
  userDataDir: join(demoDir, 'user-data'),
  extensionsDir: join(demoDir, 'extensions'),
  settings: { 'workbench.colorTheme': 'Default Dark Modern' },
});
const url = workbenchUrl(server, { folder: repo });

// Open the workbench once, so the extension activates and the sidebar is shown.
const browser = await launchBrowser();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
await page.goto(url);
await page.locator('.activitybar a.action-label[aria-label^="Agent Lanes"]').click({ timeout: 90_000 });
await page.locator('.pane-body .monaco-list-row, .pane-body .welcome-view-content').first().waitFor({ timeout: 60_000 });
mkdirSync(join(root, 'test-results'), { recursive: true });
await page.screenshot({ path: join(root, 'test-results', 'demo.png') });
await browser.close();

console.log(`\nAgent Lanes demo is running on a sample repository (${repo}).`);
console.log(`Open this URL in a browser:\n\n  ${url}\n`);
if (check) {
  await server.stop();
  console.log('demo check: OK');
  process.exit(0);
}
console.log('Press Ctrl+C to stop.');
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
await new Promise(() => {});
