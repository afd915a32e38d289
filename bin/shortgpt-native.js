#!/usr/bin/env node
'use strict';
// Entry point of the `shortgpt-native` command; the CLI lives in lib/cli (compiled to dist/).
require('../dist/lib/cli/main.js')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; })
  .catch((e) => { process.stderr.write(`shortgpt-native: internal error: ${e && e.stack || e}\n`); process.exitCode = 1; });
