import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP } from 'node:net';
import { z } from 'zod';
import { version as extensionVersion } from '../../../package.json';
import type { Logger } from '../../core/logger';
import { policyRefOf } from '../../core/policy/merge';
import { parsePolicy, type PolicyDocument } from '../../core/policy/schema';
import { readFileIfExists, writeFileAtomic } from '../storage/fileStore';

/**
 * The signature of a policy: Ed25519 over the exact bytes of the response
 * body, base64, as `ed25519=<base64>`. Sent in this response header; when the
 * header is absent, `<policy URL>.sig` is fetched (for static hosting that
 * cannot set headers) and may hold the same `ed25519=<base64>` or bare base64.
 */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const SIGNATURE_HEADER = 'x-agent-lanes-signature';

export interface FetchLimits {
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
}

const DEFAULT_FETCH_LIMITS: Readonly<FetchLimits> = Object.freeze({ timeoutMs: 10_000, maxBytes: 1024 * 1024, maxRedirects: 5 });

const SIGNATURE_MAX_BYTES = 4096;

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** The endpoint as a URL, or why it cannot be used. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function checkEndpoint(endpoint: string): { ok: true; url: URL } | { ok: false; message: string } {
  let url: URL;
  try {
    url = new URL(endpoint.trim());
  } catch {
    return { ok: false, message: `agentLanes.policy.endpoint is not a URL ("${endpoint}"); give the https:// address of the org policy.` };
  }
  if (url.username || url.password) {
    return {
      ok: false,
      message: 'agentLanes.policy.endpoint must not contain a user name or password; serve the policy without credentials in the URL.',
    };
  }
  if (url.protocol === 'https:') return { ok: true, url };
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return { ok: true, url };
  if (url.protocol === 'http:') {
    return {
      ok: false,
      message: `agentLanes.policy.endpoint must use https:// (plain http:// is allowed only for 127.0.0.1, ::1 and localhost); got ${url.origin}.`,
    };
  }
  return { ok: false, message: `agentLanes.policy.endpoint must be an https:// URL; got the scheme "${url.protocol}".` };
}

/**
 * Reads `agentLanes.policy.publicKey`: an Ed25519 public key as PEM, or
 * base64 of either the 32 raw key bytes or the DER SubjectPublicKeyInfo.
 */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function parsePublicKey(text: string): { ok: true; key: KeyObject } | { ok: false; message: string } {
  const trimmed = text.trim();
  const expected =
    'give an Ed25519 public key as PEM ("-----BEGIN PUBLIC KEY-----...") or as base64 (the 32 raw bytes, or the DER SubjectPublicKeyInfo)';
  if (/PRIVATE KEY/.test(trimmed)) {
    return {
      ok: false,
      message: `agentLanes.policy.publicKey holds a private key. Remove it from your settings at once (settings are not secret) and ${expected}.`,
    };
  }
  let key: KeyObject;
  try {
    if (trimmed.includes('-----BEGIN')) {
      key = createPublicKey(trimmed);
    } else {
      const compact = trimmed.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) throw new Error('it is neither PEM nor base64');
      const bytes = Buffer.from(compact, 'base64');
      key =
        bytes.length === 32
          ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' })
          : createPublicKey({ key: bytes, format: 'der', type: 'spki' });
    }
  } catch (error) {
    return { ok: false, message: `agentLanes.policy.publicKey cannot be read (${(error as Error).message}); ${expected}.` };
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    return {
      ok: false,
      message: `agentLanes.policy.publicKey is ${key.asymmetricKeyType ?? 'an unknown'} key; Agent Lanes verifies Ed25519 signatures only, so ${expected}.`,
    };
  }
  return { ok: true, key };
}

/** `ed25519=<base64>` (or bare base64, in a .sig file) → the 64 signature bytes. */
function parseSignature(value: string, allowBare: boolean): Buffer | undefined {
  const trimmed = value.trim();
  const match = /^ed25519=(\S+)$/i.exec(trimmed) ?? (allowBare ? /^(\S+)$/.exec(trimmed) : null);
  if (!match || !/^[A-Za-z0-9+/]+={0,2}$/.test(match[1]!)) return undefined;
  const bytes = Buffer.from(match[1]!, 'base64');
  return bytes.length === 64 ? bytes : undefined;
}

function verifyPolicySignature(body: Buffer, signature: Buffer, key: KeyObject): boolean {
  try {
    return verify(null, body, key, signature);
  } catch {
    return false;
  }
}

type HttpResult =
  | { kind: 'ok'; body: Buffer; etag?: string; signature?: string; url: URL }
  | { kind: 'notModified'; url: URL }
  | { kind: 'notFound'; url: URL }
  | { kind: 'error'; message: string };

