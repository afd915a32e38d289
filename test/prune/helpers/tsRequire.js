'use strict';
// Lets a child `node -r test/prune/helpers/tsRequire.js x.ts` load the TypeScript sources
// directly (transpiled by @swc/core, as jest does), so CLI process tests need no dist/ build.
const fs = require('node:fs');
const { transformSync } = require('@swc/core');

require.extensions['.ts'] = function compileTs(module, filename) {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};
