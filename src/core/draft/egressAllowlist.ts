/**
 * Which hosts an agent may reach (policy `lanes.agent.network.allow`). An entry
 * is a host name (`api.example.com`), a wildcard for its sub-domains
 * (`*.example.com`, not the apex), or an IP address written out, each with an
 * optional `:port`; without a port, 443 and 80 are allowed.
 */

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function isIpLiteral(host: string): boolean {
  return IPV4.test(host) || host.includes(':');
}

function normalize(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
}

interface AllowEntry {
  pattern: string;
  wildcard: boolean;
  port?: number;
}

function parseEntry(entry: string): AllowEntry {
  const match = /^(.*?)(?::(\d{1,5}))?$/.exec(entry.trim())!;
  const host = normalize(match[1]!);
  const wildcard = host.startsWith('*.');
  return { pattern: wildcard ? host.slice(2) : host, wildcard, ...(match[2] ? { port: Number(match[2]) } : {}) };
}

/** Whether `host:port` is allowed. An IP address matches only an entry that writes it out; an empty list allows nothing. */
export function egressAllowed(allow: readonly string[], host: string, port: number): boolean {
  const wanted = normalize(host);
  if (!wanted) return false;
  return allow.some((raw) => {
    const entry = parseEntry(raw);
    if (entry.port !== undefined ? entry.port !== port : port !== 443 && port !== 80) return false;
    if (entry.wildcard) return !isIpLiteral(wanted) && wanted.endsWith(`.${entry.pattern}`);
    return wanted === entry.pattern;
  });
}
