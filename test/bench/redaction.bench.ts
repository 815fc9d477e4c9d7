// Redaction benchmarks (issue 13):
//   redaction.recallFormats      share of the token formats in test/fixtures/redaction/formats.json (one fake sample
//                                each, bare on a line) that redactText cuts whole: no generated part of it survives
//   redaction.precisionLines     share of lines of real source code (files from node_modules: the TypeScript compiler,
//                                declaration files, package manifests, popular libraries) that redactText leaves
//                                untouched, lines that truly hold a secret (precision-exclusions.json) left out
//   redaction.sourceLines        how many lines precisionLines was measured on
//   redaction.linesPerMs         redactText throughput over those lines, one call per line
//   redaction.policyPathologicalMs  a policy pattern "(a|aa)+$" against 100,000 characters (linear-time engine)
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { compileSecretPatterns, redactText } from '../../src/core/redaction';

const root = resolve(__dirname, '..', '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'redaction');

// --- recall ------------------------------------------------------------------------------------------------------
const CHARSETS: Record<string, string> = {
  A: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  a: 'abcdefghijklmnopqrstuvwxyz0123456789',
  U: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  h: '0123456789abcdef',
  H: '0123456789ABCDEF',
  d: '0123456789',
  b: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-',
  B: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
  l: 'abcdefghijklmnopqrstuvwxyz',
  L: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
  c: 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'.toUpperCase(),
};

/** A fake token from a template: `{A:36}` becomes 36 seeded random characters; returns the text and its random parts. */
function expand(template: string, seed: number): { text: string; parts: string[] } {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const parts: string[] = [];
  const text = template.replace(/\{([A-Za-z]):(\d+)\}/g, (_, set: string, length: string) => {
    const chars = CHARSETS[set]!;
    let part = '';
    for (let i = 0; i < Number(length); i++) part += chars[Math.floor(next() * chars.length)];
    parts.push(part);
    return part;
  });
  return { text, parts };
}

const { formats } = JSON.parse(readFileSync(join(fixtures, 'formats.json'), 'utf8')) as { formats: [string, string][] };
const missed: string[] = [];
formats.forEach(([name, template], index) => {
  const { text, parts } = expand(template, 0x9e3779b9 ^ (index * 2654435761));
  const redacted = redactText(text).text;
  const survived = parts.filter((part) => part.length >= 6 && redacted.includes(part));
  if (survived.length > 0 || redacted === text) missed.push(`${name}: ${redacted.slice(0, 120)}`);
});

// --- precision ---------------------------------------------------------------------------------------------------
const modules = join(root, 'node_modules');
const SOURCES = [
  'typescript/lib/typescript.js',
  'typescript/lib/lib.dom.d.ts',
  'typescript/lib/lib.es5.d.ts',
  '@types/node/crypto.d.ts',
  '@types/node/http.d.ts',
  '@types/node/tls.d.ts',
  'yaml/dist',
  'zod/v4/core',
  'commander/lib',
  'execa/lib',
  '@octokit/core/dist-src',
  '@octokit/auth-token/dist-src',
  '@octokit/request/dist-src',
  'ajv/lib',
  'chokidar',
  'debug/src',
  'semver',
  'picomatch/lib',
];
const MAX_LINES_PER_FILE = 60_000;

function sourceFiles(path: string): string[] {
  const full = join(modules, path);
  let info;
  try {
    info = statSync(full);
  } catch {
    return [];
  }
  if (info.isFile()) return [full];
  const files: string[] = [];
  for (const entry of readdirSync(full, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(child));
    else if (/\.(?:[cm]?js|ts|json)$/.test(entry.name) && !entry.name.endsWith('.map')) files.push(join(modules, child));
  }
  return files;
}

const files = [...new Set(SOURCES.flatMap(sourceFiles))];
// Every installed package's manifest: dependency names such as "jsonwebtoken" and "@octokit/auth-token".
for (const entry of readdirSync(modules)) {
  const scoped = entry.startsWith('@') ? readdirSync(join(modules, entry)).map((name) => `${entry}/${name}`) : [entry];
  for (const name of scoped) {
    const manifest = join(modules, name, 'package.json');
    try {
      if (statSync(manifest).isFile()) files.push(manifest);
    } catch {
      // not a package
    }
  }
}

const exclusions = new Set(
  (JSON.parse(readFileSync(join(fixtures, 'precision-exclusions.json'), 'utf8')) as { lines: string[] }).lines.map((line) => line.trim()),
);
let lines = 0;
let touched = 0;
let excluded = 0;
const falsePositives: string[] = [];
let elapsed = 0;
for (const file of files) {
  const fileLines = readFileSync(file, 'utf8').split('\n').slice(0, MAX_LINES_PER_FILE);
  for (const line of fileLines) {
    if (!line.trim() || line.length > 2000) continue;
    if (exclusions.has(line.trim())) {
      excluded++;
      continue;
    }
    lines++;
    const start = performance.now();
    const result = redactText(line);
    elapsed += performance.now() - start;
    if (result.text !== line) {
      touched++;
      if (falsePositives.length < 60)
        falsePositives.push(`${relative(modules, file)}: ${line.trim().slice(0, 160)}\n      → ${result.text.trim().slice(0, 160)}`);
    }
  }
}

// --- a pathological policy pattern -------------------------------------------------------------------------------
const policy = compileSecretPatterns([{ name: 'pathological', pattern: '(a|aa)+$' }]);
const haystack = `${'a'.repeat(99_999)}!`;
const policyStart = performance.now();
redactText(haystack, policy.patterns);
const policyMs = performance.now() - policyStart;

const round = (value: number, digits = 4) => Math.round(value * 10 ** digits) / 10 ** digits;
console.error(`recall: ${formats.length - missed.length}/${formats.length} formats; missed:\n  ${missed.join('\n  ') || '(none)'}`);
console.error(
  `precision: ${lines - touched}/${lines} lines of ${files.length} files untouched (${excluded} excluded as real secrets); changed:\n  ${falsePositives.join('\n  ') || '(none)'}`,
);
const results = {
  'redaction.recallFormats': round((formats.length - missed.length) / formats.length),
  'redaction.precisionLines': round((lines - touched) / lines, 5),
  'redaction.sourceLines': lines,
  'redaction.linesPerMs': round(lines / elapsed, 1),
  'redaction.policyPathologicalMs': round(policyMs, 1),
};
console.log(`BENCH_RESULT ${JSON.stringify(results)}`);
