/**
 * Replays the fuzz corpus and every past fuzz finding (test/fuzz/crashes/<target>/, committed
 * with the fix) through the fuzz property: parsed, or a ShortGptError with a code. The fuzzer
 * itself runs in CI for a bounded time (npm run fuzz, test/fuzz/run.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { corpusDir, crashDir, inputsIn, runTarget, TARGETS } from './targets';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-fuzz-replay-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe.each(TARGETS)('fuzz target %s', (target) => {
  it('has a seed corpus', () => {
    expect(inputsIn(corpusDir(target)).length).toBeGreaterThanOrEqual(5);
  });

  it('every corpus input and past finding parses or fails with a ShortGptError code, quickly', async () => {
    const inputs = [...inputsIn(crashDir(target)), ...inputsIn(corpusDir(target))];
    const codes = new Set<string>();
    for (const { name, bytes } of inputs) {
      const t0 = performance.now();
      // runTarget throws FuzzFinding (naming the exception) for anything else.
      const outcome = await runTarget(target, bytes, path.join(tmp, `${target}-${name}`)).catch((e: Error) => {
        throw new Error(`${target}/${name}: ${e.message}`);
      });
      codes.add(outcome.ok ? 'ok' : outcome.code);
      expect(performance.now() - t0).toBeLessThan(2000);
    }
    // The corpus reaches both sides of the property: accepted inputs and several refusals.
    expect(codes.has('ok')).toBe(true);
    expect(codes.size).toBeGreaterThanOrEqual(target === 'shard-index' ? 2 : 3);
  });
});
