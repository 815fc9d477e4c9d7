import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUILTIN_SECRET_PATTERNS,
  compileSecretPatterns,
  createStreamRedactor,
  findSecrets,
  isSensitiveKey,
  mergeSummaries,
  redactText,
  redactValue,
  shannonEntropy,
} from '../../src/core/redaction';
import { GITLEAKS_RULES } from '../../src/core/secretRules.generated';
import { AuditLog } from '../../src/infra/audit/log';
import { LineRedactor } from '../../src/core/sandbox/taskLog';
import { redactAgentReport } from '../../src/infra/draft/agentReportRedaction';
import { SECRET_SAMPLES } from './redactionSamples';

// Our additions for formats gitleaks lacks bare; their samples are in test/fixtures/redaction/formats.json.
const OWN_KINDS_MEASURED_BY_BENCH = new Set([
  'dopplerToken',
  'telegramBotToken',
  'discordWebhook',
  'sonarToken',
  'supabaseToken',
  'figmaToken',
  'groqKey',
  'replicateToken',
  'xaiKey',
  'tailscaleKey',
  'buildkiteToken',
  'stripeWebhookSecret',
  'squareOAuthSecret',
  'slackAppToken',
  'newRelicKey',
  'airtablePersonalAccessToken',
  'definedNetworkingToken',
]);

const sample = (kind: string) => SECRET_SAMPLES.find((entry) => entry.kind === kind)!;

function assertNoSecret(text: string, where: string): void {
  for (const entry of SECRET_SAMPLES) {
    assert.ok(!text.includes(entry.secret), `${entry.kind} secret survived in ${where}: ${entry.secret.slice(0, 24)}…`);
  }
}

const ORDINARY = [
  '2026-11-21T10:00:00.123Z INFO  [worker-3] GET https://registry.npmjs.org/zod 200 34ms',
  'npm http fetch GET 200 https://registry.npmjs.org/@types%2fnode 120ms (cache revalidated)',
  '  ✓ computes the diff hash for renamed files (12ms)',
  '     AssertionError [ERR_ASSERTION]: Expected values to be strictly equal: 3 !== 4',
  'commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 Author: Dev <dev@example.com>',
  'tokens: 1532 prompt, 420 completion',
  'const tokenizer = new Tokenizer(options);',
  'const password = readPassword();',
  'password: process.env.DB_PASSWORD',
  'token: ${{ secrets.GITHUB_TOKEN }}',
  'api_key=<your key here>',
  'secret: true',
  'Compiling src/core/evidence.ts (sha256 9b74c9897bac770ffc029102a200c5de)',
  'git clone https://github.com/acme/widgets.git',
  'postgres://localhost:5432/app',
  'https://user@example.com/path',
  'skip-test-fixtures and sk-learn are words, not keys',
  'const cacheKey = "build-linux-x64";',
].join('\n');

