import { strict as assert } from 'node:assert';
import { allowEntryProblem, egressAllowed, ipLiteral, isInternalAddress, parseAllowEntry } from '../../src/core/draft/egressAllowlist';

describe('egress allowlist', () => {
  describe('entries', () => {
    it('accepts names, wildcards, IP addresses, with and without a port', () => {
      const cases: [string, ReturnType<typeof parseAllowEntry>][] = [
        ['api.anthropic.com', { ok: true, entry: { kind: 'name', host: 'api.anthropic.com', port: undefined } }],
        ['API.Example.COM.', { ok: true, entry: { kind: 'name', host: 'api.example.com', port: undefined } }],
        ['registry.npmjs.org:443', { ok: true, entry: { kind: 'name', host: 'registry.npmjs.org', port: 443 } }],
        ['*.githubusercontent.com', { ok: true, entry: { kind: 'wildcard', host: 'githubusercontent.com', port: undefined } }],
        ['*.example.com:8443', { ok: true, entry: { kind: 'wildcard', host: 'example.com', port: 8443 } }],
        ['localhost', { ok: true, entry: { kind: 'name', host: 'localhost', port: undefined } }],
        ['203.0.113.7', { ok: true, entry: { kind: 'ip', host: '203.0.113.7', port: undefined } }],
        ['127.0.0.1:8080', { ok: true, entry: { kind: 'ip', host: '127.0.0.1', port: 8080 } }],
        ['2001:db8::1', { ok: true, entry: { kind: 'ip', host: '2001:db8:0:0:0:0:0:1', port: undefined } }],
        ['[::1]:9000', { ok: true, entry: { kind: 'ip', host: '0:0:0:0:0:0:0:1', port: 9000 } }],
      ];
      for (const [entry, expected] of cases) assert.deepEqual(parseAllowEntry(entry), expected, entry);
    });

    it('rejects what it cannot honour, saying what to write instead', () => {
      const cases: [string, RegExp][] = [
        ['', /is empty: write a host name/],
        ['*', /allows every host: list the hosts/],
        ['*:443', /allows every host/],
        ['https://api.example.com/v1', /has a scheme: write the host alone, such as "api\.example\.com"/],
        ['api.example.com/v1', /has a path.*write "api\.example\.com"/],
        ['user@api.example.com', /has a path, a query or a user/],
        ['*.10.0.0.1', /wildcard over IP addresses: list each address exactly/],
        ['10.0.0.*', /wildcard over IP addresses/],
        ['10.*', /wildcard over IP addresses/],
        ['api.*.example.com', /only a leading "\*\." is allowed/],
        ['*.com', /whole top-level domain/],
        ['example.com:0', /invalid port/],
        ['example.com:70000', /invalid port/],
        ['example.com:https', /invalid port/],
        ['127.1', /looks like an IP address but is not one/],
        ['2130706433', /looks like an IP address/],
        ['exa mple.com', /contains spaces/],
        ['bad_-.example..com', /not a valid host name/],
        ['[example.com]:443', /brackets around something that is not an IPv6 address/],
        ['1:2:3', /not a valid IPv6 address.*\[2001:db8::1\]:443/],
      ];
      for (const [entry, pattern] of cases) {
        const problem = allowEntryProblem(entry);
        assert.ok(problem, `${entry} should be rejected`);
        assert.match(problem, pattern, entry);
        assert.match(problem, /^lanes\.agent\.network\.allow: /, entry);
      }
      assert.equal(allowEntryProblem('*.example.com'), undefined);
    });
  });

  describe('matching', () => {
    const allow = ['api.anthropic.com', '*.githubusercontent.com', 'registry.npmjs.org:443', '203.0.113.7:8080', '[2001:db8::1]:443'];
    const table: [string, number, boolean][] = [
      ['api.anthropic.com', 443, true],
      ['api.anthropic.com', 80, true],
      ['api.anthropic.com', 8443, false],
      ['API.Anthropic.Com', 443, true],
      ['api.anthropic.com.', 443, true],
      ['anthropic.com', 443, false],
      ['evil-api.anthropic.com', 443, false],
      ['api.anthropic.com.evil.test', 443, false],
      ['raw.githubusercontent.com', 443, true],
      ['a.b.githubusercontent.com', 80, true],
      ['githubusercontent.com', 443, false],
      ['evilgithubusercontent.com', 443, false],
      ['registry.npmjs.org', 443, true],
      ['registry.npmjs.org', 80, false],
      ['203.0.113.7', 8080, true],
      ['203.0.113.7', 443, false],
      ['203.0.113.8', 8080, false],
      ['[2001:db8::1]', 443, true],
      ['2001:0db8:0:0::1', 443, true],
      ['[2001:db8::2]', 443, false],
      ['api.anthropic.com', 0, false],
      ['api.anthropic.com', 65536, false],
      ['', 443, false],
      ['bad host', 443, false],
    ];
    for (const [host, port, expected] of table) {
      it(`${host || '(empty)'}:${port} is ${expected ? 'allowed' : 'refused'}`, () => {
        assert.equal(egressAllowed(allow, host, port), expected);
      });
    }

    it('an IP address matches only an entry listing it, never a name or a wildcard that resolves to it', () => {
      assert.equal(egressAllowed(['localhost:8080'], '127.0.0.1', 8080), false);
      assert.equal(egressAllowed(['*.0.0.1'], '127.0.0.1', 443), false);
      assert.equal(egressAllowed(['127.0.0.1:8080'], '127.0.0.1', 8080), true);
      assert.equal(egressAllowed(['127.0.0.1:8080'], 'localhost', 8080), false);
      // Numeric names the resolver would read as 127.0.0.1 are not names.
      assert.equal(egressAllowed(['127.0.0.1:8080'], '2130706433', 8080), false);
      assert.equal(egressAllowed(['127.0.0.1:8080'], '127.1', 8080), false);
    });

    it('an empty list allows nothing; invalid entries allow nothing', () => {
      assert.equal(egressAllowed([], 'api.anthropic.com', 443), false);
      assert.equal(egressAllowed(['*', '*:443', 'https://api.anthropic.com'], 'api.anthropic.com', 443), false);
    });
  });

  describe('addresses', () => {
    it('canonicalises IP literals', () => {
      assert.equal(ipLiteral('192.0.2.1'), '192.0.2.1');
      assert.equal(ipLiteral('::ffff:192.0.2.1'), '0:0:0:0:0:ffff:c000:201');
      assert.equal(ipLiteral('::1.2.3.4'), '0:0:0:0:0:0:102:304');
      assert.equal(ipLiteral('FE80::1'), 'fe80:0:0:0:0:0:0:1');
      assert.equal(ipLiteral('010.0.0.1'), undefined);
      assert.equal(ipLiteral('1:::2'), undefined);
      assert.equal(ipLiteral('fe80::1%eth0'), undefined);
      assert.equal(ipLiteral('example.com'), undefined);
    });

    it('knows the internal ranges a listed name must not resolve to', () => {
      const internal = [
        '127.0.0.1',
        '127.255.0.9',
        '0.0.0.0',
        '10.1.2.3',
        '172.16.0.1',
        '172.31.255.255',
        '192.168.1.1',
        '169.254.169.254',
        '100.64.0.1',
        '224.0.0.1',
        '::1',
        '::',
        'fe80::1',
        'fc00::1',
        'fd12:3456::1',
        '::ffff:127.0.0.1',
        '::ffff:10.0.0.1',
        '64:ff9b::a00:1',
        '2002:c0a8:101::1',
        'not an address',
      ];
      for (const address of internal) assert.equal(isInternalAddress(address), true, address);
      const external = ['203.0.113.7', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '2002:0808:0808::1'];
      for (const address of external) assert.equal(isInternalAddress(address), false, address);
    });
  });
});
