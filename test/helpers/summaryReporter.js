'use strict';
/**
 * Prints one plain closing line after everything jest prints, "tests: N passed, N failed,
 * N skipped", so that tools which read a run's last line (CI) count the tests without parsing
 * jest's own summary. Jest's summary comes from a reporter that runs after custom ones, hence
 * the line is written when the process exits.
 *
 * The counts are jest's "Tests:" counts (skipped = skipped + todo), plus one failed per suite
 * that failed to run (an import or top-level error, a describe-time or afterAll error, a file
 * with no tests): jest counts no tests for such a suite, yet fails the run for it
 * (success = no failed tests and no runtime-error suites), so the line counts it as failed once
 * rather than not at all. When there are such suites, a line before it says how many, so the
 * two summaries can be reconciled.
 */
function summaryCounts(results) {
  const suitesNotRun = results.numRuntimeErrorTestSuites || 0;
  return {
    passed: results.numPassedTests,
    failed: results.numFailedTests + suitesNotRun,
    skipped: results.numPendingTests + (results.numTodoTests || 0),
    suitesNotRun,
  };
}

function summaryLines(results) {
  const c = summaryCounts(results);
  const lines = [];
  if (c.suitesNotRun > 0) {
    const tests = results.numFailedTests;
    lines.push(`(${c.failed} failed = ${tests} failed test${tests === 1 ? '' : 's'} + ${c.suitesNotRun} test suite${c.suitesNotRun === 1 ? '' : 's'} that failed to run)`);
  }
  lines.push(`tests: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
  return lines;
}

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const text = `${summaryLines(results).join('\n')}\n`;
    process.once('exit', () => process.stderr.write(text));
  }
}
module.exports = SummaryReporter;
module.exports.summaryCounts = summaryCounts;
module.exports.summaryLines = summaryLines;