type RawResponse =
  | { kind: 'body'; status: number; headers: http.IncomingHttpHeaders; body: Buffer }
  | { kind: 'headers'; status: number; headers: http.IncomingHttpHeaders }
  | { kind: 'error'; message: string };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function requestOnce(
  url: URL,
  headers: Record<string, string>,
  maxBytes: number,
  deadline: number,
  timeoutMs: number,
): Promise<RawResponse> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: RawResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
      request.destroy();
    };
    const client = url.protocol === 'https:' ? https : http;
    const request = client.request(url, { method: 'GET', headers }, (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        finish({ kind: 'headers', status, headers: response.headers });
        return;
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        finish({ kind: 'error', message: `${url.href} sent ${declared} bytes; the limit is ${maxBytes}` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) finish({ kind: 'error', message: `${url.href} sent more than ${maxBytes} bytes, the limit` });
        else chunks.push(chunk);
      });
      response.on('end', () => finish({ kind: 'body', status, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', (error) => finish({ kind: 'error', message: `${url.href}: ${error.message}` }));
      response.on('close', () => {
        if (!response.complete) finish({ kind: 'error', message: `${url.href} closed the connection before the end of the policy` });
      });
    });
    const timer = setTimeout(
      () => finish({ kind: 'error', message: `${url.origin} did not answer within ${timeoutMs} ms` }),
      Math.max(0, deadline - Date.now()),
    );
    request.on('error', (error) => finish({ kind: 'error', message: `cannot reach ${url.origin}: ${error.message}` }));
    request.end();
  });
}

/** GET with redirects followed by hand: only within the configured origin (same scheme, host and port). */
async function httpGet(start: URL, headers: Record<string, string>, limits: FetchLimits): Promise<HttpResult> {
  const deadline = Date.now() + limits.timeoutMs;
  let url = start;
  for (let hop = 0; ; hop++) {
    const response = await requestOnce(url, headers, limits.maxBytes, deadline, limits.timeoutMs);
    if (response.kind === 'error') return response;
    const { status } = response;
    if (response.kind === 'body') {
      const etag = response.headers.etag;
      const signature = response.headers[SIGNATURE_HEADER];
      return { kind: 'ok', body: response.body, url, ...(etag ? { etag } : {}), ...(typeof signature === 'string' ? { signature } : {}) };
    }
    if (status === 304) return { kind: 'notModified', url };
    if (status === 404) return { kind: 'notFound', url };
    if (REDIRECTS.has(status)) {
      const location = response.headers.location;
      if (!location) return { kind: 'error', message: `${url.href} answered ${status} without a Location to redirect to` };
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        return { kind: 'error', message: `${url.href} redirected to an invalid address (${location})` };
      }
      // Scheme, host and port: another port on the same host is another server.
      if (next.origin !== start.origin)
        return {
          kind: 'error',
          message: `${url.href} redirected to another origin (${next.origin}); refused: a policy is only taken from the configured ${start.origin}`,
        };
      if (hop + 1 > limits.maxRedirects)
        return { kind: 'error', message: `${start.href} redirected more than ${limits.maxRedirects} times; refused` };
      url = next;
      continue;
    }
    return {
      kind: 'error',
      message: `${url.href} answered HTTP ${status}${http.STATUS_CODES[status] ? ` ${http.STATUS_CODES[status]}` : ''}`,
    };
  }
}

const CacheSchema = z.object({
  version: z.literal(1),
  endpoint: z.string(),
  etag: z.string().optional(),
  fetchedAt: z.string(),
  sha256: z.string(),
  bodyBase64: z.string(),
  signature: z.string().optional(),
});
type CacheEntry = z.infer<typeof CacheSchema>;

export type OrgPolicyOutcome =
  | {
      kind: 'org';
      document: PolicyDocument;
      policyRef: string;
      /** SHA-256 (hex) of the policy body as served. */
      sha256: string;
      /** network: fetched now (or confirmed unchanged by 304); cache: the endpoint failed and the last good copy is used. */
      source: 'network' | 'cache';
      fetchedAt: string;
      warning?: string;
    }
  | {
      kind: 'failClosed';
      reason: string;
      /**
       * The kill switch of the cached policy when that copy is authentic but
       * expired: a switch once seen holds until a valid policy lifts it.
       */
      killSwitch?: NonNullable<PolicyDocument['killSwitch']>;
    };

