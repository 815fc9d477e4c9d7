import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { EGRESS_LAUNCHER_SOURCE, launcherArgv } from '../../src/infra/draft/boundary/egressLauncher';
import { egressSocketPath, startEgressProxy, type EgressProxy } from '../../src/infra/draft/boundary/egressProxy';

type EgressDecision = ReturnType<EgressProxy['decisions']>[number];

/** The "internet": a plain HTTP server on the host's loopback that echoes the Host header it received. */
async function startWebServer(): Promise<{ server: HttpServer; port: number }> {
  const server = createHttpServer((req, res) => {
    res
      .writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' })
      .end(`hello ${req.method} ${req.url} host=${req.headers.host}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** A raw TCP echo server: what a TLS server looks like to the proxy (bytes, not HTTP). */
async function startEchoServer(): Promise<{ server: TcpServer; port: number }> {
  const server = createTcpServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function closeServer(server: HttpServer | TcpServer): Promise<void> {
  if ('closeAllConnections' in server) server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

interface ConnectReply {
  status: number;
  head: string;
  socket: Socket;
  /** Bytes after the reply's header (the body of a refusal). */
  rest: Buffer;
}

/** Sends CONNECT over the proxy's Unix socket byte for byte and reads the reply's status line and headers. */
function sendConnect(
  socketPath: string,
  target: string,
  request = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
): Promise<ConnectReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath, () => socket.write(request));
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const head = buffer.subarray(0, end).toString('latin1');
      resolve({ status: Number(head.split(' ')[1]), head, socket, rest: buffer.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

function readToEnd(socket: Socket, already: Buffer = Buffer.alloc(0)): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks = [already];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', reject);
    socket.resume();
  });
}

/** One plain-HTTP request through the proxy's Unix socket, in absolute form. */
function proxyGet(
  socketPath: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path: url, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const nonce = () => randomBytes(6).toString('hex');

function assertRecentIso(at: string): void {
  assert.match(at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.now() - Date.parse(at)) < 60_000, at);
}

describe('egress proxy', function () {
  let web: { server: HttpServer; port: number };
  let echo: { server: TcpServer; port: number };
  let proxy: EgressProxy | undefined;
  let heard: EgressDecision[];

  before(async () => {
    web = await startWebServer();
    echo = await startEchoServer();
  });
  after(async () => {
    await closeServer(web.server);
    await closeServer(echo.server);
  });
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  const start = async (allow: string[]): Promise<EgressProxy> => {
    heard = [];
    proxy = await startEgressProxy({
      allow,
      socketPath: egressSocketPath(nonce()),
      onDecision: (d) => heard.push(d),
      connectTimeoutMs: 5_000,
    });
    return proxy;
  };

  it('egressSocketPath is short, under the temporary directory, and takes only a plain nonce', () => {
    const path = egressSocketPath('abc123');
    assert.equal(path, `${tmpdir()}/agent-lanes-egress-abc123.sock`);
    assert.ok(Buffer.byteLength(path) <= 103);
    assert.throws(() => egressSocketPath('../x'), /nonce/);
    assert.throws(() => egressSocketPath(''), /nonce/);
  });

  it('listens on a socket only its user may open, and removes it on close', async () => {
    const p = await start([]);
    assert.equal(statSync(p.socketPath).mode & 0o777, 0o600);
    assert.ok(statSync(p.socketPath).isSocket());
    await p.close();
    proxy = undefined;
    assert.equal(existsSync(p.socketPath), false);
  });

  it('forwards plain HTTP to an allowed IP literal, with the checked host as Host', async () => {
    const p = await start([`127.0.0.1:${web.port}`]);
    const reply = await proxyGet(p.socketPath, `http://127.0.0.1:${web.port}/hello?x=1`, { host: 'other.example' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, `hello GET /hello?x=1 host=127.0.0.1:${web.port}`);
    assert.equal(reply.headers['x-upstream'], 'yes');
    assert.deepEqual(
      p.decisions().map(({ host, port, allowed, method }) => ({ host, port, allowed, method })),
      [{ host: '127.0.0.1', port: web.port, allowed: true, method: 'HTTP' }],
    );
    assert.deepEqual(p.refusals(), []);
  });

  it("forwards plain HTTP over the socket it checked even where http.request and net.connect are replaced (VS Code's extension host)", async () => {
    // As @vscode/proxy-agent does in the extension host: http.request gets an agent of its own (which opens its own
    // connection, ignoring createConnection) and net.connect is wrapped. The proxy must use neither.
    const load = createRequire(__filename);
    const httpModule = load('node:http') as typeof import('node:http');
    const netModule = load('node:net') as typeof import('node:net');
    const original = { request: httpModule.request, connect: netModule.connect };
    let patchedCalls = 0;
    httpModule.request = ((options: import('node:http').RequestOptions, callback?: () => void) => {
      // The test's own client speaks to the proxy's Unix socket (socketPath); only requests to a host count.
      if (!options.socketPath) patchedCalls++;
      return original.request({ ...options, agent: new httpModule.Agent() }, callback);
    }) as typeof httpModule.request;
    netModule.connect = ((...args: Parameters<typeof netModule.connect>) => {
      // The test's own client reaches the proxy's Unix socket with net.connect too; only TCP connections count.
      if (typeof args[0] === 'object' && 'port' in args[0]) patchedCalls++;
      return original.connect(...args);
    }) as typeof netModule.connect;
    try {
      const p = await start([`127.0.0.1:${web.port}`]);
      const reply = await proxyGet(p.socketPath, `http://127.0.0.1:${web.port}/patched`, {});
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.body, `hello GET /patched host=127.0.0.1:${web.port}`);
      assert.equal(patchedCalls, 0, 'the proxy went around the replaced functions');
    } finally {
      httpModule.request = original.request;
      netModule.connect = original.connect;
    }
  });

  it('tunnels CONNECT to an allowed IP literal byte for byte', async () => {
    const p = await start([`127.0.0.1:${echo.port}`]);
    const reply = await sendConnect(p.socketPath, `127.0.0.1:${echo.port}`);
    assert.equal(reply.status, 200, reply.head);
    assert.match(reply.head, /^HTTP\/1\.1 200 Connection Established$/);
    reply.socket.resume();
    const echoed = new Promise<string>((resolve) => reply.socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
    reply.socket.write('\x16\x03\x01 not HTTP at all\r\n\r\n');
    assert.equal(await echoed, '\x16\x03\x01 not HTTP at all\r\n\r\n');
    reply.socket.destroy();
    assert.deepEqual(
      p.decisions().map(({ host, port, allowed, method }) => ({ host, port, allowed, method })),
      [{ host: '127.0.0.1', port: echo.port, allowed: true, method: 'CONNECT' }],
    );
  });

  it('refuses CONNECT to a host not in the list with 403, before any lookup, and records host, port and time', async () => {
    const p = await start([`127.0.0.1:${echo.port}`, 'api.anthropic.com']);
    const reply = await sendConnect(p.socketPath, 'not-listed.invalid:443');
    assert.equal(reply.status, 403, reply.head);
    const body = await readToEnd(reply.socket, reply.rest);
    assert.equal(body, 'Agent Lanes refused not-listed.invalid:443: it is not in lanes.agent.network.allow.\n');
    // A port not listed for a listed host is refused the same way.
    const wrongPort = await sendConnect(p.socketPath, `127.0.0.1:${web.port}`);
    assert.equal(wrongPort.status, 403);
    wrongPort.socket.destroy();
    const refusals = p.refusals();
    assert.equal(refusals.length, 2);
    const [first] = refusals;
    assert.deepEqual(
      { host: first.host, port: first.port, allowed: first.allowed, method: first.method, reason: first.reason },
      // "not in the list", not "lookup failed": the allowlist answered before DNS was asked.
      { host: 'not-listed.invalid', port: 443, allowed: false, method: 'CONNECT', reason: 'not in lanes.agent.network.allow' },
    );
    assertRecentIso(first.at);
    assert.deepEqual(heard, p.decisions());
  });

  it('refuses plain HTTP to a host not in the list with 403 naming the host and the setting', async () => {
    const p = await start(['api.anthropic.com']);
    const reply = await proxyGet(p.socketPath, 'http://Example.COM./index.html');
    assert.equal(reply.status, 403);
    assert.equal(reply.body, 'Agent Lanes refused example.com:80: it is not in lanes.agent.network.allow.\n');
    assert.deepEqual(
      p.refusals().map(({ host, port, method }) => ({ host, port, method })),
      [{ host: 'example.com', port: 80, method: 'HTTP' }],
    );
  });

  it('refuses a listed name that resolves to loopback (DNS rebinding)', async () => {
    const p = await start([`localhost:${echo.port}`, `localhost:${web.port}`]);
    const reply = await sendConnect(p.socketPath, `localhost:${echo.port}`);
    assert.equal(reply.status, 403, reply.head);
    assert.match(
      await readToEnd(reply.socket, reply.rest),
      /^Agent Lanes refused localhost:\d+: it resolves to an internal address \((127\.0\.0\.1|::1)\); only an IP address listed exactly in lanes\.agent\.network\.allow may be internal\.\n$/,
    );
    const http = await proxyGet(p.socketPath, `http://localhost:${web.port}/`);
    assert.equal(http.status, 403);
    assert.match(http.body, /internal address/);
    assert.deepEqual(
      p.refusals().map(({ host, allowed, reason }) => ({ host, allowed, internal: /^resolves to an internal address/.test(reason ?? '') })),
      [
        { host: 'localhost', allowed: false, internal: true },
        { host: 'localhost', allowed: false, internal: true },
      ],
    );
  });

  it('answers 400 to a request that is not in absolute form and to a malformed CONNECT target, recording no decision', async () => {
    const p = await start([`127.0.0.1:${web.port}`]);
    assert.equal((await proxyGet(p.socketPath, '/relative')).status, 400);
    assert.equal((await proxyGet(p.socketPath, `http://user:pw@127.0.0.1:${web.port}/`)).status, 400);
    for (const target of ['127.0.0.1', 'host:99999', 'a b:443', 'http://x:443']) {
      const reply = await sendConnect(p.socketPath, target);
      assert.equal(reply.status, 400, target);
      reply.socket.destroy();
    }
    const huge = await sendConnect(p.socketPath, 'x', `CONNECT a.example:443 HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(huge.status, 431);
    huge.socket.destroy();
    assert.deepEqual(p.decisions(), []);
  });

  it('close() ends open tunnels', async () => {
    const p = await start([`127.0.0.1:${echo.port}`]);
    const reply = await sendConnect(p.socketPath, `127.0.0.1:${echo.port}`);
    assert.equal(reply.status, 200);
    const closed = new Promise<void>((resolve) => reply.socket.once('close', () => resolve()));
    reply.socket.resume();
    await p.close();
    proxy = undefined;
    await closed;
  });
});

describe('egress launcher', function () {
  it('launcherArgv puts node, the launcher and "--" in front of the socket and the agent', () => {
    assert.deepEqual(launcherArgv('/usr/bin/node', '/tmp/s.sock', ['agent', '--flag']), [
      '/usr/bin/node',
      '-e',
      EGRESS_LAUNCHER_SOURCE,
      '--',
      '/tmp/s.sock',
      'agent',
      '--flag',
    ]);
    assert.throws(() => launcherArgv('/usr/bin/node', '/tmp/s.sock', []), /empty/);
  });

  it('exits 125 with one line on stderr when the proxy socket is missing, without starting the agent', async () => {
    const missing = egressSocketPath(nonce());
    const [file, ...args] = launcherArgv(process.execPath, missing, [process.execPath, '-e', 'console.log("agent ran")']);
    const result = await run(file, args);
    assert.equal(result.code, 125);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      `agent-lanes egress launcher: the egress proxy socket ${missing} is missing, so the agent has no network; it was not started.\n`,
    );
  });

  describe('with a proxy', () => {
    let proxy: EgressProxy;
    before(async () => {
      proxy = await startEgressProxy({ allow: [], socketPath: egressSocketPath(nonce()) });
    });
    after(() => proxy.close());

    it('starts the agent with the proxy variables added to its own environment, and exits with its code', async () => {
      const agent = `const keys = ['HTTPS_PROXY','https_proxy','HTTP_PROXY','http_proxy','ALL_PROXY','all_proxy','NO_PROXY','no_proxy','KEEP_ME'];
        console.log(JSON.stringify(Object.fromEntries(keys.map((k) => [k, process.env[k]])))); process.exit(7);`;
      const [file, ...args] = launcherArgv(process.execPath, proxy.socketPath, [process.execPath, '-e', agent]);
      const result = await run(file, args, { ...process.env, KEEP_ME: 'kept', HTTPS_PROXY: 'http://elsewhere:1' });
      assert.equal(result.code, 7, result.stderr);
      const env = JSON.parse(result.stdout) as Record<string, string>;
      assert.match(env.HTTPS_PROXY, /^http:\/\/127\.0\.0\.1:\d+$/);
      for (const key of ['https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy']) assert.equal(env[key], env.HTTPS_PROXY, key);
      assert.equal(env.NO_PROXY, 'localhost,127.0.0.1');
      assert.equal(env.no_proxy, 'localhost,127.0.0.1');
      assert.equal(env.KEEP_ME, 'kept');
    });

    it('re-raises the signal the agent died of, and forwards SIGTERM to it', async () => {
      const died = launcherArgv(process.execPath, proxy.socketPath, [process.execPath, '-e', 'process.kill(process.pid, "SIGTERM")']);
      const result = await run(died[0], died.slice(1));
      assert.equal(result.signal, 'SIGTERM');

      const agent = `process.on('SIGTERM', () => { console.log('agent got SIGTERM'); process.exit(3); }); console.log('ready'); setInterval(() => {}, 1000);`;
      const [file, ...args] = launcherArgv(process.execPath, proxy.socketPath, [process.execPath, '-e', agent]);
      const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      await new Promise<void>((resolve) =>
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString('utf8');
          if (stdout.includes('ready')) resolve();
        }),
      );
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 3);
      assert.match(stdout, /agent got SIGTERM/);
    });
  });
});

/** Inside the boundary: CONNECT through HTTPS_PROXY to each target, then a direct connection; one JSON line each. */
const BOUNDARY_CLIENT = `
const net = require('net');
const proxy = new URL(process.env.HTTPS_PROXY);
const viaProxy = (target) => new Promise((resolve) => {
  const s = net.connect(Number(proxy.port), proxy.hostname, () => s.write('CONNECT ' + target + ' HTTP/1.1\\r\\nHost: ' + target + '\\r\\n\\r\\n'));
  let buf = '';
  let tunnelled = false;
  s.on('data', (d) => {
    buf += d.toString('latin1');
    const end = buf.indexOf('\\r\\n\\r\\n');
    if (!tunnelled && end >= 0) {
      const status = Number(buf.split(' ')[1]);
      if (status !== 200) { s.destroy(); return resolve({ target, status, body: buf.slice(end + 4) }); }
      tunnelled = true;
      buf = '';
      s.write('ping through the tunnel');
    } else if (tunnelled && buf.length >= 23) { s.destroy(); resolve({ target, status: 200, echo: buf }); }
  });
  s.on('error', (e) => resolve({ target, error: e.code }));
});
const direct = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve({ direct: port, connected: true }); });
  s.on('error', (e) => resolve({ direct: port, error: e.code }));
});
(async () => {
  const [allowed, refused, port] = process.argv.slice(1);
  for (const r of [await viaProxy(allowed), await viaProxy(refused), await direct(Number(port))]) console.log(JSON.stringify(r));
})();
`;

describe('egress through bubblewrap', function () {
  this.timeout(30_000);
  const bwrap = '/usr/bin/bwrap';
  let echo: { server: TcpServer; port: number };
  let proxy: EgressProxy;

  before(async function () {
    echo = await startEchoServer();
    proxy = await startEgressProxy({ allow: [`127.0.0.1:${echo.port}`], socketPath: egressSocketPath(nonce()) });
  });
  after(async () => {
    await proxy.close();
    await closeServer(echo.server);
  });

  it('lets the listed host through, refuses the other with 403, and the host loopback is out of reach directly', async () => {
    const socket = proxy.socketPath;
    const allowed = `127.0.0.1:${echo.port}`;
    const agent = [process.execPath, '-e', BOUNDARY_CLIENT, allowed, 'refused.example:443', String(echo.port)];
    const launcher = launcherArgv(process.execPath, socket, agent);
    const args = [
      ...['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'],
      // After --tmpfs /tmp, or the tmpfs would hide it.
      ...['--bind', socket, socket],
      ...['--unshare-net', '--unshare-pid', '--die-with-parent', '--clearenv', '--setenv', 'PATH', process.env.PATH ?? '/usr/bin:/bin'],
      ...launcher,
    ];
    const result = await run(bwrap, args);
    assert.equal(result.code, 0, result.stderr);
    const [through, refused, direct] = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(through, { target: allowed, status: 200, echo: 'ping through the tunnel' });
    assert.deepEqual(refused, {
      target: 'refused.example:443',
      status: 403,
      body: 'Agent Lanes refused refused.example:443: it is not in lanes.agent.network.allow.\n',
    });
    assert.equal(direct.connected, undefined, 'a direct connection to the host loopback must fail inside the namespace');
    assert.equal(direct.error, 'ECONNREFUSED');
    assert.deepEqual(
      proxy.decisions().map(({ host, port, allowed: ok, method }) => ({ host, port, ok, method })),
      [
        { host: '127.0.0.1', port: echo.port, ok: true, method: 'CONNECT' },
        { host: 'refused.example', port: 443, ok: false, method: 'CONNECT' },
      ],
    );
  });
});
