import * as assert from 'node:assert/strict';
import { request as httpRequest, createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { egressAllowed, isIpLiteral } from '../../src/core/draft/egressAllowlist';
import { egressSocketPath, isPrivateAddress, startEgressProxy, type EgressProxy } from '../../src/infra/draft/boundary/egressProxy';

describe('egress allowlist', () => {
  it('matches names, sub-domain wildcards, ports and IP literals as policy writes them', () => {
    const allow = ['api.example.com', '*.cdn.example.net', 'registry.npmjs.org:8443', '10.1.2.3:9000'];
    const cases: [string, number, boolean][] = [
      ['api.example.com', 443, true],
      ['API.Example.com.', 80, true],
      ['api.example.com', 22, false],
      ['evil.api.example.com', 443, false],
      ['a.cdn.example.net', 443, true],
      ['a.b.cdn.example.net', 443, true],
      ['cdn.example.net', 443, false],
      ['registry.npmjs.org', 8443, true],
      ['registry.npmjs.org', 443, false],
      ['10.1.2.3', 9000, true],
      ['10.1.2.3', 443, false],
      ['', 443, false],
    ];
    for (const [host, port, expected] of cases) assert.equal(egressAllowed(allow, host, port), expected, `${host}:${port}`);
    assert.equal(egressAllowed([], 'api.example.com', 443), false, 'an empty list allows nothing');
    assert.equal(egressAllowed(['*.example.com'], '1.2.3.4', 443), false, 'a wildcard never matches an address');
    assert.ok(isIpLiteral('::1') && isIpLiteral('127.0.0.1') && !isIpLiteral('example.com'));
  });

  it('knows the addresses a name must not resolve to', () => {
    for (const address of [
      '127.0.0.1',
      '10.0.0.8',
      '172.20.1.1',
      '192.168.1.1',
      '169.254.169.254',
      '::1',
      'fd00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
    ])
      assert.equal(isPrivateAddress(address), true, address);
    for (const address of ['93.184.216.34', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(isPrivateAddress(address), false, address);
  });
});

describe('egress proxy (real sockets)', () => {
  let target: Server;
  let port: number;
  let proxy: EgressProxy;
  const decided: string[] = [];
  before(async () => {
    target = createServer((request, response) => response.end(`target saw ${request.method} ${request.url} host=${request.headers.host}`));
    await new Promise<void>((done) => target.listen(0, '127.0.0.1', () => done()));
    port = (target.address() as { port: number }).port;
    proxy = await startEgressProxy({
      allow: [`127.0.0.1:${port}`],
      socketPath: egressSocketPath(randomBytes(4).toString('hex')),
      onDecision: (decision) =>
        decided.push(`${decision.method} ${decision.host}:${decision.port} ${decision.allowed ? 'allowed' : 'refused'}`),
    });
  });
  after(async () => {
    await proxy.close();
    target.close();
  });

  const viaProxy = (method: string, path: string, extra: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((done, fail) => {
      const request = httpRequest({ socketPath: proxy.socketPath, method, path, headers: extra }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => done({ status: response.statusCode ?? 0, body }));
      });
      request.on('connect', (response, socket) => {
        socket.destroy();
        done({ status: response.statusCode ?? 0, body: '' });
      });
      request.on('error', fail);
      request.end();
    });

  it('forwards plain HTTP and tunnels CONNECT to an allowed host', async () => {
    const plain = await viaProxy('GET', `http://127.0.0.1:${port}/hello?x=1`, { host: `127.0.0.1:${port}` });
    assert.equal(plain.status, 200);
    assert.equal(plain.body, `target saw GET /hello?x=1 host=127.0.0.1:${port}`);
    const tunnel = await new Promise<string>((done, fail) => {
      const request = httpRequest({ socketPath: proxy.socketPath, method: 'CONNECT', path: `127.0.0.1:${port}` });
      request.on('connect', (response, socket) => {
        assert.equal(response.statusCode, 200);
        socket.write(`GET /through HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('end', () => done(text));
      });
      request.on('error', fail);
      request.end();
    });
    assert.match(tunnel, /target saw GET \/through/);
  });

  it('refuses a host policy does not list, before any lookup, and records it', async () => {
    const refused = await viaProxy('CONNECT', 'exfiltrate.example:443');
    assert.equal(refused.status, 403);
    const plain = await viaProxy('GET', 'http://exfiltrate.example/steal');
    assert.equal(plain.status, 403);
    assert.match(plain.body, /not in policy's lanes\.agent\.network\.allow/);
    assert.ok(decided.includes('CONNECT exfiltrate.example:443 refused'));
    assert.ok(decided.includes('HTTP exfiltrate.example:80 refused'));
    assert.equal(proxy.refusals().length >= 2, true);
  });

  it('answers malformed requests with 400, not a connection', async () => {
    assert.equal((await viaProxy('GET', '/relative')).status, 400);
    assert.equal((await viaProxy('CONNECT', 'no-port')).status, 400);
  });

  it('refuses a listed name that resolves to a loopback address (DNS rebinding onto the host)', async () => {
    const rebinding = await startEgressProxy({
      allow: [`localhost:${port}`],
      socketPath: egressSocketPath(randomBytes(4).toString('hex')),
    });
    try {
      const request = await new Promise<number>((done, fail) => {
        const req = httpRequest({ socketPath: rebinding.socketPath, method: 'CONNECT', path: `localhost:${port}` });
        req.on('connect', (response, socket) => {
          socket.destroy();
          done(response.statusCode ?? 0);
        });
        req.on('error', fail);
        req.end();
      });
      assert.equal(request, 403);
      assert.match(rebinding.refusals()[0]?.reason ?? '', /private or loopback/);
    } finally {
      await rebinding.close();
    }
  });

  it('closes its socket file and open tunnels on close', async () => {
    const echo = createTcpServer((socket) => socket.pipe(socket));
    await new Promise<void>((done) => echo.listen(0, '127.0.0.1', () => done()));
    const echoPort = (echo.address() as { port: number }).port;
    const own = await startEgressProxy({ allow: [`127.0.0.1:${echoPort}`], socketPath: egressSocketPath(randomBytes(4).toString('hex')) });
    const socket = connect(own.socketPath);
    await new Promise((done) => socket.once('connect', done));
    socket.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nhost: x\r\n\r\n`);
    await new Promise((done) => socket.once('data', done));
    const closed = new Promise((done) => socket.once('close', done));
    await own.close();
    await closed;
    echo.close();
    await assert.rejects(new Promise((done, fail) => connect(own.socketPath).once('connect', done).once('error', fail)));
  });
});
