import assert from 'node:assert/strict';
import { parseTestSummary } from '../../src/core/sandbox/summaryParsers';

// Outputs as the runners print them (mocha 11 and node 20 captured here; the others from their documented formats).
const MOCHA = `

  math
    ✔ adds
    ✔ subtracts
    1) fails
    - skipped one
    - pending


  2 passing (5ms)
  2 pending
  1 failing

  1) math
       fails:

      AssertionError [ERR_ASSERTION]: 1 == 2
      + expected - actual

      -1
      +2
      
      at Context.<anonymous> (m.test.js:5:28)
`;

const MOCHA_ALL_PASS = `
  parser
    ✔ reads
    ✔ writes


  2 passing (1s)

`;

const NODE_SPEC = `▶ suite
  ✔ adds (1.817366ms)
  ✖ fails (1.665236ms)
    AssertionError [ERR_ASSERTION]: 1 == 2
        at TestContext.<anonymous> (/tmp/samples/n.test.js:5:28)

  ﹣ skipped (0.16482ms) # SKIP
  ✔ todo one (0.210357ms) # TODO
✖ suite (5.860298ms)
✔ top (0.125782ms)
ℹ tests 5
ℹ suites 1
ℹ pass 2
ℹ fail 1
ℹ cancelled 0
ℹ skipped 1
ℹ todo 1
ℹ duration_ms 138.011887

✖ failing tests:

test at n.test.js:5:3
✖ fails (1.665236ms)
`;

const NODE_TAP = `TAP version 13
# Subtest: suite
    # Subtest: adds
    ok 1 - adds
      ---
      duration_ms: 1.030592
      ...
    # Subtest: fails
    not ok 2 - fails
      ---
      duration_ms: 1.073157
      ...
    1..4
not ok 1 - suite
1..2
# tests 5
# suites 1
# pass 2
# fail 1
# cancelled 1
# skipped 1
# todo 1
# duration_ms 117.200277
`;

const JEST = `PASS src/sum.test.js
FAIL src/sub.test.js
  ● sub › subtracts

    expect(received).toBe(expected) // Object.is equality

    Expected: 1
    Received: 2

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 1 skipped, 1 todo, 3 passed, 6 total
Snapshots:   0 total
Time:        0.512 s, estimated 1 s
Ran all test suites.
`;

const VITEST = ` ✓ src/sum.test.ts (2 tests) 3ms
 ❯ src/sub.test.ts (3 tests | 1 failed | 1 skipped) 5ms
   × sub > subtracts 3ms
     → expected 2 to be 1 // Object.is equality

⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯

 Test Files  1 failed | 1 passed (2)
      Tests  1 failed | 3 passed | 1 skipped (5)
   Start at  10:21:07
   Duration  412ms (transform 40ms, setup 0ms, collect 35ms, tests 8ms, environment 0ms, prepare 150ms)
`;

const PYTEST = `============================= test session starts ==============================
platform linux -- Python 3.11.2, pytest-7.2.1, pluggy-1.0.0
rootdir: /work/proj
collected 7 items

test_math.py ..F.sxE                                                     [100%]

=================================== FAILURES ===================================
___________________________________ test_sub ___________________________________

    def test_sub():
>       assert 2 - 1 == 2
E       assert (2 - 1) == 2

test_math.py:8: AssertionError
=========================== short test summary info ============================
FAILED test_math.py::test_sub - assert (2 - 1) == 2
ERROR test_math.py::test_db - ConnectionRefusedError
========= 1 failed, 3 passed, 1 skipped, 1 xfailed, 2 warnings, 1 error in 0.05s =========
`;

const PYTEST_QUIET = `...
3 passed in 0.01s
`;

const GO_VERBOSE = `=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
    math_test.go:12: got 2, want 1
--- FAIL: TestSub (0.00s)
=== RUN   TestTable
=== RUN   TestTable/zero
=== RUN   TestTable/one
--- PASS: TestTable (0.00s)
    --- PASS: TestTable/zero (0.00s)
    --- PASS: TestTable/one (0.00s)
=== RUN   TestSkip
    math_test.go:30: not on linux
--- SKIP: TestSkip (0.00s)
FAIL
FAIL	example.com/calc	0.003s
FAIL
`;

