import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUILTIN_SECRET_PATTERNS,
  compileSecretPatterns,
  findSecrets,
  isSensitiveKey,
  mergeSummaries,
  redactText,
  redactValue,
  shannonEntropy,
} from '../../src/core/redaction';
import { GITLEAKS_RULES } from '../../src/core/secretRules.generated';
import { AuditLog } from '../../src/infra/audit/log';
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
