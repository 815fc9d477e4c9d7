// The agent's network allowlist (`lanes.agent.network.allow`): which host and port an agent inside the
// isolation boundary may reach through the egress proxy. Pure: the proxy (src/infra/draft/boundary/egressProxy.ts)
// asks these functions before it resolves or connects anything.

/** The policy setting that lists the hosts an agent may reach; named in every refusal. */
export const EGRESS_ALLOW_SETTING = 'lanes.agent.network.allow';

/** @internal One parsed allowlist entry (exported for its unit tests). */
export interface AllowEntry {
  /**
   * `name`: one host name, exactly. `wildcard`: every sub-domain of `host` (not `host` itself).
   * `ip`: one IP address, exactly (then `host` is its canonical form).
   */
  kind: 'name' | 'wildcard' | 'ip';
  /** Lower case, no trailing dot; for a wildcard, the part after `*.`. */
  host: string;
  /** The one port allowed; undefined means the web ports, 443 and 80. */
  port?: number | undefined;
}

/** The ports an entry without `:port` allows. */
const WEB_PORTS: readonly number[] = [443, 80];

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

type Parsed = { ok: true; entry: AllowEntry } | { ok: false; problem: string };

/** @internal Exported for its unit tests; the product calls it inside this module. Parses one allowlist entry; a problem says what is wrong and what to write instead. */
export function parseAllowEntry(entry: string): Parsed {
  const fail = (problem: string): Parsed => ({ ok: false, problem: `${EGRESS_ALLOW_SETTING}: ${JSON.stringify(entry)} ${problem}` });
  if (typeof entry !== 'string' || entry.trim() === '') return fail('is empty: write a host name such as "api.example.com".');
  if (entry !== entry.trim() || /\s/.test(entry)) return fail('contains spaces: write the host name alone, such as "api.example.com".');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(entry);
  if (scheme) {
    const rest = entry.slice(scheme[0].length).split(/[/?#]/)[0];
    return fail(
      `has a scheme: write the host alone, such as "${rest || 'api.example.com'}" (it allows ports 443 and 80; add ":port" for another).`,
    );
  }
  if (/[/?#@]/.test(entry)) {
    const host = entry.split(/[/?#]/)[0].replace(/^.*@/, '');
    return fail(`has a path, a query or a user: the allowlist is by host, so write "${host || 'api.example.com'}".`);
  }

  // Split off the port: `[v6]:port`, bare v6 (no port), or `host:port`.
  let hostPart = entry;
  let portPart: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    hostPart = bracketed[1];
    portPart = bracketed[2];
    if (!parseIpv6(hostPart)) return fail('has brackets around something that is not an IPv6 address.');
  } else if ((entry.match(/:/g) ?? []).length === 1) {
    [hostPart, portPart] = entry.split(':');
  }
  let port: number | undefined;
  if (portPart !== undefined) {
    port = parsePort(portPart);
    if (port === undefined) return fail('has an invalid port: write a number from 1 to 65535 after ":", such as "api.example.com:8443".');
  }

  const host = hostPart.toLowerCase().replace(/\.$/, '');
  if (host === '*' || host === '*.') return fail('allows every host: list the hosts the agent needs, such as "api.example.com".');
  if (host.startsWith('*.')) {
    const suffix = host.slice(2);
    if (suffix.includes('*')) return fail('has more than one "*": only a leading "*." is allowed, such as "*.example.com".');
    if (ipLiteral(suffix) || looksNumeric(suffix))
      return fail('is a wildcard over IP addresses: list each address exactly, such as "203.0.113.7" or "203.0.113.7:8443".');
    if (!validName(suffix)) return fail('is not a valid wildcard: write "*." and a domain, such as "*.example.com".');
    if (!suffix.includes('.')) return fail(`would allow a whole top-level domain: write a domain under it, such as "*.example.${suffix}".`);
    return { ok: true, entry: { kind: 'wildcard', host: suffix, port } };
  }
  if (host.includes('*')) {
    return looksNumeric(host.replace(/\*/g, '0'))
      ? fail('is a wildcard over IP addresses: list each address exactly, such as "203.0.113.7".')
      : fail(
          'has a "*" that is not at the start: only a leading "*." is allowed, such as "*.example.com" (it matches sub-domains, not example.com).',
        );
  }
  const ip = ipLiteral(host);
  if (ip) return { ok: true, entry: { kind: 'ip', host: ip, port } };
  if (entry.includes(':') && !bracketed && portPart === undefined)
    return fail('is not a valid IPv6 address: write it as "2001:db8::1" or "[2001:db8::1]:443".');
  if (looksNumeric(host)) return fail('looks like an IP address but is not one: write four numbers, such as "203.0.113.7".');
  if (!validName(host)) return fail('is not a valid host name: use letters, digits, "-" and ".", such as "api.example.com".');
  return { ok: true, entry: { kind: 'name', host, port } };
}

/** What is wrong with an allowlist entry (and what to write instead), or undefined when it is valid. For the policy schema. */
export function allowEntryProblem(entry: string): string | undefined {
  const parsed = parseAllowEntry(entry);
  return parsed.ok ? undefined : parsed.problem;
}

/**
 * Whether the allowlist lets an agent open a connection to `host`:`port`. Case and a trailing dot do not matter;
 * an IP address matches only an entry that lists that address (a name or a wildcard never matches an address);
 * an empty list allows nothing; invalid entries are ignored (the policy schema rejects them up front).
 */
export function egressAllowed(allow: readonly string[], host: string, port: number): boolean {
  const target = normalizeTargetHost(host);
  if (target === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return false;
  return allow.some((raw) => {
    const parsed = parseAllowEntry(raw);
    if (!parsed.ok) return false;
    const { entry } = parsed;
    if (!(entry.port === undefined ? WEB_PORTS.includes(port) : entry.port === port)) return false;
    if (entry.kind === 'ip') return target.ip === entry.host;
    if (target.ip !== undefined) return false;
    return entry.kind === 'name' ? target.host === entry.host : target.host.endsWith(`.${entry.host}`);
  });
}

/**
 * The host of a request target in the form the allowlist compares (lower case, no trailing dot, no IPv6 brackets),
 * with `ip` set to the canonical address when it is an IP literal; undefined when it is neither a host name nor an address.
 */
export function normalizeTargetHost(host: string): { host: string; ip?: string | undefined } | undefined {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) {
    h = h.slice(1, -1);
    const ip = parseIpv6(h) ? ipLiteral(h) : undefined;
    return ip ? { host: ip, ip } : undefined;
  }
  h = h.replace(/\.$/, '');
  const ip = ipLiteral(h);
  if (ip) return { host: ip, ip };
  // A name with numeric labels only (`2130706433`, `127.1`) is an address to the system resolver: never a name here.
  if (looksNumeric(h) || !validName(h)) return undefined;
  return { host: h };
}

/** @internal Exported for its unit tests; the product calls it inside this module. The canonical form of an IPv4 (dotted quad) or IPv6 literal, or undefined when `text` is neither. */
export function ipLiteral(text: string): string | undefined {
  const v4 = parseIpv4(text);
  if (v4) return v4.join('.');
  const v6 = parseIpv6(text);
  return v6 ? v6.map((g) => g.toString(16)).join(':') : undefined;
}

/**
 * Whether a resolved address is one of the host's own or its network's, which a listed name must never reach
 * (DNS rebinding): unspecified, loopback, link-local, private (RFC 1918), shared (100.64/10), multicast and reserved,
 * IPv6 unique-local, and IPv4 addresses carried in IPv6 (mapped, compatible, NAT64, 6to4). Unparseable counts as internal.
 */
export function isInternalAddress(address: string): boolean {
  const v4 = parseIpv4(address);
  if (v4) return internalV4(v4);
  const v6 = parseIpv6(address);
  if (!v6) return true;
  const embedded = (hi: number, lo: number) => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
  if (v6.slice(0, 5).every((g) => g === 0) && (v6[5] === 0 || v6[5] === 0xffff)) return internalV4(embedded(v6[6], v6[7])); // ::a.b.c.d, ::ffff:a.b.c.d (also :: and ::1)
  if (v6[0] === 0x64 && v6[1] === 0xff9b && v6.slice(2, 6).every((g) => g === 0)) return internalV4(embedded(v6[6], v6[7])); // NAT64 64:ff9b::/96
  if (v6[0] === 0x2002) return internalV4(embedded(v6[1], v6[2])); // 6to4
  return (v6[0] & 0xffc0) === 0xfe80 || (v6[0] & 0xfe00) === 0xfc00 || (v6[0] & 0xff00) === 0xff00; // link-local, unique-local, multicast
}

function internalV4([a, b]: number[]): boolean {
  return (
    a === 0 || // "this network", 0.0.0.0
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) || // shared address space (carrier NAT, often internal)
    (a === 169 && b === 254) || // link-local, including cloud metadata endpoints
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    a >= 224 // multicast, reserved, broadcast
  );
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

function validName(host: string): boolean {
  return host.length > 0 && host.length <= 253 && host.split('.').every((label) => LABEL.test(label));
}

/** A dotted name whose last label is all digits (or hex like 0x7f): resolvers read it as an address. */
function looksNumeric(host: string): boolean {
  const last = host.split('.').pop() ?? '';
  return /^(?:[0-9]+|0x[0-9a-f]*)$/i.test(last);
}

function parseIpv4(text: string): number[] | undefined {
  // Strict dotted quad: no leading zeros (which some parsers read as octal), no shorthand.
  if (!/^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/.test(text)) return undefined;
  return text.split('.').map(Number);
}

/** Eight 16-bit groups, or undefined; accepts `::` and a trailing dotted quad, rejects zone ids. */
function parseIpv6(text: string): number[] | undefined {
  if (!text.includes(':') || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  const tail: number[] = [];
  const quad = /:((?:[0-9]+\.){3}[0-9]+)$/.exec(text);
  if (quad) {
    const v4 = parseIpv4(quad[1]);
    if (!v4) return undefined;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    // `::ffff:1.2.3.4` leaves `::ffff`; `::1.2.3.4` leaves `:`, which was half of a `::`.
    head = text.slice(0, quad.index);
    if (head.endsWith(':')) head += ':';
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  if (!left || !right) return undefined;
  const have = left.length + right.length + tail.length;
  if (halves.length === 2) {
    if (have > 7) return undefined;
    return [...left, ...new Array<number>(8 - have).fill(0), ...right, ...tail];
  }
  return have === 8 ? [...left, ...tail] : undefined;
}
