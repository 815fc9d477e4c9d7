import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ChannelErrorCode,
  type LaneChannelRequest,
  LaneChannelRequestSchema,
  type LaneChannelResponse,
  LaneChannelResponseSchema,
  MAX_CHANNEL_LINE_BYTES,
  MAX_SOCKET_PATH_BYTES,
} from '../../core/draft/laneChannel';

/** A refusal or failure the channel answers with: its code and a message that says what to do. */
export class LaneChannelError extends Error {
  override name = 'LaneChannelError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ChannelSocketPlace {
  /** The socket's path, under the Unix socket path limit. */
  path: string;
  /** A short private folder made because the exchange folder's path was too long: bind it into the boundary, remove it after. */
  ownFolder?: string;
}

/**
 * Where a run's channel socket goes: in the exchange folder (already bound into
 * every boundary) when the path fits a Unix socket; else a short private folder
 * in the temporary folder, which the boundary then binds too.
 */
export async function channelSocketPlace(ioDir: string): Promise<ChannelSocketPlace> {
  const inIo = join(ioDir, 'lanes.sock');
  if (Buffer.byteLength(inIo) <= MAX_SOCKET_PATH_BYTES) return { path: inIo };
  const folder = await mkdtemp(join(tmpdir(), 'agent-lanes-ch-'));
  await chmod(folder, 0o700);
  const path = join(folder, 'lanes.sock');
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    await rm(folder, { recursive: true, force: true });
    throw new LaneChannelError(
      ChannelErrorCode.failed,
      `The lane channel's socket path ${path} is longer than a Unix socket allows: set TMPDIR to a shorter folder, such as /tmp.`,
    );
  }
  return { path, ownFolder: folder };
}

export interface LaneChannel {
  readonly socketPath: string;
  /** Stops listening, ends every connection and removes the socket (and its own folder). */
  close(): Promise<void>;
}

export interface OpenLaneChannelOptions {
  place: ChannelSocketPlace;
  /** Answers one well-formed request: its result, or a LaneChannelError. Anything else thrown becomes a `failed` answer. */
  handle(request: LaneChannelRequest): Promise<unknown>;
  /** Told about a line that is not a request at all (it is answered with an error, and may be audited). */
  onMalformed?(reason: string): void;
}

function answer(socket: Socket, response: LaneChannelResponse): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
}

/**
 * Serves a lane channel: newline-delimited JSON-RPC 2.0 on a Unix socket
 * (mode 0600). Requests on one connection may be answered out of order; each
 * answer carries its request's id.
 */
export async function openLaneChannel(options: OpenLaneChannelOptions): Promise<LaneChannel> {
  const { place } = options;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    let buffered = '';
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (Buffer.byteLength(buffered) > MAX_CHANNEL_LINE_BYTES && !buffered.includes('\n')) {
        options.onMalformed?.(`a request longer than ${MAX_CHANNEL_LINE_BYTES} bytes`);
        answer(socket, {
          jsonrpc: '2.0',
          id: null,
          error: { code: ChannelErrorCode.invalidRequest, message: `A request may be at most ${MAX_CHANNEL_LINE_BYTES} bytes.` },
        });
        socket.end();
        buffered = '';
        return;
      }
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) void serveLine(socket, line);
      }
    });
  });

  const serveLine = async (socket: Socket, line: string): Promise<void> => {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      options.onMalformed?.('a line that is not JSON');
      return answer(socket, {
        jsonrpc: '2.0',
        id: null,
        error: { code: ChannelErrorCode.parseError, message: 'The request is not JSON.' },
      });
    }
    const request = LaneChannelRequestSchema.safeParse(json);
    if (!request.success) {
      options.onMalformed?.('a line that is not a JSON-RPC 2.0 request');
      const id = typeof (json as { id?: unknown })?.id === 'number' ? (json as { id: number }).id : null;
      return answer(socket, {
        jsonrpc: '2.0',
        id,
        error: {
          code: ChannelErrorCode.invalidRequest,
          message: 'Not a JSON-RPC 2.0 request: {"jsonrpc":"2.0","id":…,"method":…,"params":{…}}.',
        },
      });
    }
    const { id } = request.data;
    try {
      const result = await options.handle(request.data);
      answer(socket, { jsonrpc: '2.0', id, result: result ?? null });
    } catch (error) {
      const known = error instanceof LaneChannelError;
      answer(socket, {
        jsonrpc: '2.0',
        id,
        error: { code: known ? error.code : ChannelErrorCode.failed, message: (error as Error).message },
      });
    }
  };

  await rm(place.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(place.path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(place.path, 0o600);
  let closed: Promise<void> | undefined;
  return {
    socketPath: place.path,
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await stopped;
        await rm(place.path, { force: true });
        if (place.ownFolder && dirname(place.path) === place.ownFolder) await rm(place.ownFolder, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

/**
 * Calls a lane channel once: connects, sends one request, waits for its
 * answer. A missing or closed socket is a LaneChannelError that says the run
 * has ended (or never gave a channel).
 */
export async function callLaneChannel(
  socketPath: string,
  method: string,
  params: Record<string, unknown>,
  options: { timeoutMs?: number } = {},
): Promise<unknown> {
  const id = randomBytes(6).toString('hex');
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    socket.setEncoding('utf8');
    let buffered = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    const timer = setTimeout(
      () => settle(() => reject(new LaneChannelError(ChannelErrorCode.failed, `The lane channel did not answer ${method} in time.`))),
      options.timeoutMs ?? 60 * 60 * 1000,
    );
    socket.on('connect', () => socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const gone = error.code === 'ENOENT' || error.code === 'ECONNREFUSED';
      settle(() =>
        reject(
          new LaneChannelError(
            ChannelErrorCode.refused,
            gone
              ? `The lane channel ${socketPath} is closed: the agent run it belonged to has ended (or never started). Nothing was done; a channel serves one change only while its agent runs.`
              : `Could not reach the lane channel ${socketPath}: ${error.message}.`,
          ),
        ),
      );
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      let json: unknown;
      try {
        json = JSON.parse(buffered.slice(0, newline));
      } catch {
        json = undefined;
      }
      const parsed = LaneChannelResponseSchema.safeParse(json);
      if (!parsed.success || parsed.data.id !== id)
        return settle(() =>
          reject(new LaneChannelError(ChannelErrorCode.failed, 'The lane channel answered with something else than the answer.')),
        );
      const response = parsed.data;
      settle(() =>
        'error' in response ? reject(new LaneChannelError(response.error.code, response.error.message)) : resolve(response.result),
      );
    });
    socket.on('close', () =>
      settle(() =>
        reject(
          new LaneChannelError(
            ChannelErrorCode.refused,
            `The lane channel closed before answering ${method}: the agent run has ended. Whether it was done is in the change's audit log.`,
          ),
        ),
      ),
    );
  });
}
