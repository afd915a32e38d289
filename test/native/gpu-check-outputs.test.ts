/**
 * scripts/gpu-check.sh runs on a device machine whose tool returns at most 8 files from $OUT; a
 * ninth is silently lost (issue 16: the two sanitizer logs made 9). The script cannot run here
 * (no GPU), so this reads it: every file it writes under $out, in any mode, counted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/paths';

test('gpu-check.sh writes at most 8 distinct files under $OUT, sanitizer logs merged', () => {
  const script = fs.readFileSync(path.join(repoRoot, 'scripts', 'gpu-check.sh'), 'utf8');
  const names = new Set([...script.matchAll(/\$out\/([A-Za-z0-9_.${}-]+)/g)].map((m) => m[1]));
  // A name built from a variable (sanitizer-$tool.log) would hide how many files it makes.
  for (const n of names) expect(n).not.toMatch(/\$/);
  expect(names.size).toBeLessThanOrEqual(8);
  expect(names).toContain('sanitizer.log');
  // The peer runs in the benchmark's dtype (BF16 synthetic weights), not its fp32 default.
  expect(script).toMatch(/--dtype "\$bench_dtype"/);
  expect(script).toMatch(/^bench_dtype=bf16$/m);
});
