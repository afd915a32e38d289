/**
 * The closing line's counts against jest's own: a suite that fails to run (jest: "Test suite
 * failed to run", no tests counted) adds one failed; tests failing in a suite whose beforeAll
 * threw are jest's failed tests already. The aggregated results below are the shapes jest 30
 * produced for such suites (measured with deliberately broken suites).
 */
const { summaryCounts, summaryLines } = require('./summaryReporter') as {
  summaryCounts(r: object): { passed: number; failed: number; skipped: number; suitesNotRun: number };
  summaryLines(r: object): string[];
};

const base = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, numRuntimeErrorTestSuites: 0 };

test('a clean run: jest\'s Tests counts, skipped = skipped + todo, one line', () => {
  const r = { ...base, numPassedTests: 410, numPendingTests: 3, numTodoTests: 1 };
  expect(summaryCounts(r)).toEqual({ passed: 410, failed: 0, skipped: 4, suitesNotRun: 0 });
  expect(summaryLines(r)).toEqual(['tests: 410 passed, 0 failed, 4 skipped']);
});

test('a suite that fails to load counts once, not as its tests', () => {
  // jest: "Test Suites: 4 failed, 1 passed", "Tests: 3 failed, 1 skipped, 1 todo, 3 passed": one
  // suite threw at the top level (3 tests never collected), one had a syntax error, one a
  // throwing beforeAll (its 2 tests failed), one a failing test.
  const r = { ...base, numPassedTests: 3, numFailedTests: 3, numPendingTests: 1, numTodoTests: 1, numRuntimeErrorTestSuites: 2 };
  expect(summaryCounts(r)).toEqual({ passed: 3, failed: 5, skipped: 2, suitesNotRun: 2 });
  expect(summaryLines(r)).toEqual(['(5 failed = 3 failed tests + 2 test suites that failed to run)', 'tests: 3 passed, 5 failed, 2 skipped']);
});

test('a suite whose afterAll throws: its passed tests stay passed, the suite fails once', () => {
  const r = { ...base, numPassedTests: 2, numRuntimeErrorTestSuites: 1 };
  expect(summaryLines(r)).toEqual(['(1 failed = 0 failed tests + 1 test suite that failed to run)', 'tests: 2 passed, 1 failed, 0 skipped']);
});

test('the last line is always the counts line', () => {
  for (const r of [base, { ...base, numFailedTests: 1, numRuntimeErrorTestSuites: 4 }]) {
    expect(summaryLines(r).at(-1)).toMatch(/^tests: \d+ passed, \d+ failed, \d+ skipped$/);
  }
});
