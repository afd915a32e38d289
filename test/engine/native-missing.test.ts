/**
 * The advice ERR_NATIVE_MISSING gives must work as printed: in a clone (it has tsconfig.json) the
 * developer build; in an installed package, cmake-js run in the package directory (the pack test
 * checks that message in a real installation; the command itself was run there by hand).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nativeMissingAdvice } from '../../lib/engine/binding';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt native missing '));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('in an installed package: cmake-js in the package directory, the path quoted for the shell', () => {
  const advice = nativeMissingAdvice(tmp);
  expect(advice).toContain(`cd '${tmp}' && npx --yes cmake-js@8 compile --out build`);
  expect(advice).toMatch(/CMake >= 3\.19 and a C\+\+17 compiler/);
  expect(advice).not.toMatch(/npm install/);
});

it('in a clone of the repository: the developer build', () => {
  fs.writeFileSync(path.join(tmp, 'tsconfig.json'), '{}');
  expect(nativeMissingAdvice(tmp)).toContain(`cd '${tmp}' && npm run compile:native`);
});

it('quotes a path with a single quote so the shell reads it back unchanged', () => {
  const dir = path.join(tmp, "it's");
  fs.mkdirSync(dir);
  const advice = nativeMissingAdvice(dir);
  expect(advice).toContain(`cd '${tmp}/it'\\''s' && `);
  const word = /cd (.*) && npx/.exec(advice)?.[1] ?? '';
  expect(execFileSync('bash', ['-c', `printf %s ${word}`], { encoding: 'utf8' })).toBe(dir);
});
