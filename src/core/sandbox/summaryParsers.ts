import type { TestCounts } from '../evidence';

/**
 * Pass/fail/skip counts from the summary a test runner prints at the end of
 * its output. Each parser knows one runner; counts from several runs of the
 * same runner in one log (a monorepo's `npm test`) are added up. When
 * several runners' summaries appear, their counts are added and the format
 * names joined with `+`.
 */

type Counts = Omit<TestCounts, 'format'>;

interface SummaryParser {
  format: string;
  parse(lines: readonly string[]): Counts | undefined;
}

// Colours and cursor moves that reporters print when they think stdout is a terminal.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007/g;

function add(into: Counts | undefined, passed: number, failed: number, skipped: number): Counts {
  return { passed: (into?.passed ?? 0) + passed, failed: (into?.failed ?? 0) + failed, skipped: (into?.skipped ?? 0) + skipped };
}

/** mocha's spec/dot/list reporters: `12 passing (45ms)`, `2 pending`, `1 failing`. */
const mocha: SummaryParser = {
  format: 'mocha',
  parse(lines) {
    let counts: Counts | undefined;
    for (let i = 0; i < lines.length; i++) {
      const passing = /^\s*(\d+) passing \(\d+(?:\.\d+)?\s*(?:ms|s|m|h)\)\s*$/.exec(lines[i]!);
      if (!passing) continue;
      let pending = 0;
      let failing = 0;
      // The pending and failing lines follow the passing line directly.
      for (let j = i + 1; j < Math.min(lines.length, i + 3); j++) {
        const more = /^\s*(\d+) (pending|failing)\s*$/.exec(lines[j]!);
        if (!more) break;
        if (more[2] === 'pending') pending = Number(more[1]);
        else failing = Number(more[1]);
      }
      counts = add(counts, Number(passing[1]), failing, pending);
    }
    return counts;
  },
};

/**
 * node's test runner, spec reporter (`ℹ pass 4`) and TAP reporter
 * (`# pass 4`); mocha's and other TAP producers print the same `# pass`
 * lines. Cancelled tests count as failed, todo tests as skipped.
 */
function nodeTestRunner(prefix: RegExp, format: string): SummaryParser {
  const counter = new RegExp(`^${prefix.source}(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\\d+(?:\\.\\d+)?)\\s*$`);
  return {
    format,
    parse(lines) {
      let counts: Counts | undefined;
      let current: Record<string, number> | undefined;
      const flush = () => {
        if (current && 'pass' in current && 'fail' in current) {
          counts = add(counts, current.pass!, current.fail! + (current.cancelled ?? 0), (current.skipped ?? 0) + (current.todo ?? 0));
        }
        current = undefined;
      };
      for (const line of lines) {
        const match = counter.exec(line);
        if (!match) continue;
        // `tests` opens a summary block; a second one is a second run.
        if (match[1] === 'tests') flush();
        current ??= {};
        current[match[1]!] = Number(match[2]);
      }
      flush();
      return counts;
    },
  };
}

/** jest: `Tests:       1 failed, 1 skipped, 2 todo, 5 passed, 9 total`. */
const jest: SummaryParser = {
  format: 'jest',
  parse(lines) {
    let counts: Counts | undefined;
    for (const line of lines) {
      const match = /^\s*Tests:\s+(.*\b\d+ total)\s*$/.exec(line);
      if (!match) continue;
      const part = (name: string) => Number(new RegExp(`(\\d+) ${name}\\b`).exec(match[1]!)?.[1] ?? 0);
      counts = add(counts, part('passed'), part('failed'), part('skipped') + part('todo'));
    }
    return counts;
  },
};

/** vitest: `      Tests  1 failed | 5 passed | 2 skipped (8)`. */
const vitest: SummaryParser = {
  format: 'vitest',
  parse(lines) {
    let counts: Counts | undefined;
    for (const line of lines) {
      const match = /^\s*Tests\s+((?:\d+ (?:passed|failed|skipped|todo)\s*\|?\s*)+)\(\d+\)\s*$/.exec(line);
      if (!match) continue;
      const part = (name: string) => Number(new RegExp(`(\\d+) ${name}\\b`).exec(match[1]!)?.[1] ?? 0);
      counts = add(counts, part('passed'), part('failed'), part('skipped') + part('todo'));
    }
    return counts;
  },
};

