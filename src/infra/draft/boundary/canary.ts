import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { lstat, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type CanaryProbe, CanaryProbeSchema } from '../../../core/draft/agentIsolation';
import { git } from '../../git/gitProcess';

/**
 * The canary: before every agent run, a small Node program runs inside the
 * same boundary and tries what must fail there. Any success refuses the run.
 * It reports what it managed inside; the host then checks what it can see
 * from outside (a write that "worked" into a private /tmp is no escape; a
 * file that appears in the user's repository is).
 */

/** The host the canary asks the proxy for: never allowed (.invalid is reserved). */
export const CANARY_PROXY_HOST = 'lanes-canary.invalid';

/** A value only the extension host's environment holds: seen inside the boundary, the environment leaked. */
const ENVIRONMENT_MARKER_NAME = 'AGENT_LANES_ENVIRONMENT_CANARY';
function environmentMarker(): string {
  if (!process.env[ENVIRONMENT_MARKER_NAME]) process.env[ENVIRONMENT_MARKER_NAME] = `lanes-env-${randomBytes(12).toString('hex')}`;
  return process.env[ENVIRONMENT_MARKER_NAME];
}

interface CanarySpec {
  writeTargets: string[];
  homeFiles: { path: string; sha256: string }[];
  environmentMarker: string;
  connect: { host: string; port: number }[];
  push: { remote: string; ref: string };
}

/** Runs as `node -e CANARY_SOURCE <spec JSON>`; prints one JSON line: the probes. Node built-ins only. */
const CANARY_SOURCE = String.raw`
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const spec = JSON.parse(process.argv[1]);
const probes = [];
const add = (name, escaped, detail, skipped) => probes.push({ name, outcome: skipped ? 'skipped' : escaped ? 'escaped' : 'refused', detail });
const wrote = [];
for (const target of spec.writeTargets) {
  try { fs.writeFileSync(target, 'agent-lanes canary', { flag: 'wx' }); wrote.push(target); } catch (error) { /* refused */ }
}
add('writeOutside', false, wrote.length ? 'wrote inside the boundary only: ' + wrote.join(', ') : 'every write outside the worktree was refused');
const seen = [];
for (const file of spec.homeFiles) {
  try { if (crypto.createHash('sha256').update(fs.readFileSync(file.path)).digest('hex') === file.sha256) seen.push(file.path); } catch (error) { /* hidden */ }
}
add('readHome', seen.length > 0, seen.length ? 'read ' + seen.join(', ') : spec.homeFiles.length + ' file(s) of your home folder were not readable', spec.homeFiles.length === 0);
const leaked = Object.keys(process.env).filter((name) => String(process.env[name]).includes(spec.environmentMarker));
if (process.env.SSH_AUTH_SOCK) leaked.push('SSH_AUTH_SOCK');
add('editorEnvironment', leaked.length > 0, leaked.length ? 'saw ' + leaked.join(', ') : "no variable of the editor's environment was visible");
const tryConnect = (target) => new Promise((done) => {
  const socket = net.connect({ host: target.host, port: target.port });
  const end = (ok) => { socket.destroy(); done(ok); };
  socket.setTimeout(1500, () => end(false));
  socket.on('connect', () => end(true));
  socket.on('error', () => end(false));
});
const viaProxy = () => new Promise((done) => {
  const proxy = process.env.HTTPS_PROXY;
  if (!proxy) return done(undefined);
  const url = new URL(proxy);
  const request = http.request({ host: url.hostname, port: url.port, method: 'CONNECT', path: 'lanes-canary.invalid:443', timeout: 3000 });
  request.on('connect', (response, socket) => { socket.destroy(); done(response.statusCode); });
  request.on('timeout', () => { request.destroy(); done(0); });
  request.on('error', () => done(0));
  request.end();
});
const tryPush = () => new Promise((done) => {
  let stderr = '';
  const child = spawn('git', ['push', '--quiet', spec.push.remote, 'HEAD:' + spec.push.ref], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.on('error', (error) => { clearTimeout(timer); done({ missing: error.code === 'ENOENT', status: -1, stderr }); });
  child.on('close', (status) => { clearTimeout(timer); done({ missing: false, status, stderr }); });
});
(async () => {
  const pushing = tryPush();
  const reached = [];
  const connected = await Promise.all(spec.connect.map(tryConnect));
  spec.connect.forEach((target, index) => { if (connected[index]) reached.push(target.host + ':' + target.port); });
  add('connectHost', reached.length > 0, reached.length ? 'connected to ' + reached.join(', ') : 'no direct connection to the host (' + spec.connect.map((t) => t.host + ':' + t.port).join(', ') + ')');
  const status = await viaProxy();
  if (status === undefined) add('proxyRefuses', false, 'no proxy: the network is off', true);
  else add('proxyRefuses', status === 200, status === 200 ? 'the proxy let lanes-canary.invalid through' : 'the proxy refused a host that is not allowed (' + status + ')');
  const push = await pushing;
  if (push.missing) add('push', false, 'no git in the boundary');
  else add('push', push.status === 0, push.status === 0 ? 'pushed to ' + spec.push.remote : 'git push to your repository failed: ' + String(push.stderr || '').trim().split('\n').pop().slice(0, 200));
  const report = JSON.stringify({ probes }) + '\n';
  // In the launcher before the agent (CANARY_THEN_AGENT) the report goes to the host, which answers whether the agent starts.
  if (typeof globalThis.__lanesCanaryReport === 'function') return globalThis.__lanesCanaryReport(report);
  process.stdout.write(report);
  // Run inside the egress launcher (CANARY_IN_LAUNCHER), the launcher ends here; as its own program, Node does.
  if (typeof globalThis.__lanesCanaryDone === 'function') globalThis.__lanesCanaryDone();
})();
`;

