import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from './engine/binding';

/** The version in package.json (read once; the addon compiles in the same field). */
export const packageVersion: string = (
  JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version;
