'use strict';
/**
 * Prints one plain closing line after everything jest prints, "tests: N passed, N failed,
 * N skipped", so that tools which read a run's last line (CI) count the tests without parsing
 * jest's own summary. Jest's summary comes from a reporter that runs after custom ones, hence
 * the line is written when the process exits.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `tests: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`;
    process.once('exit', () => process.stderr.write(line));
  }
}
module.exports = SummaryReporter;
