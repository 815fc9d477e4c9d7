// Policy benchmarks:
//   policy.eval1000x2000Ms      evaluate() of a policy with 1,000 path rules against a change of 2,000 files,
//                               matchers compiled once per policy (median of warm runs)
//   policy.eval1000x2000ColdMs  the first evaluation of that policy, compiling its matchers included
//   policy.parse1000Ms          parsePolicy() of that policy's YAML, every glob validated (median)
//   policy.decisionP95Ms        one Review → Pull request decision for a typical change (12 files, the
//                               built-in policy with a repository overlay), 95th percentile
//   policy.eval10kx20kMs        evaluate() of 10,000 path rules (same mix) against 20,000 files, warm (median)
//   policy.eval10kx20kColdMs    the first evaluation of that policy, compiling its index included (median)
//   policy.naiveRatio           the same 1,000 × 2,000 evaluation with one picomatch matcher per rule
//                               tried against every file ÷ evaluate() (how much the glob index saves)
import { performance } from 'node:perf_hooks';
import picomatch from 'picomatch';
import YAML from 'yaml';
import { builtinPolicyDocument } from '../../src/core/policy/defaults';
import { compilePolicy, evaluate, type ChangeFacts } from '../../src/core/policy/evaluate';
import { mergePolicies } from '../../src/core/policy/merge';
import { parseOverlayObject, parsePolicy, POLICY_API_VERSION } from '../../src/core/policy/schema';

const RULES = 1_000;
const FILES = 2_000;

function ruleGlobs(count = RULES): string[] {
  const globs: string[] = [];
  for (let i = 0; globs.length < count; i++) {
    switch (i % 7) {
      case 0:
        globs.push(`services/svc-${i}/**`);
        break;
      case 1:
        globs.push(`**/*.ext${i}`);
        break;
      case 2:
        globs.push(`config/file-${i}.json`);
        break;
      case 3:
        globs.push(`packages/pkg-${i}/src/**/*.sql`);
        break;
      case 4:
        globs.push(`**/generated-${i}/**`);
        break;
      case 5:
        globs.push(`src/module-${i}/*.ts`);
        break;
      default:
        globs.push(i % 2 ? `{docs,site}/section-${i}/**` : `lib/*/part-${i}/**/*.js`);
    }
  }
  return globs;
}

