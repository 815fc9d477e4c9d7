import { sign, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export const GOOD_POLICY = `apiVersion: agentlanes.dev/v1
metadata:
  id: acme
  version: "3"
  expiresAt: "2027-01-01T00:00:00Z"
pathRules:
  - { glob: "infra/**", effect: block, reason: Terraform only. }
`;

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

/** A real HTTP server on 127.0.0.1, whose behaviour each test sets. */
export class PolicyServer {
  handler: Handler = (_request, response) => response.end(GOOD_POLICY);
  readonly requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  private readonly server = http.createServer((request, response) => {
    this.requests.push({ url: request.url ?? '', headers: request.headers });
    this.handler(request, response);
  });

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path = '/policy.yaml'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function signBody(body: string | Buffer, privateKey: KeyObject): string {
  return `ed25519=${sign(null, Buffer.from(body), privateKey).toString('base64')}`;
}