/**
 * pytest's last line: `==== 1 failed, 2 passed, 1 skipped, 1 xfailed in 0.50s ====`
 * (or without the rules under `-q`). Errors count as failed, xfailed as
 * skipped, xpassed as passed.
 */
const pytest: SummaryParser = {
  format: 'pytest',
  parse(lines) {
    let counts: Counts | undefined;
    for (const line of lines) {
      const match =
        /^=*\s*((?:\d+ (?:passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?|rerun)(?:, )?)+) in \d+(?:\.\d+)?s(?: \([^)]*\))?\s*=*\s*$/.exec(
          line,
        );
      if (!match) continue;
      const part = (name: string) => Number(new RegExp(`(\\d+) ${name}\\b`).exec(match[1]!)?.[1] ?? 0);
      counts = add(counts, part('passed') + part('xpassed'), part('failed') + part('errors?'), part('skipped') + part('xfailed'));
    }
    return counts;
  },
};

/**
 * go test -v: one `--- PASS/FAIL/SKIP: Name (0.00s)` line per test and
 * subtest. Without -v (no `=== RUN` lines) go prints `--- FAIL` lines only,
 * so the per-package lines count instead.
 */
const goTests: SummaryParser = {
  format: 'go',
  parse(lines) {
    if (!lines.some((line) => line.startsWith('=== RUN'))) return undefined;
    let counts: Counts | undefined;
    for (const line of lines) {
      const match = /^\s*--- (PASS|FAIL|SKIP): \S+ \(\d+(?:\.\d+)?s\)\s*$/.exec(line);
      if (!match) continue;
      counts = add(counts, match[1] === 'PASS' ? 1 : 0, match[1] === 'FAIL' ? 1 : 0, match[1] === 'SKIP' ? 1 : 0);
    }
    return counts;
  },
};

/**
 * go test without -v prints one line per package: `ok  	pkg	0.01s`,
 * `FAIL	pkg	0.02s`; packages with `[no test files]` are not counted.
 */
const goPackages: SummaryParser = {
  format: 'go-packages',
  parse(lines) {
    let counts: Counts | undefined;
    for (const line of lines) {
      const match = /^(ok|FAIL)\s+\S+\s+(?:\(cached\)|\d+(?:\.\d+)?s|\[build failed\]|\[setup failed\])/.exec(line);
      if (!match) continue;
      counts = add(counts, match[1] === 'ok' ? 1 : 0, match[1] === 'FAIL' ? 1 : 0, 0);
    }
    return counts;
  },
};

const PARSERS: readonly SummaryParser[] = [mocha, nodeTestRunner(/ℹ /, 'node'), nodeTestRunner(/# /, 'tap'), jest, vitest, pytest, goTests];

/** Test counts from a task's output, or undefined when no known summary is in it. */
export function parseTestSummary(output: string): TestCounts | undefined {
  const lines = output.replace(ANSI, '').split(/\r?\n/);
  let total: Counts | undefined;
  const formats: string[] = [];
  for (const parser of PARSERS) {
    const counts = parser.parse(lines);
    if (!counts) continue;
    total = add(total, counts.passed, counts.failed, counts.skipped);
    formats.push(parser.format);
  }
  if (!formats.includes('go')) {
    const packages = goPackages.parse(lines);
    if (packages) {
      total = add(total, packages.passed, packages.failed, packages.skipped);
      formats.push(goPackages.format);
    }
  }
  if (!total) return undefined;
  // node's TAP reporter is TAP with node's extra counters.
  const format = formats.map((name) =>
    name === 'tap' && lines.some((line) => /^# (?:cancelled|todo) \d+\s*$/.test(line)) ? 'node' : name,
  );
  return { ...total, format: [...new Set(format)].join('+') };
}
