import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020';
import { parse as parseYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPolicyCli } from '../../src/cli/policy';
import { parsePolicyObject } from '../../src/core/policy/schema';
import { runPolicyTests } from '../../src/core/policy/testRunner';

const FIXTURES = join(__dirname, '../../../test/fixtures/policy');
const SAMPLE_POLICY = join(FIXTURES, 'sample-org-policy.yaml');
const SAMPLE_CASES = join(FIXTURES, 'sample-org-policy.cases.yaml');

const POLICY = `apiVersion: agentlanes.dev/v1
metadata: { id: acme, version: "1" }
pathRules:
  - { glob: "infra/**", effect: block, reason: Terraform only. }
`;

function capture() {
  const logs: string[] = [];
  const errors: string[] = [];
  return { out: { log: (s: string) => logs.push(s), error: (s: string) => errors.push(s) }, logs, errors };
}

describe('policy test runner', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lanes-policy-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('runs cases: effect and reason as substring or /regex/', () => {
    const run = runPolicyTests(
      { text: POLICY, source: 'p.yaml' },
      `cases:
  - name: infra blocked
    action: gate.draftToSandbox
    facts: { files: [infra/a.tf] }
    expect: { effect: block, reason: "Terraform only" }
  - name: regex reason
    action: gate.draftToSandbox
    facts: { files: [infra/a.tf] }
    expect: { effect: block, reason: "/terraform/i" }
  - name: wrong expectation
    action: gate.draftToSandbox
    facts: { files: [src/a.ts] }
    expect: { effect: block, reason: nothing }
`,
      'c.yaml',
    );
    assert.ok(run.ok);
    assert.deepEqual(
      run.results.map((result) => result.passed),
      [true, true, false],
    );
    assert.deepEqual(run.results[2]!.problems, ['expected effect block, got allow', 'expected the reason to contain nothing']);
    assert.equal(run.passed, 2);
    assert.equal(run.failed, 1);
  });

  it('applies repository and user overlays from the case file, restrict-only', () => {
    const run = runPolicyTests(
      { text: POLICY, source: 'p.yaml' },
      `repository:
  pathRules: [{ glob: "db/**", effect: block, reason: DBA only. }, { glob: "infra/**", effect: allow, reason: mine }]
user:
  blastRadius: { maxFiles: 1 }
cases:
  - { name: db, action: gate.draftToSandbox, facts: { files: [db/m.sql] }, expect: { effect: block, reason: DBA only } }
  - { name: infra stays blocked, action: gate.draftToSandbox, facts: { files: [infra/a.tf] }, expect: { effect: block } }
  - { name: user limit, action: gate.draftToSandbox, facts: { files: [a, b] }, expect: { effect: block, reason: limit is 1 } }
`,
      'c.yaml',
    );
    assert.ok(run.ok, run.ok ? '' : run.errors.join('\n'));
    assert.deepEqual(
      run.results.map((result) => [result.name, result.passed, result.problems]),
      [
        ['db', true, []],
        ['infra stays blocked', true, []],
        ['user limit', true, []],
      ],
    );
  });

  it('uses the file\'s "now" for expiry', () => {
    const expiring = POLICY.replace('version: "1" }', 'version: "1", expiresAt: "2027-01-01T00:00:00Z" }');
    const cases = (now: string) =>
      `now: "${now}"\ncases:\n  - { name: c, action: push, facts: { approvals: [{ by: a }] }, expect: { effect: allow } }\n`;
    const before = runPolicyTests({ text: expiring, source: 'p.yaml' }, cases('2026-12-31T00:00:00Z'), 'c.yaml');
    const after = runPolicyTests({ text: expiring, source: 'p.yaml' }, cases('2027-01-02T00:00:00Z'), 'c.yaml');
    assert.ok(before.ok && after.ok);
    assert.equal(before.results[0]!.passed, true);
    assert.equal(after.results[0]!.decision.effect, 'block');
  });

  it('reports a bad case file with positions, and an invalid reason regex', () => {
    const run = runPolicyTests(
      { text: POLICY, source: 'p.yaml' },
      'cases:\n  - name: x\n    action: gate.teleport\n    expect: { effect: maybe, reason: "/(/" }\n',
      'c.yaml',
    );
    assert.ok(!run.ok);
    const text = run.errors.join('\n');
    assert.match(text, /c\.yaml:3:13: cases\[0\]\.action: expected one of "gate\.draftToSandbox"/);
    assert.match(text, /cases\[0\]\.expect\.effect: expected one of "allow", "requireApproval", "block", got "maybe"/);
    assert.match(text, /cases\[0\]\.expect\.reason: Invalid regular expression/);
  });

  it('refuses to run cases against an invalid policy', () => {
    const run = runPolicyTests(
      { text: POLICY.replace('infra/**', 'infra/[x'), source: 'p.yaml' },
      'cases: [{ name: x, action: createDraft, expect: { effect: allow } }]',
      'c.yaml',
    );
    assert.ok(!run.ok);
    assert.match(run.errors[0]!, /p\.yaml:4:13: pathRules\[0\]\.glob: invalid glob "infra\/\[x"/);
  });

  describe('agent-lanes policy (CLI)', () => {
    it('test: the sample policy passes its sample cases (exit 0)', async () => {
      const { out, logs, errors } = capture();
      const code = await runPolicyCli(['policy', 'test', SAMPLE_POLICY, SAMPLE_CASES], out);
      assert.equal(code, 0, [...logs, ...errors].join('\n'));
      assert.match(logs[0]!, /^Testing acme-platform@2026\.11\.1 /);
      assert.equal(logs.at(-1), '10 passed, 0 failed');
      assert.ok(logs.includes('  ✓ a change to infra/ is blocked'));
    });

    it('test: a failing case exits 1 and shows the decision', async () => {
      const cases = write(
        'cases.yaml',
        'cases:\n  - { name: wrong, action: gate.draftToSandbox, facts: { files: [infra/a.tf] }, expect: { effect: allow } }\n',
      );
      const { out, logs } = capture();
      assert.equal(await runPolicyCli(['test', write('p.yaml', POLICY), cases], out), 1);
      assert.ok(logs.includes('  ✗ wrong'));
      assert.ok(logs.includes('      expected effect allow, got block'));
      assert.ok(logs.some((line) => /decision: block: Blocked: Draft → Sandbox: infra\/a\.tf matches "infra\/\*\*"/.test(line)));
      assert.equal(logs.at(-1), '0 passed, 1 failed');
    });

    it('test: usage errors, unreadable and invalid files exit 2', async () => {
      const policy = write('p.yaml', POLICY);
      let result = capture();
      assert.equal(await runPolicyCli(['policy', 'test', policy], result.out), 2);
      assert.match(result.errors[0]!, /needs exactly two files/);
      result = capture();
      assert.equal(await runPolicyCli(['policy', 'test', policy, join(dir, 'missing.yaml')], result.out), 2);
      assert.match(result.errors[0]!, /Cannot read the cases file .*missing\.yaml: no such file/);
      result = capture();
      assert.equal(await runPolicyCli(['policy', 'test', policy, write('bad.yaml', 'cases: [')], result.out), 2);
      assert.match(result.errors[0]!, /bad\.yaml:\d+:\d+: YAML syntax error/);
      assert.equal(result.errors.at(-1), 'No case was run: fix the file above first.');
      result = capture();
      assert.equal(await runPolicyCli(['policy', 'frobnicate'], result.out), 2);
      assert.match(result.errors[0]!, /Unknown policy command "frobnicate"/);
      result = capture();
      assert.equal(await runPolicyCli([], result.out), 2);
      assert.match(result.errors[0]!, /^Usage:/);
      result = capture();
      assert.equal(await runPolicyCli(['policy', '--help'], result.out), 0);
      assert.match(result.logs[0]!, /agent-lanes policy test POLICY CASES/);
    });

    it('validate: 0 for a valid policy, 1 with every problem for an invalid one, 2 for a missing file', async () => {
      let result = capture();
      assert.equal(await runPolicyCli(['policy', 'validate', SAMPLE_POLICY], result.out), 0);
      assert.match(result.logs[0]!, /sample-org-policy\.yaml: valid, acme-platform@2026\.11\.1, expires 2030-12-31T00:00:00Z/);
      assert.match(result.logs[1]!, /8 path rules, 0 required tasks, kill switch off/);
      result = capture();
      const bad = write('bad.yaml', `${POLICY}blastRadius: { maxFiles: many }\nlanes: { sandbox: { limits: { cpus: two } } }\n`);
      assert.equal(await runPolicyCli(['policy', 'validate', bad], result.out), 1);
      assert.match(result.errors[0]!, /bad\.yaml:5:26: blastRadius\.maxFiles: expected a number, got "many"/);
      assert.match(result.errors[1]!, /lanes\.sandbox\.limits\.cpus: expected a number, got "two"/);
      assert.match(result.errors[2]!, /is not a valid policy \(2 problems\)/);
      result = capture();
      assert.equal(await runPolicyCli(['policy', 'validate', join(dir, 'nope.yaml')], result.out), 2);
    });
  });
});

