#!/usr/bin/env node
'use strict';
/**
 * The second half of `npm run compile:ts`. lib/ imports the addon's types from the top-level
 * binding.d.ts as '../../binding' (from lib/engine/), and tsc keeps that specifier in the
 * declarations it emits to dist/lib/engine/, where it means dist/binding.d.ts. tsc never emits a
 * .d.ts input, so this copies binding.d.ts there: the published declarations then resolve in a
 * consumer's `tsc --strict` without skipLibCheck (test/package/pack.test.ts checks it).
 */
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const target = path.join(root, 'dist', 'binding.d.ts');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(path.join(root, 'binding.d.ts'), target);
