import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import picomatch from 'picomatch';
import YAML from 'yaml';
import { builtinPolicyDocument } from '../../src/core/policy/defaults';
import { GlobIndex, globProblem } from '../../src/core/policy/globs';
import { parseOverlayObject, parsePolicy, POLICY_API_VERSION, PolicyDocumentSchema } from '../../src/core/policy/schema';
import { version } from '../../package.json';

const HEADER = `apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: "1" }\n`;

function errorsOf(text: string, source = 'org.yaml'): string[] {
  const result = parsePolicy(text, source);
  assert.equal(result.ok, false, 'expected the policy to be refused');
  return result.ok ? [] : result.errors;
}

describe('policy schema', () => {
  it('accepts the sample org policy and keeps what it says', () => {
    const text = readFileSync(join(__dirname, '../../../test/fixtures/policy/sample-org-policy.yaml'), 'utf8');
    const result = parsePolicy(text, 'sample-org-policy.yaml');
    assert.ok(result.ok, result.ok ? '' : result.errors.join('\n'));
    assert.equal(result.policy.metadata.id, 'acme-platform');
    assert.equal(result.policy.metadata.expiresAt, '2030-12-31T00:00:00Z');
    assert.deepEqual(result.policy.lanes?.sandbox?.network?.preparation, { registries: ['registry.npmjs.org'] });
    assert.equal(result.policy.pathRules?.[0]?.glob, 'infra/**');
  });

  it('refuses a numeric version YAML would change (2026.10 is 2026.1), telling to quote it; keeps one it reads as written', () => {
    const lossy = parsePolicy('apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: 2026.10 }\n', 'org.yaml');
    assert.equal(lossy.ok, false);
    assert.match(
      lossy.ok ? '' : lossy.errors.join('\n'),
      /org\.yaml:2:\d+: metadata\.version: 2026\.10 is read by YAML as the number 2026\.1; quote it \(version: "2026\.10"\)/,
    );
    const exact = parsePolicy('apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: 2026.11 }\n', 'org.yaml');
    assert.ok(exact.ok && exact.policy.metadata.version === '2026.11');
  });

  it('names the field a shortened name meant (maxLines → maxChangedLines), not the nearest spelling (maxFiles)', () => {
    const result = parsePolicy(
      'apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: "1" }\nblastRadius: { maxLines: 10 }\n',
      'org.yaml',
    );
    assert.match(result.ok ? '' : result.errors.join('\n'), /blastRadius\.maxLines: unknown field \(did you mean "maxChangedLines"\?\)/);
  });

  it('reads JSON as well as YAML, and turns a numeric version into a string', () => {
    const result = parsePolicy(
      JSON.stringify({ apiVersion: POLICY_API_VERSION, metadata: { id: 'acme', version: 3 }, blastRadius: { maxFiles: 5 } }),
      'org.json',
    );
    assert.ok(result.ok);
    assert.equal(result.policy.metadata.version, '3');
    assert.equal(result.policy.blastRadius?.maxFiles, 5);
  });

  it('names the field, the position and what was expected for a wrong type', () => {
    const errors = errorsOf(`${HEADER}lanes:\n  sandbox:\n    limits:\n      cpus: two\n`);
    assert.deepEqual(errors, ['org.yaml:6:13: lanes.sandbox.limits.cpus: expected a number, got "two"']);
  });

  it('lists every problem, top to bottom, each with its path', () => {
    const errors = errorsOf(
      `${HEADER}pathRules:\n  - glob: "infra/**"\n    effect: deny\n    reason: x\n  - glob: "docs/**"\n    effect: block\nstopConditions: { secretLike: maybe }\nblastRadius: { maxFiles: 0 }\n`,
    );
    assert.equal(errors.length, 4, errors.join('\n'));
    assert.match(errors[0]!, /^org\.yaml:5:13: pathRules\[0\]\.effect: expected one of "allow", "requireApproval", "block", got "deny"$/);
    assert.match(errors[1]!, /pathRules\[1\]\.reason: is required \(expected a string\)/);
    assert.match(errors[2]!, /stopConditions\.secretLike: expected one of .*got "maybe"/);
    assert.match(errors[3]!, /blastRadius\.maxFiles: expected a number > 0, got 0/);
  });

  it('refuses unknown fields and suggests the right name', () => {
    const errors = errorsOf(`${HEADER}pathRule: []\nlanes: { evidnce: {} }\n`);
    assert.ok(
      errors.some((error) => /pathRule: unknown field \(did you mean "pathRules"\?\)/.test(error)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((error) => /lanes\.evidnce: unknown field \(did you mean "evidence"\?\)/.test(error)),
      errors.join('\n'),
    );
  });

  it('requires apiVersion and says which version it reads', () => {
    assert.match(
      errorsOf('metadata: { id: a, version: "1" }\n')[0]!,
      /apiVersion: is required: start the document with "apiVersion: agentlanes\.dev\/v1"/,
    );
    assert.match(
      errorsOf('apiVersion: agentlanes.dev/v2\nmetadata: { id: a, version: "1" }\n')[0]!,
      /expected "agentlanes\.dev\/v1", got "agentlanes\.dev\/v2"/,
    );
  });

  it('reports YAML syntax errors with line and column', () => {
    const errors = errorsOf('apiVersion: agentlanes.dev/v1\nmetadata:\n  id: [a,\n', 'bad.yaml');
    assert.match(errors[0]!, /^bad\.yaml:\d+:\d+: YAML syntax error: /);
    assert.match(errorsOf('a: 1\na: 2\n', 'dup.yaml')[0]!, /^dup\.yaml:2:1: YAML syntax error: Map keys must be unique/);
  });

  it('refuses an empty document, a list and an oversized document with a message', () => {
    assert.match(errorsOf('')[0]!, /the document is empty/);
    assert.match(errorsOf('- a\n')[0]!, /\(document\): expected a mapping, got a list/);
    const huge = parsePolicy(`${HEADER}# ${'x'.repeat(200)}\n`, 'big.yaml', { maxLength: 100 });
    assert.ok(!huge.ok && /at most 100/.test(huge.errors[0]!));
  });

  it('reports invalid globs in path rules, sensitive paths and reviewers', () => {
    const errors = errorsOf(
      `${HEADER}pathRules: [{ glob: "infra/[abc", effect: block, reason: r }, { glob: "/etc/**", effect: block, reason: r }, { glob: "!x/**", effect: block, reason: r }]\nsensitivePaths: ["src/{a,b"]\nlanes: { approvals: { sensitivePathReviewers: [{ glob: "../x", reviewers: [a] }] } }\n`,
    );
    assert.ok(
      errors.some((e) => /pathRules\[0\]\.glob: invalid glob "infra\/\[abc": a "\[" is never closed; add the "\]"/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /pathRules\[1\]\.glob: "\/etc\/\*\*" starts with "\/".*write "etc\/\*\*"/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /pathRules\[2\]\.glob: .*negation is not supported/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /sensitivePaths\[0\]: invalid glob "src\/\{a,b"/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /sensitivePathReviewers\[0\]\.glob: .*cannot leave the repository/.test(e)),
      errors.join('\n'),
    );
  });

  it('reports an invalid secret pattern by name', () => {
    const errors = errorsOf(`${HEADER}secretPatterns: [{ name: acme-token, pattern: "(abc" }]\n`);
    assert.match(errors[0]!, /secretPatterns\[0\]\.pattern: Secret pattern "acme-token" is not a valid regular expression/);
  });

  it('checks the shape of network, registries, dates and required tasks', () => {
    const errors = errorsOf(
      `apiVersion: agentlanes.dev/v1\nmetadata: { id: acme, version: "1", expiresAt: "next week" }\nlanes:\n  sandbox:\n    network: { tasks: closed, preparation: { registries: ["not a host"] } }\n    requiredTasks: [{ id: unit, command: npm test }, { id: unit, command: npm run lint }]\n  evidence: { required: [tests, vibes] }\n`,
    );
    const text = errors.join('\n');
    assert.match(text, /metadata\.expiresAt: expected an ISO 8601 date-time with a time zone/);
    assert.match(text, /lanes\.sandbox\.network\.tasks: expected one of "none", "open", got "closed"/);
    assert.match(text, /lanes\.sandbox\.network\.preparation\.registries\[0\]: expected a host name/);
    assert.match(text, /lanes\.sandbox\.requiredTasks\[1\]\.id: task id "unit" appears twice/);
    assert.match(text, /lanes\.evidence\.required\[1\]: expected one of .*"tests".*got "vibes"/);
  });

  it('lets an overlay leave out metadata, and fills it in', () => {
    const result = parseOverlayObject({ blastRadius: { maxFiles: 3 } }, 'agentLanes.policy.user', {
      id: 'user-settings',
      version: 'local',
    });
    assert.ok(result.ok);
    assert.deepEqual(result.policy.metadata, { id: 'user-settings', version: 'local' });
    const bad = parseOverlayObject({ blastRadius: { maxFiles: 'lots' } }, 'agentLanes.policy.user', {
      id: 'user-settings',
      version: 'local',
    });
    assert.ok(!bad.ok);
    assert.equal(bad.errors[0], 'agentLanes.policy.user: blastRadius.maxFiles: expected a number, got "lots"');
  });

  it('the built-in policy is itself a valid document, with the package version', () => {
    const document = builtinPolicyDocument();
    assert.equal(document.metadata.id, 'agent-lanes-local');
    assert.equal(document.metadata.version, version);
    const roundTrip = parsePolicy(YAML.stringify(document), 'builtin.yaml');
    assert.ok(roundTrip.ok, roundTrip.ok ? '' : roundTrip.errors.join('\n'));
    assert.ok(PolicyDocumentSchema.safeParse(document).success);
    assert.equal(document.lanes?.pullRequests?.draftOnly, true);
    assert.equal(document.lanes?.sandbox?.network?.tasks, 'none');
    const effects = new Map(document.pathRules?.map((rule) => [rule.glob, rule.effect]));
    for (const glob of ['.github/workflows/**', '**/.env*', '**/*.pem', '**/*.key', '**/secrets/**', '**/id_rsa*'])
      assert.equal(effects.get(glob), 'block', glob);
    for (const glob of ['**/AGENTS.md', '**/CLAUDE.md', '.github/copilot-instructions.md', '**/.cursorrules', '.lanes/**'])
      assert.equal(effects.get(glob), 'requireApproval', glob);
  });
});

describe('policy globs', () => {
  it('globProblem accepts ordinary globs', () => {
    for (const glob of ['infra/**', '**/*.lock', 'AGENTS.md', '.github/workflows/*.yml', 'src/{a,b}/**', 'a/@(x|y).ts'])
      assert.equal(globProblem(glob), undefined, glob);
  });

  it('GlobIndex finds exactly what picomatch finds, for every kind of glob', () => {
    const globs = [
      'infra/**',
      'infra/docs/**',
      '**/*.lock',
      '**/package-lock.json',
      '.github/workflows/**',
      '**/.env*',
      '**/secrets/**',
      'AGENTS.md',
      '**/AGENTS.md',
      'src/*.ts',
      'src/**/*.test.ts',
      'src/{a,b}/**',
      '{docs,site}/**/*.md',
      'a/@(x|y).ts',
      'packages/*/src/**',
      '*',
      '**',
      'src/[ab]*.ts',
      'lib/**/index.js',
      '**/id_rsa*',
      '**/.aws/**',
      'x\\*y',
      'deep/a/b/c/**/*.sql',
      '**/migrations/*.sql',
    ];
    const paths = [
      'infra/main.tf',
      'infra/docs/a.md',
      'yarn.lock',
      'pkg/web/yarn.lock',
      'package-lock.json',
      'a/b/package-lock.json',
      '.github/workflows/ci.yml',
      '.env',
      'app/.env.local',
      'a/secrets/b/c',
      'secrets',
      'AGENTS.md',
      'docs/AGENTS.md',
      'src/x.ts',
      'src/d/x.ts',
      'src/d/x.test.ts',
      'src/a/q.js',
      'src/b',
      'docs/a/b.md',
      'site/x.md',
      'a/x.ts',
      'a/z.ts',
      'packages/p/src/i.ts',
      'packages/p/lib/i.ts',
      'README',
      'src/aa.ts',
      'src/cc.ts',
      'lib/index.js',
      'lib/a/b/index.js',
      'home/.ssh/id_rsa.pub',
      '.aws/credentials',
      'x*y',
      'deep/a/b/c/q/r.sql',
      'db/migrations/1.sql',
      'db/migrations/x/1.sql',
      '.hidden/a.lock',
      'weird name/with space.lock',
    ];
    const index = new GlobIndex<string>();
    for (const glob of globs) index.add(glob, glob);
    for (const path of paths) {
      const expected = globs.filter((glob) => picomatch(glob, { dot: true, strictBrackets: true, windows: false })(path));
      assert.deepEqual(index.match(path), expected, path);
    }
  });
});