export interface PolicyFetcherOptions {
  endpoint: string;
  /** agentLanes.policy.publicKey; empty or undefined: signatures are not checked. */
  publicKey?: string | undefined;
  /** Where the last good policy is kept (outside every worktree, e.g. the extension's global storage). */
  cacheFile: string;
  limits?: Partial<FetchLimits> | undefined;
  logger?: Logger | undefined;
  now?: (() => Date) | undefined;
}

type Candidate = { ok: true; document: PolicyDocument } | { ok: false; message: string; expired?: PolicyDocument };

/**
 * Fetches the org policy and keeps the last good copy. Every failure ends in
 * a defined outcome, never an exception: the fresh policy, the cached one
 * (with a warning saying why), or fail closed (with the reason).
 */
export class PolicyFetcher {
  private readonly limits: FetchLimits;
  private readonly now: () => Date;

  constructor(private readonly options: PolicyFetcherOptions) {
    this.limits = { ...DEFAULT_FETCH_LIMITS, ...options.limits };
    this.now = options.now ?? (() => new Date());
  }

  async fetch(): Promise<OrgPolicyOutcome> {
    const endpoint = checkEndpoint(this.options.endpoint);
    if (!endpoint.ok) return { kind: 'failClosed', reason: endpoint.message };
    let key: KeyObject | undefined;
    if (this.options.publicKey?.trim()) {
      const parsed = parsePublicKey(this.options.publicKey);
      if (!parsed.ok) return { kind: 'failClosed', reason: parsed.message };
      key = parsed.key;
    }
    const cached = await this.loadCache(key);
    const headers: Record<string, string> = {
      accept: 'application/yaml, application/json;q=0.9, text/plain;q=0.5',
      'user-agent': `agent-lanes/${extensionVersion}`,
      connection: 'close',
    };
    if (cached.usable && cached.entry.etag) headers['if-none-match'] = cached.entry.etag;

    const response = await httpGet(endpoint.url, headers, this.limits);
    const fetchedAt = this.now().toISOString();
    if (response.kind === 'notModified') {
      if (!cached.usable)
        return this.fallback(`${endpoint.url.origin} answered 304 Not Modified, but there is no cached policy to use`, cached);
      const entry = { ...cached.entry, fetchedAt };
      await this.saveCache(entry);
      return {
        kind: 'org',
        document: cached.document,
        policyRef: policyRefOf(cached.document),
        sha256: entry.sha256,
        source: 'network',
        fetchedAt,
      };
    }
    if (response.kind === 'notFound') return this.fallback(`${response.url.href} answered HTTP 404 Not Found`, cached);
    if (response.kind === 'error') return this.fallback(response.message, cached);

    let signature: string | undefined = response.signature;
    let signatureSource = `the ${SIGNATURE_HEADER} header`;
    if (key && signature === undefined) {
      const sibling = await this.fetchSiblingSignature(response.url);
      if (typeof sibling === 'object') return this.fallback(sibling.error, cached);
      signature = sibling;
      signatureSource = `${response.url.pathname}.sig`;
    }
    if (key) {
      if (signature === undefined) {
        return this.fallback(
          `the policy at ${response.url.href} is not signed (no ${SIGNATURE_HEADER} header and no ${response.url.pathname}.sig), but agentLanes.policy.publicKey is set; refused`,
          cached,
        );
      }
      const bytes = parseSignature(signature, true);
      if (!bytes)
        return this.fallback(
          `the policy's signature (in ${signatureSource}) is not in the form "ed25519=<base64 of 64 bytes>"; refused`,
          cached,
        );
      if (!verifyPolicySignature(response.body, bytes, key)) {
        return this.fallback(
          `the policy's signature does not verify with agentLanes.policy.publicKey; refused (was it signed with the matching private key, over the exact bytes served?)`,
          cached,
        );
      }
    }
    const candidate = this.validate(response.body, response.url.href);
    if (!candidate.ok) return this.fallback(candidate.message, cached);
    const sha256 = createHash('sha256').update(response.body).digest('hex');
    const entry: CacheEntry = {
      version: 1,
      endpoint: this.options.endpoint,
      ...(response.etag ? { etag: response.etag } : {}),
      fetchedAt,
      sha256,
      bodyBase64: response.body.toString('base64'),
      ...(signature !== undefined ? { signature } : {}),
    };
    await this.saveCache(entry);
    return { kind: 'org', document: candidate.document, policyRef: policyRefOf(candidate.document), sha256, source: 'network', fetchedAt };
  }