function changedFiles(count = FILES, spread = 1400): ChangeFacts['files'] {
  const files: { path: string; additions: number; deletions: number }[] = [];
  for (let i = 0; i < count; i++) {
    const k = (i * 7) % spread;
    const paths = [
      `services/svc-${k}/src/handler-${i}.ts`,
      `packages/pkg-${k + 3}/src/queries/q-${i}.sql`,
      `src/module-${k + 5}/file-${i}.ts`,
      `docs/section-${k + 6}/page-${i}.md`,
      `lib/core/generated-${k + 4}/out-${i}.js`,
      `assets/img-${i}.ext${k + 1}`,
      `config/file-${k + 2}.json`,
      `app/feature-${i % 50}/component-${i}.tsx`,
    ];
    files.push({ path: paths[i % paths.length]!, additions: 5, deletions: 1 });
  }
  return files;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (value: number): number => Math.round(value * 1000) / 1000;

const globs = ruleGlobs();
const effects = ['block', 'requireApproval', 'allow'] as const;
const yaml = YAML.stringify({
  apiVersion: POLICY_API_VERSION,
  metadata: { id: 'bench', version: '1' },
  pathRules: globs.map((glob, i) => ({ glob, effect: effects[i % 3], reason: `rule ${i}` })),
});

const parseTimes: number[] = [];
let parsed = parsePolicy(yaml, 'bench.yaml');
for (let i = 0; i < 5; i++) {
  const start = performance.now();
  parsed = parsePolicy(yaml, 'bench.yaml');
  parseTimes.push(performance.now() - start);
}
if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
const document = parsed.policy;
const facts: ChangeFacts = { agentId: 'codex', files: changedFiles(), flags: [], tasks: [], evidence: [], approvals: [{ by: 'alice' }] };

// Cold: a fresh effective policy of new content (its version), so compilation happens inside the timed call.
const freshVersion = <T extends { metadata: object }>(policy: T, i: number): T => ({
  ...policy,
  metadata: { ...policy.metadata, version: `cold-${i}` },
});
const coldTimes: number[] = [];
for (let i = 0; i < 5; i++) {
  const fresh = mergePolicies({ level: 'org', document: freshVersion(document, i) });
  const start = performance.now();
  evaluate(fresh, facts, 'gate.draftToSandbox');
  coldTimes.push(performance.now() - start);
}

const effective = mergePolicies({ level: 'org', document });
compilePolicy(effective);
const first = evaluate(effective, facts, 'gate.draftToSandbox');
const warmTimes: number[] = [];
for (let i = 0; i < 30; i++) {
  const start = performance.now();
  evaluate(effective, facts, 'gate.draftToSandbox');
  warmTimes.push(performance.now() - start);
}

// Baseline: every rule's picomatch matcher against every file, last match wins.
const matchers = globs.map((glob) => picomatch(glob, { dot: true, strictBrackets: true, windows: false }));
const naiveTimes: number[] = [];
const naiveRules = new Set<number>();
for (let i = 0; i < 3; i++) {
  const start = performance.now();
  naiveRules.clear();
  for (const file of facts.files!) {
    for (let r = matchers.length - 1; r >= 0; r--) {
      if (matchers[r]!(file.path)) {
        if (effects[r % 3] !== 'allow') naiveRules.add(r);
        break;
      }
    }
  }
  naiveTimes.push(performance.now() - start);
}

// At scale: 10,000 rules of the same mix against 20,000 files (the policy built directly, not parsed).
const bigDocument = {
  ...document,
  pathRules: ruleGlobs(10_000).map((glob, i) => ({ glob, effect: effects[i % 3], reason: `rule ${i}` })),
};
const bigFacts: ChangeFacts = { ...facts, files: changedFiles(20_000, 14_000) };
const bigColdTimes: number[] = [];
for (let i = 0; i < 3; i++) {
  const fresh = mergePolicies({ level: 'org', document: freshVersion(bigDocument, i) });
  const start = performance.now();
  evaluate(fresh, bigFacts, 'gate.draftToSandbox');
  bigColdTimes.push(performance.now() - start);
}
const big = mergePolicies({ level: 'org', document: bigDocument });
const bigFirst = evaluate(big, bigFacts, 'gate.draftToSandbox');
const bigWarmTimes: number[] = [];
for (let i = 0; i < 7; i++) {
  const start = performance.now();
  evaluate(big, bigFacts, 'gate.draftToSandbox');
  bigWarmTimes.push(performance.now() - start);
}

// A typical change: the built-in policy plus a small repository overlay, 12 files, a few flags.
const overlay = parseOverlayObject(
  {
    pathRules: [
      { glob: 'db/migrations/**', effect: 'requireApproval', reason: 'DBA review' },
      { glob: 'vendor/**', effect: 'block', reason: 'vendored' },
    ],
    lanes: { sandbox: { requiredTasks: [{ id: 'unit', command: 'npm test' }] }, evidence: { required: ['tests'] } },
  },
  'repository',
  { id: 'repository', version: 'abc' },
);
if (!overlay.ok) throw new Error(overlay.errors.join('\n'));
const typical = mergePolicies({ level: 'builtin', document: builtinPolicyDocument() }, [{ level: 'repository', document: overlay.policy }]);
const typicalFacts: ChangeFacts = {
  changeId: 'c0ffee01',
  agentId: 'codex',
  files: Array.from({ length: 12 }, (_, i) => ({ path: i === 0 ? 'AGENTS.md' : `src/feature/part-${i}.ts`, additions: 20, deletions: 4 })),
  flags: [{ kind: 'newDependency', path: 'package.json', detail: 'left-pad' }],
  tasks: [{ id: 'unit', outcome: 'passed' }],
  evidence: ['filesTouched', 'agent', 'prompt', 'baseAndHead', 'tests'],
  approvals: [{ by: 'alice' }],
  baseBranch: 'main',
  author: 'bob',
};
evaluate(typical, typicalFacts, 'gate.reviewToPullRequest');
const decisionTimes: number[] = [];
for (let i = 0; i < 5_000; i++) {
  const start = performance.now();
  evaluate(typical, typicalFacts, 'gate.reviewToPullRequest');
  decisionTimes.push(performance.now() - start);
}

console.error(
  `rules ${RULES}, files ${FILES}: decision ${first.effect} with ${first.matchedRules.length} matched rules; ` +
    `the naive loop found ${naiveRules.size} deciding rules; 10,000 × 20,000: ${bigFirst.matchedRules.length} matched rules`,
);
const evalMs = median(warmTimes);
console.log(
  `BENCH_RESULT ${JSON.stringify({
    'policy.eval1000x2000Ms': round(evalMs),
    'policy.eval1000x2000ColdMs': round(median(coldTimes)),
    'policy.parse1000Ms': round(median(parseTimes)),
    'policy.decisionP95Ms': round(percentile(decisionTimes, 95)),
    'policy.eval10kx20kMs': round(median(bigWarmTimes)),
    'policy.eval10kx20kColdMs': round(median(bigColdTimes)),
    'policy.naiveRatio': round(median(naiveTimes) / evalMs),
  })}`,
);
