/**
 * The one module that loads the native addon. node-gyp-build looks in build/Release (a source
 * build) and then prebuilds/<platform>-<arch>/ (the binaries the published package carries).
 */
import * as path from 'node:path';
import type { NativeBinding } from '../../binding';
import { ShortGptError } from '../errors';

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

export function loadBinding(): NativeBinding {
  if (cached) return cached;
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
        `Build it from source: in ${packageRoot} run \`npm install\` (needs cmake and a C++17 compiler), ` +
        `or \`npx cmake-js compile --out build\`.\nLoader said: ${reason}`,
      { cause: e },
    );
  }
  return cached;
}
