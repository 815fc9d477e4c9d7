// The agent's only way out of its isolation boundary. The boundary has a network namespace with loopback only; its
// launcher (egressLauncher.ts) forwards 127.0.0.1:<port> to this proxy's Unix socket, which is bind-mounted in. The
// proxy runs in the extension host and lets a connection out only to a host and port in `lanes.agent.network.allow`,
// recording every decision. It speaks the two proxy forms agents' HTTP clients use: CONNECT host:port (HTTPS and any
// TLS) and absolute-form plain HTTP (`GET http://host/path`).
import { lookup } from 'node:dns/promises';
import { chmod, rm } from 'node:fs/promises';
import { ClientRequest, createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { EGRESS_ALLOW_SETTING, egressAllowed, isInternalAddress, normalizeTargetHost } from '../../../core/draft/egressAllowlist';

/** One connection the agent asked for, and whether the proxy let it out. */
interface EgressDecision {
  host: string;
  port: number;
  /** ISO time of the decision. */
  at: string;
  /** True when the proxy went on to connect (an upstream that then fails to answer is still `allowed`). */
  allowed: boolean;
  /** Why it was refused; only on refusals. */
  reason?: string;
  method: 'CONNECT' | 'HTTP';
}

export interface EgressProxy {
  socketPath: string;
  /** Every decision so far, oldest first (the first 10,000; `onDecision` sees all of them). */
  decisions(): EgressDecision[];
  refusals(): EgressDecision[];
  /** Stops listening, closes every client and upstream socket, removes the socket file. */
  close(): Promise<void>;
}

interface EgressProxyOptions {
  allow: readonly string[];
  socketPath: string;
  onDecision?: ((decision: EgressDecision) => void) | undefined;
  connectTimeoutMs?: number | undefined;
}

const MAX_HEADER_BYTES = 16 * 1024;
/** A CONNECT authority is at most a 253-byte name, brackets and a port; an absolute URL gets room for a query. */
const MAX_AUTHORITY_CHARS = 300;
const MAX_URL_CHARS = 8 * 1024;
/** A hostile agent can ask forever: the list stays bounded, `onDecision` still hears every decision. */
const MAX_KEPT_DECISIONS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Unix socket paths are limited to 108 bytes including the terminating NUL (104 on macOS). */
const MAX_SOCKET_PATH_BYTES = 103;

/** Headers that describe one hop (client to proxy), never forwarded to the upstream or back. */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/** A short socket path under the temporary directory, for one proxy (`nonce`: letters, digits, `-`, `_`; at most 32). */
export function egressSocketPath(nonce: string): string {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(nonce))
    throw new Error(`egress socket nonce must be 1 to 32 letters, digits, "-" or "_": ${JSON.stringify(nonce)}`);
  const path = join(tmpdir(), `agent-lanes-egress-${nonce}.sock`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES)
    throw new Error(`The egress socket path ${path} is longer than a Unix socket allows: set TMPDIR to a shorter directory, such as /tmp.`);
  return path;
}

