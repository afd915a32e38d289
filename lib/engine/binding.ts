/**
 * The one module that loads the native addon. node-gyp-build looks in build/Release (a source
 * build) and then prebuilds/<platform>-<arch>/ (the binaries the published package carries).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NativeBinding } from '../../binding';
import { ShortGptError } from '../errors';
import { shellWord } from '../util/shell';

/** The package root: dist/lib/engine -> ../../.. ; lib/engine (ts sources under jest) -> ../.. */
export const packageRoot: string = (() => {
  const up2 = path.resolve(__dirname, '..', '..');
  return path.basename(up2) === 'dist' ? path.dirname(up2) : up2;
})();

let cached: NativeBinding | undefined;
let cachedPath: string | undefined;

/** Where the loaded addon came from (a prebuilt binary or a source build). */
export function bindingPath(): string | undefined {
  return cachedPath;
}

/**
 * What to do when no addon loads, as commands that work as printed. A clone of the repository
 * (it has tsconfig.json, which the package does not ship) builds with its own dev tools. An
 * installed package has the addon's sources (native/, CMakeLists.txt) and node-addon-api as a
 * dependency, so cmake-js alone, fetched by npx, builds it in place into build/Release, where the
 * loader looks first; `npm install` inside the package would pull every dev dependency instead.
 */
export function nativeMissingAdvice(root: string): string {
  const needs = 'needs CMake >= 3.19 and a C++17 compiler';
  if (fs.existsSync(path.join(root, 'tsconfig.json'))) {
    return `Build it from this clone: cd ${shellWord(root)} && npm run compile:native   (${needs})`;
  }
  return (
    `The package ships a prebuilt binary for linux-x64 (glibc) only. On another platform, or if it fails to load here, ` +
    `build one from the sources it carries (${needs}; a few minutes):\n` +
    `  cd ${shellWord(root)} && npx --yes cmake-js@8 compile --out build`
  );
}

/**
 * SHORTGPT_NATIVE_PATH: an addon file to load instead of the search below. For builds that must
 * not replace build/Release, such as the sanitizer build of scripts/asan-test.sh.
 */
function loadOverride(file: string): NativeBinding {
  const abs = path.resolve(file);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(abs) as NativeBinding;
    cachedPath = abs;
    return cached;
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ShortGptError('ERR_NATIVE_MISSING', `shortgpt-native: SHORTGPT_NATIVE_PATH=${abs} could not be loaded: ${reason}`, { cause: e });
  }
}

export function loadBinding(): NativeBinding {
  if (cached) return cached;
  const override = process.env.SHORTGPT_NATIVE_PATH;
  if (override) return loadOverride(override);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as ((dir: string) => NativeBinding) & { resolve(dir: string): string };
    cachedPath = load.resolve(packageRoot);
    cached = load(packageRoot);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ShortGptError(
      'ERR_NATIVE_MISSING',
      `shortgpt-native: no native addon for ${process.platform}-${process.arch} (node ${process.versions.node}) ` +
        `in ${path.join(packageRoot, 'prebuilds')} or ${path.join(packageRoot, 'build', 'Release')}.\n` +
        `${nativeMissingAdvice(packageRoot)}\nLoader said: ${reason}`,
      { cause: e },
    );
  }
  return cached;
}