describe('redaction', () => {
  it('has at least 20 named formats', () => {
    const kinds = new Set(BUILTIN_SECRET_PATTERNS.map((pattern) => pattern.kind));
    assert.ok(kinds.size >= 20, `only ${kinds.size} kinds`);
    for (const pattern of BUILTIN_SECRET_PATTERNS) assert.match(pattern.kind, /^[a-z0-9][A-Za-z0-9]+$/);
    // Every kind of ours has at least one realistic sample below; gitleaks' are measured by test/bench/redaction.bench.ts.
    const gitleaks = new Set(GITLEAKS_RULES.map((rule) => rule.id.replace(/-([a-z0-9])/g, (_, char: string) => char.toUpperCase())));
    for (const kind of [...kinds].filter((kind) => !gitleaks.has(kind) && !OWN_KINDS_MEASURED_BY_BENCH.has(kind)))
      assert.ok(
        SECRET_SAMPLES.some((entry) => entry.kind === kind),
        `no sample for ${kind}`,
      );
  });

  for (const entry of SECRET_SAMPLES) {
    it(`redacts ${entry.kind}: ${entry.text.slice(0, 40).replace(/\n/g, ' ')}…`, () => {
      const { text, summary } = redactText(entry.text);
      assert.ok(!text.includes(entry.secret), `secret survived: ${text}`);
      assert.ok(text.includes('[REDACTED:'), text);
      assert.ok(summary.total >= 1);
      assert.equal(
        Object.values(summary.byKind).reduce((a, b) => a + b, 0),
        summary.total,
      );
    });
  }

  it('names the kind that matched', () => {
    const kinds = (text: string) => findSecrets(text).map((match) => match.kind);
    assert.deepEqual(kinds('AKIAIOSFODNN7EXAMPLE'), ['awsAccessKeyId']);
    assert.deepEqual(kinds(sample('anthropicKey').secret), ['anthropicKey']);
    assert.deepEqual(kinds('-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBL\n-----END EC PRIVATE KEY-----'), ['privateKeyBlock']);
    assert.equal(redactText('password=hunter2').text, 'password=[REDACTED:secretAssignment]');
    assert.equal(
      redactText('https://deploy:s3cret-pass@git.example.com/x.git').text,
      'https://deploy:[REDACTED:urlCredentials]@git.example.com/x.git',
    );
  });

  it('leaves ordinary logs and code alone', () => {
    const { text, summary } = redactText(ORDINARY);
    assert.deepEqual(summary, { total: 0, byKind: {} }, text);
    assert.equal(text, ORDINARY);
  });

  it('cuts a private key block even without its END line (a truncated log)', () => {
    const text =
      'key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDc';
    const result = redactText(text);
    assert.ok(!result.text.includes('b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ'), result.text);
  });

  it('finds secrets in order, without overlaps, and counts every replacement', () => {
    const text = SECRET_SAMPLES.map((entry) => entry.text).join('\n');
    const matches = findSecrets(text);
    for (let i = 1; i < matches.length; i++) {
      assert.ok(matches[i]!.index >= matches[i - 1]!.index + matches[i - 1]!.length, 'overlap or disorder');
    }
    const { text: redacted, summary } = redactText(text);
    assert.equal(summary.total, matches.length);
    assert.equal((redacted.match(/\[REDACTED:/g) ?? []).length, matches.length);
    assertNoSecret(redacted, 'a string built from every sample');
  });

  it('adds policy patterns, and reports a bad one by name without throwing', () => {
    const { patterns, errors } = compileSecretPatterns([
      { name: 'acme-token', pattern: 'acme_[a-z0-9]{16}' },
      { name: 'legacy', pattern: '(?i)legacy-key-[0-9]{4}' },
      { name: 'broken', pattern: 'acme_[a-z' },
      { name: 'everything', pattern: 'x*' },
      { name: 'empty', pattern: '' },
    ]);
    assert.equal(errors.length, 3);
    assert.match(errors[0]!, /Secret pattern "broken" is not a valid regular expression/);
    assert.match(errors[1]!, /"everything" matches the empty string/);
    assert.match(errors[2]!, /"empty" is empty/);
    assert.equal(patterns.length, BUILTIN_SECRET_PATTERNS.length + 2, 'built-ins plus the two valid extras');
    const result = redactText('deploy with acme_0123456789abcdef and LEGACY-KEY-1234 and ghp_' + 'a1B2'.repeat(9), patterns);
    assert.equal(result.text, 'deploy with [REDACTED:policy:acme-token] and [REDACTED:policy:legacy] and [REDACTED:githubToken]');
    assert.deepEqual(result.summary.byKind, { 'policy:acme-token': 1, 'policy:legacy': 1, githubToken: 1 });
  });

  it('redacts JSON values deeply, including values under secret-named keys, without touching the input', () => {
    const input = {
      prompt: `use ${sample('githubToken').secret} to push`,
      env: { GITHUB_TOKEN: 'opaque-value-1', apiKey: 'abc', clientSecret: 'zzz', DB_PASSWORD: 'pw', tokenCount: 'seven', PATH: '/usr/bin' },
      headers: [{ authorization: 'whatever' }],
      nested: [[`x ${sample('awsSecretAccessKey').text}`]],
      count: 3,
      ok: true,
      none: null,
    };
    const copy = structuredClone(input);
    const { value, summary } = redactValue(input);
    assert.deepEqual(input, copy, 'input unchanged');
    assert.equal(value.env.GITHUB_TOKEN, '[REDACTED:sensitiveField]');
    assert.equal(value.env.apiKey, '[REDACTED:sensitiveField]');
    assert.equal(value.env.clientSecret, '[REDACTED:sensitiveField]');
    assert.equal(value.env.DB_PASSWORD, '[REDACTED:sensitiveField]');
    assert.equal(value.env.tokenCount, 'seven');
    assert.equal(value.env.PATH, '/usr/bin');
    assert.equal(value.headers[0]!.authorization, '[REDACTED:sensitiveField]');
    assert.equal(value.prompt, 'use [REDACTED:githubToken] to push');
    assert.equal(value.count, 3);
    assert.equal(value.none, null);
    assertNoSecret(JSON.stringify(value), 'redactValue output');
    assert.equal(summary.byKind.sensitiveField, 5);
    assert.equal(summary.total, 7);
    assert.ok(isSensitiveKey('x-api-key') && isSensitiveKey('private_key') && !isSensitiveKey('secretRef') && !isSensitiveKey('maxTokens'));
  });

  it('merges summaries', () => {
    assert.deepEqual(
      mergeSummaries({ total: 2, byKind: { jwt: 2 } }, { total: 3, byKind: { jwt: 1, npmToken: 2 } }, { total: 0, byKind: {} }),
      {
        total: 5,
        byKind: { jwt: 3, npmToken: 2 },
      },
    );
  });

  it('measures entropy', () => {
    assert.equal(shannonEntropy('aaaa'), 0);
    assert.equal(shannonEntropy('abcd'), 2);
  });

  describe('no format survives anywhere it is stored', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lanes-redaction-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('in the audit file, a redacted log, evidence and a PR body built from them', async () => {
      const everything = SECRET_SAMPLES.map((entry) => entry.text).join('\n');

      const log = await AuditLog.open(join(dir, 'audit.jsonl'), { repoKey: 'r'.repeat(64) });
      await Promise.all(
        SECRET_SAMPLES.map((entry) =>
          log.append({
            actor: { type: 'agent', id: 'coder' },
            action: 'task.run',
            changeId: 'c0ffee00',
            details: { output: entry.text, lines: [entry.text], env: { SECRET_VALUE: entry.secret } },
          }),
        ),
      );
      await log.append({ actor: { type: 'user', id: 'dev' }, action: 'review.approve', details: { comment: everything } });
      await log.close();
      const auditText = await readFile(join(dir, 'audit.jsonl'), 'utf8');
      assertNoSecret(auditText, 'the audit file');
      assert.ok((await log.verify()).ok);

      const taskLog = redactText(`$ npm test\n${everything}\n1 passing`);
      assertNoSecret(taskLog.text, 'a redacted task log');
      assert.ok(taskLog.summary.total >= SECRET_SAMPLES.length);

      const evidence = redactValue({
        changeId: 'c0ffee00',
        prompt: { ref: 'p1', redacted: everything },
        agentReport: { assumptions: SECRET_SAMPLES.map((entry) => entry.text) },
        tasks: [{ command: `deploy --token ${sample('githubToken').secret}` }],
      });
      assertNoSecret(JSON.stringify(evidence.value), 'evidence');

      const prBody = redactText(`## Summary\n\n${evidence.value.prompt.redacted}\n\n## Tests\n\n\`\`\`\n${everything}\n\`\`\`\n`);
      assertNoSecret(prBody.text, 'a PR body');
    });
  });
});

