import assert from 'node:assert/strict';
import picomatch from 'picomatch';
import { EFFECTS } from '../../src/core/decision';
import { compilePolicy, evaluate, type ChangeFacts } from '../../src/core/policy/evaluate';
import { GlobIndex, globProblem } from '../../src/core/policy/globs';
import { mergePolicies } from '../../src/core/policy/merge';
import { POLICY_API_VERSION, parsePolicyObject } from '../../src/core/policy/schema';

// The glob index must find exactly what testing every rule against every path finds.
// The naive side here is picomatch itself, one matcher per glob, with the options the policy documents.
const OPTIONS = { dot: true, strictBrackets: true, windows: false } as const;

const matchers = new Map<string, picomatch.Matcher>();

function naiveMatches(globs: readonly string[], path: string, caseInsensitive: boolean): number[] {
  const found: number[] = [];
  globs.forEach((glob, index) => {
    const key = `${caseInsensitive}:${glob}`;
    let matcher = matchers.get(key);
    if (!matcher) matchers.set(key, (matcher = picomatch(glob, caseInsensitive ? { ...OPTIONS, nocase: true } : OPTIONS)));
    if (matcher(path) || (caseInsensitive && glob.toLowerCase() === path.toLowerCase())) found.push(index);
  });
  return found;
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const SEGMENTS = [
  'infra',
  'infra-old',
  'Infra',
  'src',
  'SRC',
  '.github',
  'docs',
  'site',
  'a',
  'b',
  'node_modules',
  'ünï',
  '日本',
  'x y',
  'a+b',
  '$v',
  'é',
];
const NAMES = [
  'package.json',
  'main.tf',
  'x.ts',
  'X.TS',
  '.env',
  '.env.local',
  'a.test.ts',
  'README',
  'ab',
  'abd',
  'q.sql',
  'ä.md',
  'file-1.json',
];
const EXTENSIONS = ['ts', 'tf', 'json', 'md', 'TS', 'lock', 'sql', 'test.ts'];

const HAND_PICKED_GLOBS = [
  'infra/**',
  'infra',
  'infra/*',
  'infra-old/**',
  'infra/main.tf',
  '**/*.tf',
  '**/package.json',
  '**/.env*',
  '.github/workflows/*.yml',
  '{docs,site}/**',
  '{docs,site}/**/*.md',
  'src/{a,b}/**',
  '{a,b}{c,d}',
  'a{b,c}d',
  'a{,b}',
  'a{,}b',
  '{a/b,c}/x',
  'src/[ab]*.ts',
  'src/[!a]*.ts',
  'src/?.ts',
  'a/@(x|y).ts',
  '*foo*/**',
  '*',
  '**',
  '**/secrets/**',
  'x\\*y',
  'ünï/**',
  '日本/*.md',
  'x y/**',
  'a+b/**',
  '**/*.TS',
  'SRC/**',
  'docs/',
  'src/**/*.test.ts',
  'lib/*/part-1/**/*.js',
];

const HAND_PICKED_PATHS = [
  'infra/main.tf',
  'infra',
  'infra-old/x',
  'infra-old/main.tf',
  'infra2/x',
  'INFRA/x',
  'Infra/main.tf',
  'package.json',
  'a/b/package.json',
  'package.json.bak',
  'app/.env.local',
  '.github/workflows/ci.yml',
  'docs/a/b.md',
  'site/x.md',
  'docsite/x.md',
  'src/a/q.js',
  'ac',
  'bd',
  'a{b,c}d',
  'abd',
  'a',
  'ab',
  'a{,}b',
  'a/b/x',
  'c/x',
  'src/aa.ts',
  'src/ca.ts',
  'src/x.ts',
  'a/x.ts',
  'xfooy/z',
  'foo/z',
  'README',
  'secrets',
  'q/secrets/r',
  'x*y',
  'xzy',
  'ünï/ä.md',
  '日本/a.md',
  '日本/a/b.md',
  'x y/z',
  'a+b/z',
  'aab/z',
  'src/X.TS',
  'SRC/x.ts',
  'docs/',
  'docs',
  'src/deep/a.test.ts',
  'lib/core/part-1/x/y.js',
  'lib/core/part-10/x/y.js',
  '.hidden/x.tf',
];

function generatedGlobs(next: () => number, count: number): string[] {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const globs: string[] = [];
  while (globs.length < count) {
    const [s, t, u, ext, name] = [pick(SEGMENTS), pick(SEGMENTS), pick(SEGMENTS), pick(EXTENSIONS), pick(NAMES)];
    const templates = [
      `${s}/**`,
      `${s}/${t}/**`,
      `**/*.${ext}`,
      `**/${name}`,
      `${s}/*.${ext}`,
      `${s}/${name}`,
      `{${s},${t}}/**`,
      `${s}/{${t},${u}}/*.${ext}`,
      `**/{${name},${t}}`,
      `**/${s}/**`,
      `${s}/**/${name}`,
      `${s}/?${name.slice(1)}`,
      `${s}/[abx]*`,
      `*${s.slice(1)}*/**`,
      `${s}*/**`,
      `${s}/**/*.${ext}`,
      `${s}/@(${t}|${u})/**`,
    ];
    const glob = pick(templates);
    if (globProblem(glob) === undefined) globs.push(glob);
  }
  return globs;
}

function generatedPaths(next: () => number, count: number): string[] {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const paths: string[] = [];
  while (paths.length < count) {
    const depth = 1 + Math.floor(next() * 3);
    const segments = Array.from({ length: depth }, () => pick(SEGMENTS));
    paths.push([...segments, pick(NAMES)].join('/'));
  }
  return paths;
}

describe('policy path index', () => {
  it('finds exactly the globs naive matching finds, hand-picked and generated, in both case modes', () => {
    const next = random(16);
    const globs = [...HAND_PICKED_GLOBS, ...generatedGlobs(next, 400)];
    for (const glob of HAND_PICKED_GLOBS) assert.equal(globProblem(glob), undefined, glob);
    // Paths include each glob's own text: picomatch matches a path equal to its glob.
    const paths = [...HAND_PICKED_PATHS, ...generatedPaths(next, 600), ...globs.slice(0, 80)];
    let matchedPairs = 0;
    for (const caseInsensitive of [false, true]) {
      const index = new GlobIndex<number>({ caseInsensitive });
      globs.forEach((glob, i) => index.add(glob, i));
      for (const path of paths) {
        const expected = naiveMatches(globs, path, caseInsensitive);
        matchedPairs += expected.length;
        assert.deepEqual(index.match(path), expected, `${caseInsensitive ? 'ignoring case' : 'exact case'}: ${path}`);
      }
    }
    // The comparison means something only if many pairs matched.
    assert.ok(matchedPairs > 2000, `only ${matchedPairs} matches`);
  });

  it('still matches what it cannot index, and does not take a look-alike prefix for the folder', () => {
    const index = new GlobIndex<string>();
    for (const glob of ['*foo*/**', 'infra/**', '**/package.json', '**/*.tf', '{docs,site}/**', 'ünï/**', '[ab]/x']) index.add(glob, glob);
    assert.deepEqual(index.match('xfooy/z'), ['*foo*/**']);
    assert.deepEqual(index.match('infra-old/x'), []);
    assert.deepEqual(index.match('infra-old/main.tf'), ['**/*.tf']);
    assert.deepEqual(index.match('infra/package.json'), ['infra/**', '**/package.json']);
    assert.deepEqual(index.match('site/a'), ['{docs,site}/**']);
    assert.deepEqual(index.match('docsite/a'), []);
    assert.deepEqual(index.match('ünï/a.tf'), ['**/*.tf', 'ünï/**']);
    assert.deepEqual(index.match('uni/a'), []);
    assert.deepEqual(index.match('b/x'), ['[ab]/x']);
  });

  it('evaluate() decides as naive evaluation would: the same rules, order, paths and effect', () => {
    const next = random(4);
    const globs = [...HAND_PICKED_GLOBS, ...generatedGlobs(next, 300)];
    const effects = ['block', 'requireApproval', 'allow'] as const;
    const rules = globs.map((glob, i) => ({ glob, effect: effects[Math.floor(next() * 3)]!, reason: `rule ${i}` }));
    const parsed = parsePolicyObject({ apiVersion: POLICY_API_VERSION, metadata: { id: 'scale', version: '1' }, pathRules: rules }, 'org');
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
    const effective = mergePolicies({ level: 'org', document: parsed.policy });
    const paths = [...HAND_PICKED_PATHS, ...generatedPaths(next, 400)];
    for (const caseInsensitive of [false, true]) {
      for (let start = 0; start < paths.length; start += 37) {
        const files = paths.slice(start, start + 60).map((path) => ({ path, additions: 1, deletions: 0 }));
        const facts: ChangeFacts = { agentId: 'codex', files, flags: [], tasks: [], evidence: [], caseInsensitivePaths: caseInsensitive };
        const decision = evaluate(effective, facts, 'gate.draftToSandbox');
        // Naive: every rule against every path; within the level the last matching rule decides.
        const hits = new Map<number, string[]>();
        for (const { path } of files) {
          const last = naiveMatches(globs, path, caseInsensitive).at(-1);
          if (last === undefined || rules[last]!.effect === 'allow') continue;
          hits.set(last, [...(hits.get(last) ?? []), path]);
        }
        const rank = (index: number): number => EFFECTS.indexOf(rules[index]!.effect);
        const expected = [...hits.keys()]
          .sort((a, b) => rank(b) - rank(a) || a - b)
          .map((index) => ({
            rule: `pathRules[${index}] ${JSON.stringify(globs[index])}`,
            effect: rules[index]!.effect,
            paths: hits.get(index)!,
          }));
        const found = decision.matchedRules
          .filter((rule) => rule.rule.startsWith('pathRules['))
          .map(({ rule, effect, paths: matched }) => ({ rule, effect, paths: matched }));
        assert.deepEqual(found, expected, `files ${start}..${start + 60}, ${caseInsensitive ? 'ignoring case' : 'exact case'}`);
        const blocks = expected.filter((rule) => rule.effect === 'block');
        assert.equal(decision.effect, blocks.length ? 'block' : 'allow');
        if (blocks.length) assert.ok(decision.explanation.includes(`"${globs[Number(/\[(\d+)\]/.exec(blocks[0]!.rule)![1])]}"`));
      }
    }
  });

  it('compiles a policy once: the same object, or the same content merged again, reuses the index', () => {
    const parsed = parsePolicyObject(
      {
        apiVersion: POLICY_API_VERSION,
        metadata: { id: 'once', version: '1' },
        pathRules: [{ glob: 'infra/**', effect: 'block', reason: 'x' }],
      },
      'org',
    );
    assert.ok(parsed.ok);
    const first = mergePolicies({ level: 'org', document: parsed.policy });
    const again = mergePolicies({ level: 'org', document: parsed.policy });
    assert.notEqual(first, again);
    assert.equal(compilePolicy(first), compilePolicy(first));
    assert.equal(compilePolicy(again), compilePolicy(first));
    assert.notEqual(compilePolicy(first, true), compilePolicy(first));
    const changed = parsePolicyObject(
      {
        apiVersion: POLICY_API_VERSION,
        metadata: { id: 'once', version: '1' },
        pathRules: [{ glob: 'infra/**', effect: 'allow', reason: 'x' }],
      },
      'org',
    );
    assert.ok(changed.ok);
    assert.notEqual(compilePolicy(mergePolicies({ level: 'org', document: changed.policy })), compilePolicy(first));
  });
});
