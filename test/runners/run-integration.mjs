// Runs the integration suites inside a real VS Code. Default: the VS Code that
// the code-server npm package ships, driven by Chromium (works offline). With
// --electron: @vscode/test-electron, which downloads VS Code (needs internet).
// Usage: node test/runners/run-integration.mjs [--electron] [scenario ...]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScenarioWorkspaces, tempDir } from './fixtures.mjs';
import { launchBrowser, runTestsInWorkbench, startCodeServer } from './codeServer.mjs';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ALL = [
  'repository',
  'reload',
  'notRepository',
  'bare',
  'noFolder',
  'multiRoot',
  'draft',
  'review',
  'sandbox',
  'policy',
  'audit',
  'pullRequest',
];
const args = process.argv.slice(2);
const electron = args.includes('--electron');
const verbose = args.includes('--verbose') || process.env.LANES_VERBOSE === '1';
const scenarios = args.filter((a) => !a.startsWith('--'));
const selected = scenarios.length ? scenarios : ALL;
for (const s of selected) if (!ALL.includes(s)) throw new Error(`Unknown scenario "${s}". Known: ${ALL.join(', ')}`);
if (!existsSync(join(root, 'dist', 'extension.js'))) throw new Error('dist/extension.js is missing: run "node esbuild.mjs" first.');
if (!existsSync(join(root, 'out', 'test', 'integration', 'scenarios', 'repository.js')))
  throw new Error('The tests are not built: run "node esbuild.mjs --tests" first.');

const workspaces = createScenarioWorkspaces(tempDir('lanes-integration-'));
// The settings every scenario runs with: the scripted agent the tests drive.
const settings = {
  'agentLanes.agents': [
    {
      id: 'scripted',
      label: 'Scripted agent',
      command: [process.execPath, join(root, 'test', 'fixtures', 'agents', 'scripted-agent.mjs'), '{promptFile}'],
      timeoutSeconds: 60,
    },
    {
      // Needs a secret from SecretStorage ("Agent Lanes: Set Agent Secret…"); prints it (redacted) and records its length.
      id: 'secret-printer',
      label: 'Secret printer',
      command: [
        process.execPath,
        '-e',
        "const key = process.env.LANES_TEST_API_KEY || ''; console.log('key=' + key); require('fs').writeFileSync('secret-length.txt', String(key.length) + '\\n')",
      ],
      secrets: ['LANES_TEST_API_KEY'],
      timeoutSeconds: 60,
    },
  ],
};
const totals = { passed: 0, failed: 0 };
const RESULT = /LANES_TEST_RESULT (\{.*\})/;

function count(text, scenario) {
  const match = RESULT.exec(text);
  if (!match) return false;
  const result = JSON.parse(match[1]);
  totals.passed += result.passed;
  totals.failed += result.failed;
  console.log(`integration ${scenario}: ${result.passed} passed, ${result.failed} failed`);
  return true;
}

if (electron) {
  const { runTests } = await import('@vscode/test-electron');
  for (const scenario of selected) {
    const ws = workspaces[scenario];
    const userDataDir = tempDir('lanes-electron-user-');
    mkdirSync(join(userDataDir, 'User'), { recursive: true });
    writeFileSync(join(userDataDir, 'User', 'settings.json'), JSON.stringify({ 'security.workspace.trust.enabled': false, ...settings }));
    const launchArgs = [
      '--disable-extensions',
      '--disable-workspace-trust',
      `--user-data-dir=${userDataDir}`,
      ...(ws.workspace ? [ws.workspace] : ws.folder ? [ws.folder] : []),
    ];
    const resultDir = tempDir('lanes-results-');
    try {
      await runTests({
        extensionDevelopmentPath: root,
        extensionTestsPath: join(root, 'out', 'test', 'integration', 'scenarios', `${scenario}.js`),
        launchArgs,
        extensionTestsEnv: { LANES_RESULT_DIR: resultDir },
      });
    } catch (error) {
      console.error(`integration ${scenario}: ${error.message}`);
    }
    const file = join(resultDir, `${scenario}.json`);
    if (!existsSync(file) || !count(`LANES_TEST_RESULT ${readFileSync(file, 'utf8')}`, scenario)) totals.failed += 1;
  }
} else {
  const server = await startCodeServer({ settings, log: verbose ? (t) => process.stderr.write(t) : undefined });
  const browser = await launchBrowser();
  try {
    for (const scenario of selected) {
      const ws = workspaces[scenario];
      const started = Date.now();
      let counted = false;
      let inTests = false;
      const { code, logs, page } = await runTestsInWorkbench(
        server,
        browser,
        {
          ...ws,
          extensionDevelopmentPath: root,
          extensionTestsPath: join(root, 'out', 'test', 'integration', 'scenarios', `${scenario}.js`),
        },
        {
          onLog: (text) => {
            if (text.includes('LANES_TEST_BEGIN')) inTests = true;
            else if (count(text, scenario)) {
              counted = true;
              inTests = false;
            } else if (verbose || inTests) process.stdout.write(`  ${text}\n`);
          },
        },
      );
      await page.close();
      if (code !== 0 || !counted) {
        console.error(
          `integration ${scenario}: VS Code exited with ${code}${counted ? '' : ' before the tests reported (activation or loading failed)'}`,
        );
        if (!counted) {
          totals.failed += 1;
          console.error(logs.slice(-40).join('\n'));
        }
      }
      console.log(`integration ${scenario}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

console.log(`LANES_LEVEL_RESULT ${JSON.stringify({ level: 'integration', ...totals })}`);
console.log(`integration: ${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed > 0 ? 1 : 0);
