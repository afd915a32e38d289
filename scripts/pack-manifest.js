#!/usr/bin/env node
'use strict';
/**
 * Keeps the clone-only build hook out of the published package.json.
 *
 * A developer's clone needs `prepare` (`npm install` there builds the addon and the TypeScript),
 * but in a published manifest npm 11 reports it on every consumer install as a script "not yet
 * covered by allowScripts", although the package needs no script (it ships a prebuilt binary and
 * dist/). npm packs package.json as it is on disk after `prepack`, so:
 *
 *   node scripts/pack-manifest.js strip                (prepack) moves the install-time scripts
 *                                                      into .pack-manifest-scripts.json
 *   node scripts/pack-manifest.js restore-after-pack   (postpack) puts them back, except during
 *                                                      `npm publish`, which reads the manifest
 *                                                      again after packing to send to the registry
 *   node scripts/pack-manifest.js restore              (postpublish; or by hand after a failed pack)
 *
 * Only the `scripts` entries named below are touched, and restore edits the current file rather
 * than copying a backup over it, so an edit made to package.json while a pack runs survives.
 */
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const manifestPath = path.join(root, 'package.json');
const sidecarPath = path.join(root, '.pack-manifest-scripts.json');
/** Scripts npm runs when the package is installed somewhere: a published package carries none. */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'preprepare', 'prepare', 'postprepare'];

function readManifest() {
  return JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
}

function writeManifest(pkg) {
  fs.writeFileSync(manifestPath, `${JSON.stringify(pkg, null, 2)}\n`);
}

function restore() {
  if (!fs.existsSync(sidecarPath)) return false;
  const saved = JSON.parse(fs.readFileSync(sidecarPath, 'utf8'));
  const pkg = readManifest();
  const current = pkg.scripts || {};
  // Rebuild `scripts` in the original key order, keeping whatever the file has now for the rest.
  const scripts = {};
  for (const key of saved.order) {
    if (key in saved.removed) scripts[key] = saved.removed[key];
    else if (key in current) scripts[key] = current[key];
  }
  for (const [key, value] of Object.entries(current)) if (!(key in scripts)) scripts[key] = value;
  pkg.scripts = scripts;
  writeManifest(pkg);
  fs.rmSync(sidecarPath);
  console.log(`pack-manifest: restored ${Object.keys(saved.removed).join(', ')} in package.json`);
  return true;
}

function strip() {
  // A pack that failed between strip and restore left its sidecar: put that back first.
  restore();
  const pkg = readManifest();
  const scripts = pkg.scripts || {};
  const order = Object.keys(scripts);
  const removed = {};
  for (const key of INSTALL_SCRIPTS) {
    if (key in scripts) {
      removed[key] = scripts[key];
      delete scripts[key];
    }
  }
  if (Object.keys(removed).length === 0) return;
  // The sidecar first: if writing package.json fails, restore still finds what to put back.
  fs.writeFileSync(sidecarPath, `${JSON.stringify({ order, removed }, null, 2)}\n`);
  writeManifest(pkg);
  console.log(`pack-manifest: ${Object.keys(removed).join(', ')} left out of the packed package.json`);
}

const command = process.argv[2];
if (command === 'strip') strip();
else if (command === 'restore') restore();
else if (command === 'restore-after-pack') {
  // `npm publish` packs, then reads package.json again for the registry's copy of the manifest:
  // leave it stripped until postpublish.
  if (process.env.npm_command !== 'publish') restore();
} else {
  console.error('usage: node scripts/pack-manifest.js strip|restore|restore-after-pack');
  process.exitCode = 2;
}