/** Starts the proxy on `socketPath` (mode 0600); fails if the path already exists. */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const allow = [...options.allow];
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const kept: EgressDecision[] = [];
  const sockets = new Set<Duplex>();
  const track = (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  const record = (method: EgressDecision['method'], host: string, port: number, refusal?: string): void => {
    const decision: EgressDecision = {
      host,
      port,
      at: new Date().toISOString(),
      allowed: refusal === undefined,
      ...(refusal === undefined ? {} : { reason: refusal }),
      method,
    };
    if (kept.length < MAX_KEPT_DECISIONS) kept.push(decision);
    try {
      options.onDecision?.(decision);
    } catch {
      // An observer's failure must not break the agent's connection or the proxy.
    }
  };

  type Admission = { ok: true; address: string } | { ok: false; status: number; body: string };
  /**
   * The policy decision for one target. The allowlist is asked before anything is resolved, so a refused name never
   * reaches DNS. A listed name must then resolve to public addresses only: otherwise a name the agent controls could
   * point at the host's own services (DNS rebinding). The proxy connects to the address it checked, never re-resolving.
   */
  const admit = async (method: EgressDecision['method'], host: string, ip: string | undefined, port: number): Promise<Admission> => {
    if (!egressAllowed(allow, host, port)) {
      record(method, host, port, `not in ${EGRESS_ALLOW_SETTING}`);
      return refused(403, `Agent Lanes refused ${host}:${port}: it is not in ${EGRESS_ALLOW_SETTING}.`);
    }
    // An IP address passes the allowlist only when listed exactly: that is a deliberate choice, internal or not.
    if (ip !== undefined) {
      record(method, host, port);
      return { ok: true, address: ip };
    }
    let addresses: string[];
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      record(method, host, port, `lookup failed (${code})`);
      return refused(502, `Agent Lanes could not resolve ${host} (${code}).`);
    }
    const internal = addresses.find(isInternalAddress);
    if (internal !== undefined || addresses.length === 0) {
      record(method, host, port, `resolves to an internal address (${internal ?? 'none'})`);
      return refused(
        403,
        `Agent Lanes refused ${host}:${port}: it resolves to an internal address (${internal ?? 'none'}); only an IP address listed exactly in ${EGRESS_ALLOW_SETTING} may be internal.`,
      );
    }
    record(method, host, port);
    return { ok: true, address: addresses[0] };
  };

  let closing = false;
  const connectUpstream = (address: string, port: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      // A lookup that finishes after close() must not open a socket nobody will close.
      if (closing) return reject(new Error('the proxy is closing'));
      // A Socket of its own, not net.connect, which VS Code's extension host replaces (@vscode/proxy-agent).
      const socket = new Socket().connect({ host: address, port });
      track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`timed out after ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const onError = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(socket);
      });
    });

  const handleConnect = async (req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> => {
    // Hold what the client sends (its TLS hello) until the tunnel exists; pipe() resumes it.
    client.pause();
    client.on('error', () => client.destroy());
    const target = parseAuthority(req.url ?? '');
    if (!target) return rawReply(client, 400, 'Bad Request', 'Agent Lanes: CONNECT needs a target of the form host:port.');
    const admission = await admit('CONNECT', target.host, target.ip, target.port);
    if (!admission.ok) return rawReply(client, admission.status, statusText(admission.status), admission.body);
    let upstream: Socket;
    try {
      upstream = await connectUpstream(admission.address, target.port);
    } catch (error) {
      return rawReply(client, 502, 'Bad Gateway', `Agent Lanes could not connect to ${target.host}:${target.port} (${errorText(error)}).`);
    }
    if (client.destroyed) return void upstream.destroy();
    const both = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', both);
    client.on('close', both);
    upstream.on('close', both);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const reply = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end(`${body}\n`);
    };
    const raw = req.url ?? '';
    if (raw.length > MAX_URL_CHARS) return reply(414, 'Agent Lanes: the request target is too long.');
    const target = parseAbsoluteHttpUrl(raw);
    if (!target) return reply(400, 'Agent Lanes: a proxy request needs an absolute http:// URL (use CONNECT for https).');
    const admission = await admit('HTTP', target.host, target.ip, target.port);
    if (!admission.ok) return reply(admission.status, admission.body);
    let socket: Socket;
    try {
      socket = await connectUpstream(admission.address, target.port);
    } catch (error) {
      return reply(502, `Agent Lanes could not connect to ${target.host}:${target.port} (${errorText(error)}).`);
    }
    // A ClientRequest of its own, not http.request: VS Code's extension host replaces http.request
    // (@vscode/proxy-agent), and its agent opens a connection of its own instead of the checked socket
    // (to localhost:80 here: ECONNREFUSED in a real VS Code 1.100, test/e2e/firstDraft.test.ts).
    // No agent: then Node uses createConnection, the socket to the address the proxy checked.
    const upstream = new ClientRequest({
      method: req.method,
      path: target.path,
      // The Host header is the checked target's, so a request cannot name another virtual host on the same address.
      headers: { ...endToEndHeaders(req.headers), host: target.hostHeader },
      createConnection: () => socket,
    });
    upstream.on('response', (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, endToEndHeaders(upstreamRes.headers));
      upstreamRes.pipe(res);
      upstreamRes.on('error', () => res.destroy());
    });
    upstream.on('error', (error) => {
      if (res.headersSent) res.destroy();
      else reply(502, `Agent Lanes: ${target.host}:${target.port} failed (${errorText(error)}).`);
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES });
  server.on('connection', track);
  // A failure nobody expected closes that one connection; it never becomes an unhandled rejection in the extension host.
  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    handleConnect(req, client, head).catch(() => client.destroy());
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(req, res).catch(() => res.destroy());
  });
  // Plain-HTTP protocol upgrades (ws://) are not proxied; wss:// goes through CONNECT.
  server.on('upgrade', (_req: IncomingMessage, client: Duplex) =>
    rawReply(client, 501, 'Not Implemented', 'Agent Lanes: upgrades are not proxied.'),
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const close = async (): Promise<void> => {
    closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
    await rm(options.socketPath, { force: true });
  };
  try {
    // Only this user may connect. listen() creates the file with the process umask; Node has no mode option for it.
    await chmod(options.socketPath, 0o600);
  } catch (error) {
    await close();
    throw error;
  }

  return {
    socketPath: options.socketPath,
    decisions: () => [...kept],
    refusals: () => kept.filter((d) => !d.allowed),
    close,
  };
}

function refused(status: number, body: string): { ok: false; status: number; body: string } {
  return { ok: false, status, body };
}

/** A CONNECT target: `host:port` or `[v6]:port`, the port required. */
function parseAuthority(text: string): { host: string; ip?: string | undefined; port: number } | undefined {
  if (text.length > MAX_AUTHORITY_CHARS) return undefined;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]/@?#\s]+):([0-9]{1,5})$/.exec(text);
  if (!match) return undefined;
  const port = Number(match[2]);
  const host = normalizeTargetHost(match[1]);
  if (!host || port < 1 || port > 65535) return undefined;
  return { ...host, port };
}

/** An absolute-form plain-HTTP target, with the host as WHATWG URL canonicalises it (the same one checked and connected to). */
function parseAbsoluteHttpUrl(
  text: string,
): { host: string; ip?: string | undefined; port: number; path: string; hostHeader: string } | undefined {
  if (!/^http:\/\//i.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' || url.username !== '' || url.password !== '') return undefined;
  const host = normalizeTargetHost(url.hostname);
  if (!host) return undefined;
  return { ...host, port: url.port === '' ? 80 : Number(url.port), path: `${url.pathname}${url.search}`, hostHeader: url.host };
}

/** Headers minus the hop-by-hop ones, including any the Connection header names. */
function endToEndHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase()),
  );
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name) && !named.has(name)));
}

function rawReply(socket: Duplex, status: number, text: string, body: string): void {
  const line = `${body}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(line)}\r\nConnection: close\r\n\r\n${line}`,
  );
  // Read and drop what the client already sent (a TLS hello) so closing does not reset the connection before it reads
  // the reply; a client that never closes its side is cut off a little later.
  socket.resume();
  setTimeout(() => socket.destroy(), 5_000).unref();
}

function statusText(status: number): string {
  return status === 403 ? 'Forbidden' : status === 502 ? 'Bad Gateway' : 'Error';
}

function errorText(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}