describe('issue 13: redaction', () => {
  // Fake tokens, assembled at run time from parts so that no whole token sits in the source.
  const fill = (chars: string, length: number, seed: number) => {
    let state = seed * 2654435761 + 1;
    return Array.from({ length }, () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return chars[(state >>> 10) % chars.length];
    }).join('');
  };
  const ALNUM = 'aB3cD4eF5gH6iJ7kL8mN9pQ2rS1tU0vWxYz';
  const HEX = '0123456789abcdef';
  const pem = (lines: number) => [
    '-----BEGIN RSA PRIVATE KEY-----',
    ...Array.from({ length: lines }, (_, i) => `MIIEow${i}${fill('QkFTRTY0ABCDEFghij+/', 56, i)}`),
    '-----END RSA PRIVATE KEY-----',
  ];

  const formats: [string, string][] = [
    ['DigitalOcean', 'dop_v1_' + fill(HEX, 64, 1)],
    ['Doppler', 'dp.st.prd.' + fill(ALNUM, 40, 2)],
    ['Grafana', 'glsa_' + fill(ALNUM, 32, 3) + '_' + fill(HEX, 8, 3)],
    ['Vault', 'hvs.' + fill(ALNUM, 95, 4)],
    ['Databricks', 'dapi' + fill(HEX, 32, 5)],
    ['PlanetScale', 'pscale_pw_' + fill(ALNUM, 43, 6)],
    ['Postman', 'PMAK-' + fill(HEX, 24, 7) + '-' + fill(HEX, 34, 7)],
    ['Pulumi', 'pul-' + fill(HEX, 40, 8)],
    ['RubyGems', 'rubygems_' + fill(HEX, 48, 9)],
    ['Sentry', 'sntryu_' + fill(HEX, 64, 10)],
    ['unsigned JWT', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ' + fill(ALNUM, 12, 11) + 'In0.'],
    ['Slack xapp-', 'xapp-1-A' + fill('ABCDEFGH0123456789', 10, 12) + '-' + fill('0123456789', 13, 12) + '-' + fill(HEX, 64, 12)],
    [
      'Slack webhook without https://',
      'hooks.slack.com/services/T' + fill('ABCDEF0123', 10, 13) + '/B' + fill('ABCDEF0123', 10, 14) + '/' + fill(ALNUM, 24, 13),
    ],
  ];
  for (const [name, token] of formats) {
    it(`catches a bare ${name} token`, () => {
      const { text } = redactText(token);
      assert.ok(!text.includes(token.slice(-12)), `${name} survived: ${text}`);
    });
  }

  it('catches Authorization: Api-Token', () => {
    const value = fill(ALNUM, 40, 15);
    assert.equal(redactText(`Authorization: Api-Token ${value}`).text, 'Authorization: Api-Token [REDACTED:authorizationHeader]');
  });

  it('catches assignments the generic rule missed, and cuts unquoted values whole', () => {
    const cases: [string, string][] = [
      ['DB_PASS=s3cr3t-Val', 's3cr3t-Val'],
      ['password = `s3cr3t-Val`', 's3cr3t-Val'],
      ['deploy --token s3cr3t-Val --force', 's3cr3t-Val'],
      ['<password>s3cr3t-Val</password>', 's3cr3t-Val'],
      ['props.setProperty("db.password", "s3cr3t-Val");', 's3cr3t-Val'],
      ['API_TOKEN ?= s3cr3t-Val', 's3cr3t-Val'],
      ['password=Tr0ub4dor&3x', 'Tr0ub4dor&3x'],
    ];
    for (const [line, secret] of cases) {
      const { text } = redactText(line);
      assert.ok(!text.includes(secret) && !text.includes('&3x') && text.includes('[REDACTED:'), `${line} → ${text}`);
    }
    assert.equal(redactText('password=Tr0ub4dor&3x').text, 'password=[REDACTED:secretAssignment]');
    assert.equal(
      redactText('https://x.example/login?password=hunter22&user=me').text,
      'https://x.example/login?password=[REDACTED:secretAssignment]&user=me',
    );
  });

  it('leaves ordinary text alone: paths, package names, hashes, ids, cache keys', () => {
    const lines = [
      'symlink leak -> /etc/passwd: SUCCEEDED',
      '    "jsonwebtoken": "^9.0.0",',
      '    "@octokit/auth-token": "^6.0.0",',
      'import { createTokenAuth } from "@octokit/auth-token";',
      `designHash: "${fill(HEX, 40, 16)}"`,
      'sessionId: "3f2a9c1d-8e7b-4a5f-9e3d-2c1b0a9f8e7d"',
      `cache-key: npm-linux-x64-${fill(HEX, 16, 17)}`,
      'token = saveToken;',
      'node.questionToken = void 0;',
    ];
    for (const line of lines) assert.equal(redactText(line).text, line);
  });

  it('cuts a private key streamed line by line as one block; no body line is passed on', () => {
    const key = pem(11);
    const redactor = createStreamRedactor();
    const out = [...['before', ...key, 'after'].flatMap((line) => redactor.push(line)), ...redactor.flush()];
    assert.deepEqual(out, ['before', '[REDACTED:privateKeyBlock]', 'after']);
    assert.equal(redactor.summary.byKind.privateKeyBlock, 1);
    // Without an END line, the block is cut whole at the cap or at the end of the stream.
    const open = createStreamRedactor(undefined, { maxLines: 5 });
    const cut = [...key.slice(0, 8).flatMap((line) => open.push(line)), ...open.flush()];
    for (const line of key.slice(1, 8)) assert.ok(!cut.includes(line));
  });

  it('a task log streamed in two chunks shows none of a private key', () => {
    const text = `$ deploy\n${pem(11).join('\n')}\ndone\n`;
    const shown: string[] = [];
    const stream = new LineRedactor((chunk) => shown.push(chunk));
    const middle = text.indexOf('\n', text.length / 2) - 10;
    stream.write(text.slice(0, middle));
    stream.write(text.slice(middle));
    const summary = stream.end();
    const all = shown.join('');
    for (const line of pem(11).slice(1, -1)) assert.ok(!all.includes(line.slice(0, 30)), all);
    assert.match(all, /\$ deploy\n\[REDACTED:privateKeyBlock\]\ndone\n/);
    assert.equal(summary.byKind.privateKeyBlock, 1);
  });

  it('redacts the agent report where it enters and rewrites its file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lanes-report-'));
    try {
      const aws = 'AKIA' + fill('ABCDEFGHJKLMNPQRSTUVWXYZ234567', 16, 18);
      const github = 'ghp_' + fill(ALNUM, 36, 19);
      const file = join(dir, 'agent-report.json');
      const report = { summary: `used ${aws} to test`, confidenceLimits: [`pushed with ${github}`] };
      await writeFile(file, JSON.stringify(report));
      const parsed = await redactAgentReport({ report } as never, file, BUILTIN_SECRET_PATTERNS);
      const shown = JSON.stringify(parsed);
      const stored = await readFile(file, 'utf8');
      for (const secret of [aws, github]) {
        assert.ok(!shown.includes(secret), 'the report kept a secret');
        assert.ok(!stored.includes(secret), 'agent-report.json kept a secret');
      }
      assert.match(shown, /\[REDACTED:awsAccessKeyId\]/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs policy patterns in linear time and refuses ones that match everything', () => {
    const { patterns, errors } = compileSecretPatterns([{ name: 'backtracking', pattern: '(a|aa)+$' }]);
    assert.deepEqual(errors, []);
    const start = Date.now();
    redactText(`${'a'.repeat(40_000)}!`, patterns);
    assert.ok(Date.now() - start < 2_000, `took ${Date.now() - start} ms`);
    for (const pattern of ['[\\s\\S]+', '.+', '\\w+']) {
      const refused = compileSecretPatterns([{ name: 'all', pattern }]).errors;
      assert.equal(refused.length, 1, pattern);
      assert.match(refused[0]!, /"all" matches ordinary text .* anchor it on what only the secret has/);
    }
    assert.match(compileSecretPatterns([{ name: 'look', pattern: 'acme(?=_)' }]).errors[0]!, /not a valid regular expression.*Lookarounds/);
  });
});
