import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkEndpoint,
  parsePublicKey,
  PolicyFetcher,
  SIGNATURE_HEADER,
  type OrgPolicyOutcome,
  type PolicyFetcherOptions,
} from '../../src/infra/policy/policyFetcher';
import { GOOD_POLICY, PolicyServer, signBody } from './support/policyServer';

const NOW = new Date('2026-11-21T12:00:00Z');

function expectOrg(outcome: OrgPolicyOutcome): Extract<OrgPolicyOutcome, { kind: 'org' }> {
  assert.equal(outcome.kind, 'org', outcome.kind === 'failClosed' ? outcome.reason : '');
  return outcome as Extract<OrgPolicyOutcome, { kind: 'org' }>;
}

function expectFailClosed(outcome: OrgPolicyOutcome, pattern: RegExp): void {
  assert.equal(outcome.kind, 'failClosed', 'expected to fail closed');
  if (outcome.kind === 'failClosed') {
    assert.match(outcome.reason, pattern);
    assert.match(outcome.reason, /Only drafts are allowed until the org policy can be fetched\./);
  }
}

describe('org policy fetcher (real HTTP server)', () => {
  let server: PolicyServer;
  let dir: string;
  let cacheFile: string;
  const keys = generateKeyPairSync('ed25519');
  const publicPem = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  const fetcher = (extra: Partial<PolicyFetcherOptions> = {}, now = NOW) =>
    new PolicyFetcher({ endpoint: extra.endpoint ?? server.url(), cacheFile, now: () => now, limits: { timeoutMs: 1_000 }, ...extra });

  /** Fetches the good policy once, so a cache exists. */
  async function primeCache(extra: Partial<PolicyFetcherOptions> = {}): Promise<void> {
    const previous = server.handler;
    server.handler = (_request, response) => {
      response.setHeader('ETag', '"v3"');
      if (extra.publicKey) response.setHeader(SIGNATURE_HEADER, signBody(GOOD_POLICY, keys.privateKey));
      response.end(GOOD_POLICY);
    };
    expectOrg(await fetcher(extra).fetch());
    server.handler = previous;
  }

  beforeEach(async () => {
    server = await new PolicyServer().start();
    dir = mkdtempSync(join(tmpdir(), 'lanes-policy-fetch-'));
    cacheFile = join(dir, 'storage', 'org-policy.json');
  });

  afterEach(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fetches, validates and caches the policy with its hash and ETag', async () => {
    server.handler = (_request, response) => {
      response.setHeader('ETag', '"v3"');
      response.end(GOOD_POLICY);
    };
    const outcome = expectOrg(await fetcher().fetch());
    assert.equal(outcome.source, 'network');
    assert.equal(outcome.policyRef, 'acme@3');
    assert.equal(outcome.document.pathRules?.[0]?.glob, 'infra/**');
    assert.equal(outcome.fetchedAt, NOW.toISOString());
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, string>;
    assert.equal(cache.etag, '"v3"');
    assert.equal(cache.sha256, outcome.sha256);
    assert.equal(Buffer.from(cache.bodyBase64!, 'base64').toString(), GOOD_POLICY);
    assert.match(String(server.requests[0]!.headers['user-agent']), /^agent-lanes\//);
  });

  it('endpoint down: the last good policy, with a warning; with nothing cached, fail closed', async () => {
    const endpoint = server.url();
    await primeCache();
    await server.stop();
    const cached = expectOrg(await fetcher({ endpoint }).fetch());
    assert.equal(cached.source, 'cache');
    assert.match(
      cached.warning!,
      /^Using the cached policy acme@3 from 2026-11-21T12:00:00\.000Z: cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    );
    rmSync(cacheFile);
    expectFailClosed(await fetcher({ endpoint }).fetch(), /cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*; no policy was cached/);
    server = await new PolicyServer().start();
  });

  it('HTTP 500: the last good policy, or fail closed', async () => {
    await primeCache();
    server.handler = (_request, response) => {
      response.statusCode = 500;
      response.end('boom');
    };
    const cached = expectOrg(await fetcher().fetch());
    assert.equal(cached.source, 'cache');
    assert.match(cached.warning!, /answered HTTP 500 Internal Server Error/);
    rmSync(cacheFile);
    expectFailClosed(await fetcher().fetch(), /answered HTTP 500 Internal Server Error; no policy was cached/);
  });

  it('slower than the timeout, before the headers or in the middle of the body', async () => {
    await primeCache();
    server.handler = () => undefined; // never answers
    const started = Date.now();
    const cached = expectOrg(await fetcher({ limits: { timeoutMs: 300 } }).fetch());
    assert.ok(Date.now() - started < 3_000, 'gave up at the timeout');
    assert.match(cached.warning!, /did not answer within 300 ms/);
    server.handler = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/yaml' });
      response.write(GOOD_POLICY.slice(0, 20)); // the rest never comes
    };
    rmSync(cacheFile);
    expectFailClosed(await fetcher({ limits: { timeoutMs: 300 } }).fetch(), /did not answer within 300 ms/);
  });

  it('304 Not Modified with a cache: sends If-None-Match and uses the cached policy', async () => {
    await primeCache();
    server.handler = (request, response) => {
      response.statusCode = request.headers['if-none-match'] === '"v3"' ? 304 : 500;
      response.end();
    };
    const outcome = expectOrg(await fetcher({}, new Date('2026-11-22T00:00:00Z')).fetch());
    assert.equal(outcome.source, 'network');
    assert.equal(outcome.policyRef, 'acme@3');
    assert.equal(outcome.fetchedAt, '2026-11-22T00:00:00.000Z');
    assert.equal(server.requests.at(-1)!.headers['if-none-match'], '"v3"');
  });

  it('304 without a cache: fail closed', async () => {
    server.handler = (_request, response) => {
      response.statusCode = 304;
      response.end();
    };
    expectFailClosed(await fetcher().fetch(), /answered 304 Not Modified, but there is no cached policy to use/);
    assert.equal(server.requests[0]!.headers['if-none-match'], undefined);
  });

  it('malformed YAML: refused with the position; the last good policy stays', async () => {
    await primeCache();
    server.handler = (_request, response) => response.end('apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: "4"\n');
    const cached = expectOrg(await fetcher().fetch());
    assert.equal(cached.policyRef, 'acme@3');
    assert.match(cached.warning!, /the policy is not valid: http:\/\/127\.0\.0\.1:\d+\/policy\.yaml:\d+:\d+: YAML syntax error/);
    rmSync(cacheFile);
    expectFailClosed(await fetcher().fetch(), /YAML syntax error/);
  });

  it('schema-invalid: refused naming the field', async () => {
    server.handler = (_request, response) => response.end(GOOD_POLICY.replace('effect: block', 'effect: deny'));
    expectFailClosed(await fetcher().fetch(), /pathRules\[0\]\.effect: expected one of "allow", "requireApproval", "block", got "deny"/);
  });

  it('invalid globs: refused naming the glob', async () => {
    server.handler = (_request, response) => response.end(GOOD_POLICY.replace('infra/**', 'infra/[oops'));
    expectFailClosed(await fetcher().fetch(), /pathRules\[0\]\.glob: invalid glob "infra\/\[oops"/);
  });

  it('a signature in the header that verifies is accepted; PEM and raw base64 keys both work', async () => {
    server.handler = (_request, response) => {
      response.setHeader(SIGNATURE_HEADER, signBody(GOOD_POLICY, keys.privateKey));
      response.end(GOOD_POLICY);
    };
    expectOrg(await fetcher({ publicKey: publicPem }).fetch());
    const raw = (keys.publicKey.export({ format: 'jwk' }) as { x: string }).x;
    expectOrg(await fetcher({ publicKey: Buffer.from(raw, 'base64url').toString('base64') }).fetch());
  });

  it('a signature that does not verify is refused, and the last good policy stays', async () => {
    await primeCache({ publicKey: publicPem });
    const other = generateKeyPairSync('ed25519');
    const tampered = GOOD_POLICY.replace('Terraform only.', 'Anything goes.');
    server.handler = (_request, response) => {
      response.setHeader(SIGNATURE_HEADER, signBody(tampered, other.privateKey));
      response.end(tampered);
    };
    const cached = expectOrg(await fetcher({ publicKey: publicPem }).fetch());
    assert.equal(cached.source, 'cache');
    assert.match(cached.warning!, /signature does not verify with agentLanes\.policy\.publicKey; refused/);
    // Signed by the right key, but over other bytes than those served.
    server.handler = (_request, response) => {
      response.setHeader(SIGNATURE_HEADER, signBody(GOOD_POLICY, keys.privateKey));
      response.end(tampered);
    };
    rmSync(cacheFile);
    expectFailClosed(await fetcher({ publicKey: publicPem }).fetch(), /signature does not verify/);
  });

  it('a missing signature when a key is set is refused; a <url>.sig sibling is used when there is no header', async () => {
    server.handler = (request, response) => {
      if (request.url?.endsWith('.sig')) {
        response.statusCode = 404;
        response.end();
      } else response.end(GOOD_POLICY);
    };
    expectFailClosed(
      await fetcher({ publicKey: publicPem }).fetch(),
      /is not signed \(no x-agent-lanes-signature header and no \/policy\.yaml\.sig\), but agentLanes\.policy\.publicKey is set; refused/,
    );
    assert.equal(server.requests.at(-1)!.url, '/policy.yaml.sig');
    server.handler = (request, response) => {
      response.end(request.url?.endsWith('.sig') ? `${signBody(GOOD_POLICY, keys.privateKey)}\n` : GOOD_POLICY);
    };
    const outcome = expectOrg(await fetcher({ publicKey: publicPem }).fetch());
    assert.equal(outcome.policyRef, 'acme@3');
    // Without a key, nothing asks for a signature.
    const before = server.requests.length;
    expectOrg(await fetcher().fetch());
    assert.equal(server.requests.length, before + 1);
  });

  it('a sibling .sig that is not a signature is refused, naming where it was read', async () => {
    server.handler = (_request, response) => response.end(GOOD_POLICY);
    expectFailClosed(
      await fetcher({ publicKey: publicPem }).fetch(),
      /signature \(in \/policy\.yaml\.sig\) is not in the form "ed25519=<base64 of 64 bytes>"; refused/,
    );
  });

  it('an unsigned cached policy is not used once a key is set', async () => {
    await primeCache();
    server.handler = (_request, response) => {
      response.statusCode = 503;
      response.end();
    };
    expectFailClosed(
      await fetcher({ publicKey: publicPem }).fetch(),
      /HTTP 503 .*the cached policy is not signed with agentLanes\.policy\.publicKey and was ignored/,
    );
  });

  it('expired: a fetched policy past its expiresAt is refused, and an expired cache is not used', async () => {
    await primeCache();
    const later = new Date('2027-02-01T00:00:00Z');
    expectFailClosed(
      await fetcher({}, later).fetch(),
      /the policy acme@3 expired at 2027-01-01T00:00:00Z; the cached policy cannot be used: the policy acme@3 expired/,
    );
    server.handler = (_request, response) => {
      response.statusCode = 500;
      response.end();
    };
    expectFailClosed(
      await fetcher({}, later).fetch(),
      /HTTP 500.*the cached policy cannot be used: the policy acme@3 expired at 2027-01-01T00:00:00Z/,
    );
  });

  it('a redirect to another host is refused; to the same host it is followed', async () => {
    server.handler = (request, response) => {
      if (request.url === '/policy.yaml') {
        response.writeHead(302, { location: `http://localhost:${server.port}/elsewhere.yaml` });
        response.end();
      } else response.end(GOOD_POLICY);
    };
    expectFailClosed(await fetcher().fetch(), /redirected to another origin \(http:\/\/localhost:\d+\); refused/);
    assert.equal(server.requests.length, 1, 'the other host was never asked');
    server.handler = (request, response) => {
      if (request.url === '/policy.yaml') {
        response.writeHead(301, { location: '/v3/policy.yaml' });
        response.end();
      } else response.end(GOOD_POLICY);
    };
    expectOrg(await fetcher().fetch());
    assert.equal(server.requests.at(-1)!.url, '/v3/policy.yaml');
    server.handler = (_request, response) => {
      response.writeHead(302, { location: '/policy.yaml' });
      response.end();
    };
    // The policy fetched just above is now the last good one.
    const cached = expectOrg(await fetcher().fetch());
    assert.equal(cached.source, 'cache');
    assert.match(cached.warning!, /redirected more than 5 times; refused/);
  });

  it('a redirect to another port on the same host is refused: origins are compared, not host names', async () => {
    const other = await new PolicyServer().start();
    try {
      other.handler = (_request, response) => response.end(GOOD_POLICY);
      server.handler = (_request, response) => {
        response.writeHead(302, { location: `http://127.0.0.1:${other.port}/policy.yaml` });
        response.end();
      };
      expectFailClosed(await fetcher().fetch(), /redirected to another origin \(http:\/\/127\.0\.0\.1:\d+\); refused/);
      assert.equal(other.requests.length, 0, 'the other port was never asked');
    } finally {
      await other.stop();
    }
  });

  it('a body over the size limit is refused, declared or streamed', async () => {
    const big = `${GOOD_POLICY}# ${'x'.repeat(5_000)}\n`;
    server.handler = (_request, response) => response.end(big);
    expectFailClosed(await fetcher({ limits: { maxBytes: 1_000 } }).fetch(), /sent \d+ bytes; the limit is 1000/);
    server.handler = (_request, response) => {
      response.writeHead(200, { 'transfer-encoding': 'chunked' });
      for (let i = 0; i < 10; i++) response.write('#'.repeat(500) + '\n');
      response.end();
    };
    expectFailClosed(await fetcher({ limits: { maxBytes: 1_000 } }).fetch(), /sent more than 1000 bytes, the limit/);
  });

  it('a damaged cache file is ignored with a message', async () => {
    await primeCache();
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, string>;
    cache.bodyBase64 = Buffer.from(GOOD_POLICY.replace('block', 'allow')).toString('base64');
    writeFileSync(cacheFile, JSON.stringify(cache));
    server.handler = (_request, response) => {
      response.statusCode = 500;
      response.end();
    };
    expectFailClosed(await fetcher().fetch(), /the cached policy does not match its hash and was ignored/);
    writeFileSync(cacheFile, '{not json');
    expectFailClosed(await fetcher().fetch(), /the cached policy is damaged and was ignored/);
  });

  it('refuses endpoints that are not https (except loopback) before any request', async () => {
    for (const [endpoint, pattern] of [
      ['http://policy.example.com/org.yaml', /must use https:\/\/ \(plain http:\/\/ is allowed only for 127\.0\.0\.1, ::1 and localhost\)/],
      ['ftp://policy.example.com/org.yaml', /must be an https:\/\/ URL; got the scheme "ftp:"/],
      ['policy.example.com', /is not a URL/],
      ['https://user:pw@policy.example.com/', /must not contain a user name or password/],
    ] as const) {
      const outcome = await new PolicyFetcher({ endpoint, cacheFile }).fetch();
      assert.equal(outcome.kind, 'failClosed');
      if (outcome.kind === 'failClosed') assert.match(outcome.reason, pattern);
    }
    for (const endpoint of [
      'https://policy.example.com/org.yaml',
      'http://127.0.0.1:8080/p',
      'http://127.8.9.1/p',
      'http://[::1]:9/p',
      'http://localhost/p',
    ]) {
      assert.ok(checkEndpoint(endpoint).ok, endpoint);
    }
  });

  it('reads public keys as PEM, raw base64 or SPKI base64, and refuses anything else', () => {
    const spki = keys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const raw = Buffer.from((keys.publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url').toString('base64');
    for (const text of [publicPem, spki, raw, `  ${raw}\n`]) assert.ok(parsePublicKey(text).ok, text);
    const privatePem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const cases: [string, RegExp][] = [
      [privatePem, /holds a private key\. Remove it from your settings/],
      [rsa, /is rsa key; Agent Lanes verifies Ed25519 signatures only/],
      ['not a key!', /cannot be read \(it is neither PEM nor base64\)/],
      [Buffer.from('short').toString('base64'), /cannot be read/],
    ];
    for (const [text, pattern] of cases) {
      const result = parsePublicKey(text);
      assert.ok(!result.ok);
      if (!result.ok) assert.match(result.message, pattern);
    }
  });

  it('an invalid public key setting fails closed rather than skipping verification', async () => {
    const outcome = await fetcher({ publicKey: 'not a key!' }).fetch();
    expectFailClosedReason(outcome, /agentLanes\.policy\.publicKey cannot be read/);
    assert.equal(server.requests.length, 0);
  });
});

function expectFailClosedReason(outcome: OrgPolicyOutcome, pattern: RegExp): void {
  assert.equal(outcome.kind, 'failClosed');
  if (outcome.kind === 'failClosed') assert.match(outcome.reason, pattern);
}
