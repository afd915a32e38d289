'use strict';
// The `shortgpt-native` command run from the TypeScript sources (what bin/shortgpt-native.js
// does with dist/), for tests that spawn the CLI as a real process.
require('./tsRequire');
require('../../../lib/cli/main.ts')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; })
  .catch((e) => { process.stderr.write(`internal error: ${(e && e.stack) || e}\n`); process.exitCode = 1; });