  private async fetchSiblingSignature(policyUrl: URL): Promise<string | undefined | { error: string }> {
    const url = new URL(policyUrl.href);
    url.pathname = `${url.pathname}.sig`;
    const response = await httpGet(
      url,
      { accept: 'text/plain', 'user-agent': `agent-lanes/${extensionVersion}`, connection: 'close' },
      { ...this.limits, maxBytes: SIGNATURE_MAX_BYTES },
    );
    if (response.kind === 'ok') return response.body.toString('utf8');
    if (response.kind === 'notFound') return undefined;
    if (response.kind === 'notModified') return { error: `${url.href} answered 304 to a request without a cache; refused` };
    return { error: `cannot read the policy's signature: ${response.message}` };
  }

  /** Parses and checks a policy body: valid, and not expired. */
  private validate(body: Buffer, source: string): Candidate {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      return { ok: false, message: `the policy from ${source} is not UTF-8 text` };
    }
    const parsed = parsePolicy(text, source, { maxLength: this.limits.maxBytes });
    if (!parsed.ok) {
      const more = parsed.errors.length > 1 ? ` (and ${parsed.errors.length - 1} more problem${parsed.errors.length > 2 ? 's' : ''})` : '';
      return { ok: false, message: `the policy is not valid: ${parsed.errors[0]}${more}` };
    }
    const expiresAt = parsed.policy.metadata.expiresAt;
    if (expiresAt && Date.parse(expiresAt) <= this.now().getTime()) {
      return { ok: false, message: `the policy ${policyRefOf(parsed.policy)} expired at ${expiresAt}`, expired: parsed.policy };
    }
    return { ok: true, document: parsed.policy };
  }

  private fallback(reason: string, cached: CacheLoad): OrgPolicyOutcome {
    this.options.logger?.warn(`Org policy: ${reason}`);
    if (cached.usable) {
      return {
        kind: 'org',
        document: cached.document,
        policyRef: policyRefOf(cached.document),
        sha256: cached.entry.sha256,
        source: 'cache',
        fetchedAt: cached.entry.fetchedAt,
        warning: `Using the cached policy ${policyRefOf(cached.document)} from ${cached.entry.fetchedAt}: ${reason}.`,
      };
    }
    const cacheNote = cached.reason ? `; ${cached.reason}` : '; no policy was cached';
    const failClosed = `${reason}${cacheNote}. Only drafts are allowed until the org policy can be fetched.`;
    return { kind: 'failClosed', reason: failClosed, ...(cached.killSwitch ? { killSwitch: cached.killSwitch } : {}) };
  }

  private async loadCache(key: KeyObject | undefined): Promise<CacheLoad> {
    let text: string | undefined;
    try {
      text = await readFileIfExists(this.options.cacheFile);
    } catch (error) {
      return { usable: false, reason: `the cached policy cannot be read (${(error as Error).message})` };
    }
    if (text === undefined) return { usable: false };
    let entry: CacheEntry;
    try {
      entry = CacheSchema.parse(JSON.parse(text));
    } catch {
      return { usable: false, reason: 'the cached policy is damaged and was ignored' };
    }
    if (entry.endpoint !== this.options.endpoint) return { usable: false };
    const body = Buffer.from(entry.bodyBase64, 'base64');
    if (createHash('sha256').update(body).digest('hex') !== entry.sha256)
      return { usable: false, reason: 'the cached policy does not match its hash and was ignored' };
    if (key) {
      const signature = entry.signature !== undefined ? parseSignature(entry.signature, true) : undefined;
      if (!signature || !verifyPolicySignature(body, signature, key)) {
        return { usable: false, reason: 'the cached policy is not signed with agentLanes.policy.publicKey and was ignored' };
      }
    }
    const candidate = this.validate(body, `${this.options.endpoint} (cached)`);
    if (!candidate.ok) {
      const reason = `the cached policy cannot be used: ${candidate.message}`;
      const killSwitch = candidate.expired?.killSwitch;
      const engaged = killSwitch && KILL_SWITCHES.some((name) => killSwitch[name]);
      return { usable: false, reason, ...(engaged ? { killSwitch } : {}) };
    }
    return { usable: true, entry, document: candidate.document };
  }

  private async saveCache(entry: CacheEntry): Promise<void> {
    try {
      await writeFileAtomic(this.options.cacheFile, `${JSON.stringify(entry, null, 2)}\n`);
    } catch (error) {
      this.options.logger?.error(`Could not cache the org policy at ${this.options.cacheFile}: ${(error as Error).message}`);
    }
  }
}

type CacheLoad =
  | { usable: true; entry: CacheEntry; document: PolicyDocument }
  | { usable: false; reason?: string; killSwitch?: NonNullable<PolicyDocument['killSwitch']> };

const KILL_SWITCHES = ['disableDrafts', 'disableSandbox', 'disablePullRequests', 'disableActions', 'cancelRunning'] as const;