describe('agent-lanes policy schema: the JSON Schema editors check a policy against', () => {
  const schemaOf = async (): Promise<Record<string, unknown>> => {
    const lines: string[] = [];
    const code = await runPolicyCli(['schema'], { log: (s) => lines.push(s), error: (s) => lines.push(s) });
    assert.equal(code, 0);
    return JSON.parse(lines.join('\n')) as Record<string, unknown>;
  };

  it('accepts the sample org policy and refuses what the extension refuses (an unknown field, a wrong type, another apiVersion)', async () => {
    const validate = new Ajv2020({ strict: false, allErrors: true, logger: false }).compile(await schemaOf());
    const sample = parseYaml(
      readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'policy', 'sample-org-policy.yaml'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(validate(sample), true, JSON.stringify(validate.errors));
    const bad = [
      { ...sample, blastRadius: { maxLines: 10 } },
      { ...sample, metadata: { id: 'x y', version: '1' } },
      { ...sample, apiVersion: 'agentlanes.dev/v2' },
      { ...sample, unknownField: true },
    ];
    for (const document of bad) {
      assert.equal(validate(document), false, JSON.stringify(document).slice(0, 200));
      // The extension's own parser agrees.
      assert.equal(parsePolicyObject(document, 'candidate.yaml').ok, false);
    }
  });

  it('takes no arguments', async () => {
    const errors: string[] = [];
    assert.equal(await runPolicyCli(['schema', 'extra'], { log: () => undefined, error: (s) => errors.push(s) }), 2);
    assert.match(errors.join('\n'), /takes no arguments/);
  });
});
