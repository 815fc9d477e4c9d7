import { lookup } from 'node:dns/promises';
import { chmod, rm } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer, request as httpRequest } from 'node:http';
import { BlockList, type Socket, connect, isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { egressAllowed } from '../../../core/draft/egressAllowlist';

/**
 * The agent's only way out of a boundary with the network off: an HTTP proxy
 * in the extension host, on a Unix socket that is mounted into the boundary
 * (egressLauncher bridges it to 127.0.0.1 in there). It allows CONNECT (HTTPS)
 * and plain HTTP to the hosts policy lists, and refuses everything else with
 * 403, before any DNS lookup; a listed name that resolves to a private,
 * loopback or link-local address is refused too (DNS rebinding onto the
 * host's own services), unless the entry writes that address out.
 */

interface EgressDecision {
  host: string;
  port: number;
  at: string;
  allowed: boolean;
  reason?: string;
  method: 'CONNECT' | 'HTTP';
}

export interface EgressProxy {
  socketPath: string;
  decisions(): EgressDecision[];
  refusals(): EgressDecision[];
  close(): Promise<void>;
}

export interface EgressProxyOptions {
  allow: readonly string[];
  socketPath: string;
  onDecision?: (decision: EgressDecision) => void;
  connectTimeoutMs?: number;
}

/** A short path for the socket (Unix socket paths are limited to about 107 bytes). */
export function egressSocketPath(nonce: string): string {
  return join(tmpdir(), `agent-lanes-egress-${nonce}.sock`);
}

const PRIVATE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const)
  PRIVATE.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  ['::1', 128],
  ['::', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const)
  PRIVATE.addSubnet(network, prefix, 'ipv6');

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  const family = isIP(address);
  return family === 4 ? PRIVATE.check(address, 'ipv4') : family === 6 ? PRIVATE.check(address, 'ipv6') : true;
}

/** host:port from a CONNECT target; undefined when malformed. */
function parseTarget(target: string): { host: string; port: number } | undefined {
  const match = /^\[?([^\]\s/]+?)\]?:(\d{1,5})$/.exec(target);
  if (!match) return undefined;
  const port = Number(match[2]);
  return port > 0 && port < 65536 ? { host: match[1]!.toLowerCase(), port } : undefined;
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const decisions: EgressDecision[] = [];
  const open = new Set<Socket | Duplex>();
  const decide = (host: string, port: number, method: EgressDecision['method'], allowed: boolean, reason?: string) => {
    const decision: EgressDecision = { host, port, at: new Date().toISOString(), allowed, method, ...(reason ? { reason } : {}) };
    decisions.push(decision);
    options.onDecision?.(decision);
    return decision;
  };
  const refusal = (host: string, port: number) =>
    `Agent Lanes refused ${host}:${port}: it is not in policy's lanes.agent.network.allow (${options.allow.join(', ') || 'empty: no network'}).\n`;

  /** Checks policy, then DNS; the address to connect to, or why not. */
  const resolve = async (host: string, port: number): Promise<{ address: string } | { refused: string }> => {
    if (!egressAllowed(options.allow, host, port)) return { refused: refusal(host, port) };
    if (isIP(host)) return { address: host };
    const addresses = await lookup(host, { all: true }).catch(() => []);
    if (!addresses.length) return { refused: `Agent Lanes could not resolve ${host}.\n` };
    const safe = addresses.find((entry) => !isPrivateAddress(entry.address));
    if (!safe || addresses.some((entry) => isPrivateAddress(entry.address)))
      return {
        refused: `Agent Lanes refused ${host}:${port}: it resolves to a private or loopback address; list the address itself to allow it.\n`,
      };
    return { address: safe.address };
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void (async () => {
      let url: URL;
      try {
        url = new URL(request.url ?? '');
      } catch {
        response
          .writeHead(400, { 'content-type': 'text/plain' })
          .end('Agent Lanes egress proxy: send absolute-form requests (a proxy request).\n');
        return;
      }
      if (url.protocol !== 'http:') {
        response.writeHead(400, { 'content-type': 'text/plain' }).end('Agent Lanes egress proxy: use CONNECT for HTTPS.\n');
        return;
      }
      const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
      const port = Number(url.port || 80);
      const target = await resolve(host, port);
      if ('refused' in target) {
        decide(host, port, 'HTTP', false, target.refused.trim());
        response.writeHead(403, { 'content-type': 'text/plain' }).end(target.refused);
        return;
      }
      decide(host, port, 'HTTP', true);
      const headers = { ...request.headers };
      delete headers['proxy-authorization'];
      delete headers['proxy-connection'];
      const upstream = httpRequest(
        { host: target.address, port, method: request.method, path: `${url.pathname}${url.search}`, headers },
        (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      upstream.setTimeout(options.connectTimeoutMs ?? 30_000, () => upstream.destroy(new Error('timed out')));
      upstream.on('error', () => {
        if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`Agent Lanes egress proxy: ${host}:${port} did not answer.\n`);
      });
      request.pipe(upstream);
    })();
  });
  server.headersTimeout = 10_000;
  server.maxHeadersCount = 100;
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('connect', (request: IncomingMessage, client: Duplex, head: Buffer) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    const deny = (status: number, text: string) =>
      client.end(
        `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Bad Request'}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${text}`,
      );
    const parsed = parseTarget(request.url ?? '');
    if (!parsed) {
      deny(400, 'Agent Lanes egress proxy: CONNECT needs host:port.\n');
      return;
    }
    void resolve(parsed.host, parsed.port).then((target) => {
      if ('refused' in target) {
        decide(parsed.host, parsed.port, 'CONNECT', false, target.refused.trim());
        deny(403, target.refused);
        return;
      }
      decide(parsed.host, parsed.port, 'CONNECT', true);
      const upstream = connect({ host: target.address, port: parsed.port, timeout: options.connectTimeoutMs ?? 30_000 });
      open.add(upstream);
      upstream.once('close', () => open.delete(upstream));
      upstream.once('connect', () => {
        upstream.setTimeout(0);
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('timeout', () => upstream.destroy());
      upstream.on('error', () => {
        if (!client.destroyed) client.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n');
      });
    });
  });
  await rm(options.socketPath, { force: true });
  await new Promise<void>((done, fail) => server.once('error', fail).listen(options.socketPath, () => done()));
  await chmod(options.socketPath, 0o600);
  return {
    socketPath: options.socketPath,
    decisions: () => [...decisions],
    refusals: () => decisions.filter((decision) => !decision.allowed),
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
      await rm(options.socketPath, { force: true });
    },
  };
}