const GO_PACKAGES = `--- FAIL: TestSub (0.00s)
    math_test.go:12: got 2, want 1
FAIL
FAIL	example.com/calc	0.002s
ok  	example.com/calc/util	0.001s
ok  	example.com/calc/parse	(cached)
?   	example.com/calc/cmd	[no test files]
FAIL
`;

describe('sandbox summary parsers', () => {
  it('reads mocha passing, pending and failing', () => {
    assert.deepEqual(parseTestSummary(MOCHA), { passed: 2, failed: 1, skipped: 2, format: 'mocha' });
    assert.deepEqual(parseTestSummary(MOCHA_ALL_PASS), { passed: 2, failed: 0, skipped: 0, format: 'mocha' });
  });

  it('adds up two mocha runs in one log', () => {
    assert.deepEqual(parseTestSummary(MOCHA + '\n> second workspace\n' + MOCHA_ALL_PASS), {
      passed: 4,
      failed: 1,
      skipped: 2,
      format: 'mocha',
    });
  });

  it("reads node's spec reporter, counting todo as skipped", () => {
    assert.deepEqual(parseTestSummary(NODE_SPEC), { passed: 2, failed: 1, skipped: 2, format: 'node' });
  });

  it("reads node's TAP reporter, counting cancelled as failed", () => {
    assert.deepEqual(parseTestSummary(NODE_TAP), { passed: 2, failed: 2, skipped: 2, format: 'node' });
  });

  it('reads plain TAP summaries as tap', () => {
    assert.deepEqual(parseTestSummary('ok 1 - a\nnot ok 2 - b\n# tests 2\n# pass 1\n# fail 1\n'), {
      passed: 1,
      failed: 1,
      skipped: 0,
      format: 'tap',
    });
  });

  it('reads jest, counting todo as skipped', () => {
    assert.deepEqual(parseTestSummary(JEST), { passed: 3, failed: 1, skipped: 2, format: 'jest' });
  });

  it('reads vitest and ignores the Test Files line', () => {
    assert.deepEqual(parseTestSummary(VITEST), { passed: 3, failed: 1, skipped: 1, format: 'vitest' });
  });

  it('reads pytest, errors as failed and xfailed as skipped', () => {
    assert.deepEqual(parseTestSummary(PYTEST), { passed: 3, failed: 2, skipped: 2, format: 'pytest' });
    assert.deepEqual(parseTestSummary(PYTEST_QUIET), { passed: 3, failed: 0, skipped: 0, format: 'pytest' });
  });

  it('reads go test -v per test and subtest', () => {
    assert.deepEqual(parseTestSummary(GO_VERBOSE), { passed: 4, failed: 1, skipped: 1, format: 'go' });
  });

  it('reads go test without -v per package', () => {
    assert.deepEqual(parseTestSummary(GO_PACKAGES), { passed: 2, failed: 1, skipped: 0, format: 'go-packages' });
  });

  it('ignores colours a reporter prints for a terminal', () => {
    const coloured = '\u001b[32m  5 passing\u001b[39m\u001b[90m (12ms)\u001b[39m\n\u001b[31m  1 failing\u001b[39m\n';
    assert.deepEqual(parseTestSummary(coloured), { passed: 5, failed: 1, skipped: 0, format: 'mocha' });
  });

  it('joins the formats when a task runs two runners', () => {
    assert.deepEqual(parseTestSummary(MOCHA_ALL_PASS + PYTEST_QUIET), { passed: 5, failed: 0, skipped: 0, format: 'mocha+pytest' });
  });

  it('returns undefined for output without a known summary', () => {
    assert.equal(parseTestSummary('build finished\n3 files compiled in 2s\n'), undefined);
    assert.equal(parseTestSummary(''), undefined);
  });
});
