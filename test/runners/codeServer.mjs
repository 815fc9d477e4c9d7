// Runs a real VS Code (the one the code-server npm package ships) and drives it
// with Debian's Chromium through playwright-core. Shared by the integration
// runner, the end-to-end tests, the benchmark and the demo.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_SERVER_VERSION = '4.100.3';

export function codeServerBin() {
  const cacheDir = process.env.AGENT_LANES_CACHE ?? join(homedir(), '.cache', 'agent-lanes');
  const bin = join(cacheDir, `code-server-${CODE_SERVER_VERSION}`, 'node_modules', '.bin', 'code-server');
  if (!existsSync(bin)) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} is not installed at ${bin}. Run "bash scripts/setup-test-env.sh" first.`);
  }
  return bin;
}

export function chromiumPath() {
  for (const candidate of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  throw new Error(
    'Chromium was not found. Install it with "apt-get install chromium" (or run scripts/setup-test-env.sh), or set CHROMIUM_PATH.',
  );
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts code-server with fresh user data. `settings` go to the user's
 * settings.json; `env` is inherited by the extension host.
 */
export async function startCodeServer({ settings = {}, env = {}, userDataDir, extensionsDir, installVsix, log = () => {} } = {}) {
  const bin = codeServerBin();
  const base = mkdtempSync(join(tmpdir(), 'lanes-vscode-'));
  userDataDir ??= join(base, 'user-data');
  extensionsDir ??= join(base, 'extensions');
  mkdirSync(join(userDataDir, 'User'), { recursive: true });
  writeFileSync(
    join(userDataDir, 'User', 'settings.json'),
    JSON.stringify(
      {
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        'git.openRepositoryInParentFolders': 'never',
        ...settings,
      },
      null,
      2,
    ),
  );
  const commonArgs = ['--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, '--disable-telemetry', '--disable-update-check'];
  if (installVsix) {
    await runToEnd(bin, [...commonArgs, '--install-extension', installVsix], log);
  }
  const port = await freePort();
  const child = spawn(bin, ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, ...commonArgs], {
    env: { ...process.env, ...coverageEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const output = [];
  const collect = (chunk) => {
    const text = chunk.toString();
    output.push(text);
    log(text);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited early (${child.exitCode}):\n${output.join('')}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`code-server did not answer within 60 s:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    port,
    userDataDir,
    extensionsDir,
    output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, 5_000);
      await exited;
      clearTimeout(timer);
      await groupEnded(child.pid);
    },
  };
}

/**
 * Under NODE_V8_COVERAGE (npm test's coverage) every Node process of the server
 * writes coverage; the preload makes the extension host write it too.
 */
function coverageEnv() {
  if (!process.env.NODE_V8_COVERAGE) return {};
  const preload = `--require ${JSON.stringify(fileURLToPath(new URL('coverageExit.cjs', import.meta.url)))}`;
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(' ') };
}

/** Waits (at most 5 s) until the server's children, extension hosts included, have ended and written their coverage. */
async function groupEnded(pid) {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    try {
      process.kill(-pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function runToEnd(bin, args, log) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c) => {
      text += c;
      log(c.toString());
    });
    child.stderr.on('data', (c) => {
      text += c;
      log(c.toString());
    });
    child.on('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`code-server ${args.join(' ')} failed (${code}):\n${text}`)),
    );
  });
}

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/**
 * Builds the workbench URL. With `extensionTestsPath`, VS Code loads the
 * extension from source and runs the tests module's run() in the extension host.
 */
export function workbenchUrl(server, { folder, workspace, extensionDevelopmentPath, extensionTestsPath }) {
  const remote = (path) => `vscode-remote://127.0.0.1:${server.port}${path}`;
  const payload = [['skipWelcome', 'true']];
  if (extensionDevelopmentPath) payload.push(['extensionDevelopmentPath', remote(extensionDevelopmentPath)]);
  if (extensionTestsPath) payload.push(['extensionTestsPath', remote(extensionTestsPath)]);
  const params = new URLSearchParams();
  if (workspace) params.set('workspace', workspace);
  else if (folder) params.set('folder', folder);
  else params.set('ew', 'true');
  return `${server.url}/?${params.toString()}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/**
 * Opens a workbench page that runs an extension test module and resolves with
 * its exit code and everything the tests logged.
 */
export async function runTestsInWorkbench(server, browser, options, { timeoutMs = 10 * 60_000, onLog = () => {} } = {}) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const logs = [];
  let resolveExit;
  const exited = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = Array.isArray(args) ? formatLog(args) : String(args ?? type);
    logs.push(text);
    onLog(text);
  });
  await page.exposeFunction('codeAutomationExit', (code) => resolveExit(code));
  await page.goto(workbenchUrl(server, options));
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  const code = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  return { code, logs, page };
}

/** console.log's own %s/%d/%o substitution, for log lines relayed from the extension host. */
export function formatLog(args) {
  const values = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)));
  if (typeof args[0] !== 'string' || !/%[sdifoOj%]/.test(args[0])) return values.join(' ');
  let index = 1;
  const head = args[0].replace(/%([sdifoOj%])/g, (match, kind) => {
    if (kind === '%') return '%';
    if (index >= args.length) return match;
    const value = args[index++];
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
  return [head, ...values.slice(index)].join(' ');
}
