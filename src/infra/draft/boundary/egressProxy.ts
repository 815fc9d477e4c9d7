// STUB until the egress branch lands.
export interface EgressDecision {
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
export function egressSocketPath(nonce: string): string {
  return `/tmp/agent-lanes-egress-${nonce}.sock`;
}
export async function startEgressProxy(_options: {
  allow: readonly string[];
  socketPath: string;
  onDecision?: (d: EgressDecision) => void;
}): Promise<EgressProxy> {
  throw new Error('stub');
}