/** What the host prepares before a canary run, and checks after it. */
export interface CanaryPlan {
  /** `node -e CANARY_SOURCE spec` — the arguments after the node program. */
  args: string[];
  /** After the run: parses its output and adds what the host sees. */
  verify(stdout: string): Promise<CanaryProbe[]>;
  /** Closes the host listener. */
  close(): Promise<void>;
}

/** Up to five small files of the home folder, with their digests: the canary must not be able to read them. */
async function homeFiles(home: string): Promise<{ path: string; sha256: string }[]> {
  const candidates = ['.ssh', '.gitconfig', '.git-credentials', '.netrc', '.npmrc', '.bash_history', '.profile', '.bashrc'];
  const found: { path: string; sha256: string }[] = [];
  const consider = async (path: string) => {
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isFile() || info.size === 0 || info.size > 256 * 1024 || found.length >= 5) return;
    const content = await readFile(path).catch(() => undefined);
    if (content) found.push({ path, sha256: createHash('sha256').update(content).digest('hex') });
  };
  for (const name of candidates) {
    const path = join(home, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory()) for (const entry of (await readdir(path).catch(() => [])).slice(0, 10)) await consider(join(path, entry));
    else await consider(path);
  }
  return found;
}

function hostAddresses(): string[] {
  const addresses = ['127.0.0.1'];
  for (const list of Object.values(networkInterfaces()))
    for (const address of list ?? []) if (address.family === 'IPv4' && !address.internal) addresses.push(address.address);
  return addresses.slice(0, 3);
}

export interface CanaryPlanOptions {
  repoRoot: string;
  /** The repository's git common directory, when the caller knows it already. */
  gitCommonDir?: string;
  /** Folders outside the worktree that the boundary must keep read-only (the change's storage, the home folder). */
  outsideFolders: string[];
  home: string;
}

export async function planCanary(options: CanaryPlanOptions): Promise<CanaryPlan> {
  const nonce = randomBytes(6).toString('hex');
  const name = `lanes-canary-${nonce}`;
  const gitDir =
    options.gitCommonDir ?? (await git(options.repoRoot, ['rev-parse', '--path-format=absolute', '--git-common-dir'])).stdout.trim();
  const writeTargets = [
    join(options.repoRoot, name),
    join(gitDir, 'hooks', name),
    join(gitDir, name),
    ...options.outsideFolders.map((folder) => join(folder, name)),
  ];
  const listener: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((done, fail) => listener.once('error', fail).listen(0, '0.0.0.0', () => done()));
  const port = (listener.address() as { port: number }).port;
  const ref = `refs/heads/${name}`;
  const spec: CanarySpec = {
    writeTargets,
    homeFiles: await homeFiles(options.home),
    environmentMarker: environmentMarker(),
    connect: hostAddresses().map((host) => ({ host, port })),
    push: { remote: options.repoRoot, ref },
  };
  const close = () => new Promise<void>((done) => listener.close(() => done()));
  return {
    args: ['-e', CANARY_SOURCE, JSON.stringify(spec)],
    close,
    async verify(stdout: string): Promise<CanaryProbe[]> {
      const line = stdout.trim().split('\n').pop() ?? '';
      let probes: CanaryProbe[];
      try {
        probes = CanaryProbeSchema.array().parse((JSON.parse(line) as { probes: unknown }).probes);
      } catch {
        throw new Error(`the canary did not report (its output: ${JSON.stringify(stdout.slice(0, 300))})`);
      }
      // What the host sees decides: a write is an escape only if it landed outside.
      const landed: string[] = [];
      for (const target of writeTargets) {
        if (
          await lstat(target).then(
            () => true,
            () => false,
          )
        ) {
          landed.push(target);
          await rm(target, { force: true, recursive: true });
        }
      }
      // A push writes a loose ref; packed-refs is read too, in case something packed it since.
      const pushed =
        (await lstat(join(gitDir, ref)).then(
          () => true,
          () => false,
        )) || (await readFile(join(gitDir, 'packed-refs'), 'utf8').catch(() => '')).includes(` ${ref}\n`);
      if (pushed) await git(options.repoRoot, ['update-ref', '-d', ref]);
      return probes.map((probe) => {
        if (probe.name === 'writeOutside')
          return landed.length
            ? { ...probe, outcome: 'escaped' as const, detail: `wrote ${landed.join(', ')}` }
            : { ...probe, outcome: 'refused' as const, detail: 'no write outside the worktree reached the host' };
        if (probe.name === 'push' && pushed) return { ...probe, outcome: 'escaped' as const, detail: `pushed ${ref} to your repository` };
        return probe;
      });
    },
  };
}
