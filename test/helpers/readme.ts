import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './paths';

/**
 * The README's library example as written: the first ```ts block under "## Library". It imports
 * 'shortgpt-native' and reads node_modules/shortgpt-native/assets/..., as a project that
 * installed the package does; test/cli/readme-example.test.ts runs it against this checkout and
 * test/package/pack.test.ts type-checks and runs it against the packed tarball.
 */
export function readmeLibraryExample(): string {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md has no ```ts block under ## Library');
  return m[1];
}
