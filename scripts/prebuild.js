#!/usr/bin/env node
'use strict';
/**
 * `npm run prebuild`: builds the addon with cmake-js (Release) and places it where
 * node-gyp-build looks for prebuilt binaries: prebuilds/<platform>-<arch>/shortgpt-native.napi.node.
 * prebuildify drives node-gyp, not cmake-js, so this script does its job for our build:
 * one Node-API binary (ABI-stable across Node versions >= the napi version), stripped.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

run(process.execPath, [require.resolve('cmake-js/bin/cmake-js', { paths: [root] }), 'compile', '--out', 'build']);
const built = path.join(root, 'build', 'Release', 'shortgpt_native.node');
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
const target = path.join(dir, 'shortgpt-native.napi.node');
fs.copyFileSync(built, target);
// Extra backends (the CUDA shared object) travel beside the addon.
for (const f of fs.readdirSync(path.dirname(built))) {
  if (/^libshortgpt_.*\.so$/.test(f)) fs.copyFileSync(path.join(path.dirname(built), f), path.join(dir, f));
}
if (process.platform === 'linux') {
  try { execFileSync('strip', ['--strip-unneeded', target]); } catch { /* strip is optional */ }
}
console.log(`prebuild: ${path.relative(root, target)} (${fs.statSync(target).size} bytes)`);
