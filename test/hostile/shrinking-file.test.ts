/**
 * A checkpoint file that becomes shorter while the engine has it mapped (overwritten in place
 * during a run): reading a mapped page past the new end raises SIGBUS, which used to end the
 * process. core/map_guard.h turns it into zeros read plus an ERR_IO naming the tensor and file.
 * First the mechanism, deterministically (map, truncate, read: binding.mappedTensorShrinkForTest),
 * each case in a child so that a failure shows as a signal instead of killing jest; then the
 * engine with streamed weights (exact and fast mode), with the file truncated while a layer runs: whatever
 * the moment, the layer fails with ERR_IO and the process lives.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadBinding } from '../../lib/engine/binding';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { repoRoot } from '../helpers/paths';

const tsRequire = path.join(repoRoot, 'test', 'prune', 'helpers', 'tsRequire.js');

function child(code: string, env: Record<string, string> = {}): { status: number | null; signal: string | null; out: unknown; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(tsRequire)});${code}`], {
    encoding: 'utf8', timeout: 120_000, cwd: repoRoot, env: { ...process.env, ...env },
  });
  let out: unknown;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    out = undefined;
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr };
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-shrink-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('a mapped file that shrinks', () => {
  test.each([
    ['to half, mid-tensor', 1 << 20, 3 << 20, 2 << 20],
    ['to nothing', 4096, 1 << 20, 0],
    ['at an unaligned length', 100, (1 << 20) + 2, 12_345],
  ])('%s: the read completes, the tail reads as zeros, ERR_IO names the tensor', (_name, offset, bytes, truncateTo) => {
    const file = path.join(tmp, `f-${offset}-${truncateTo}.bin`);
    fs.writeFileSync(file, Buffer.alloc(offset + bytes, 1));
    const r = child(`const b = require(${JSON.stringify(path.join(repoRoot, 'lib', 'engine', 'binding.ts'))}).loadBinding();
      process.stdout.write(JSON.stringify(b.mappedTensorShrinkForTest(${JSON.stringify(file)}, ${offset}, ${bytes}, ${truncateTo})));`);
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    const out = r.out as { shrank: boolean; sum: number; code?: string; message?: string };
    expect(out.shrank).toBe(true);
    // Bytes still in the file read as 1; those past its new end on the pages that faulted read 0.
    expect(out.sum).toBeGreaterThanOrEqual(Math.max(0, truncateTo - offset));
    expect(out.sum).toBeLessThan(bytes);
    expect(out.code).toBe('ERR_IO');
    expect(out.message).toMatch(/tensor 'test' in .*f-.*\.bin: the file became shorter while it was being read/);
  });

  test('a file that keeps its length is not reported', () => {
    const file = path.join(tmp, 'same.bin');
    fs.writeFileSync(file, Buffer.alloc(1 << 20, 1));
    const b = loadBinding();
    const out = b.mappedTensorShrinkForTest(file, 0, 1 << 20, 1 << 20);
    expect(out).toEqual({ shrank: false, sum: 1 << 20 });
  });

  const precisions = loadBinding().cpuInfo().bf16Kernels.length > 0 ? ['f32', 'bf16'] : ['f32'];
  test.each(precisions)('precision %s, weights streamed: the checkpoint truncated while a layer runs is ERR_IO, never a crash', async (precision) => {
    const dir = path.join(tmp, `llama-${precision}`);
    // ~15 MB of BF16 weights per layer: the layer's GEMMs read for milliseconds.
    await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'BF16', layers: 2, vocabSize: 96, maxPositionEmbeddings: 1024, hiddenSize: 512, intermediateSize: 4096 });
    const file = path.join(dir, 'model.safetensors');
    const pristine = path.join(tmp, `pristine-${precision}.safetensors`);
    fs.copyFileSync(file, pristine);
    const size = fs.statSync(file).size;
    const seen: string[] = [];
    for (const delayMs of [0, 2, 8, 30]) {
      fs.copyFileSync(pristine, file);
      const r = child(`
        const fs = require('node:fs');
        const { openCheckpoint } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'checkpoint', 'checkpoint.ts'))});
        const { embeddingRef, layerTensorRefs, nativeModelSpec } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'engine', 'modelSpec.ts'))});
        const { EngineSession } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'engine', 'session.ts'))});
        (async () => {
          const ckpt = await openCheckpoint(${JSON.stringify(dir)});
          const seqs = [Array.from({ length: 900 }, (_, i) => 1 + (i % 90))];
          const session = EngineSession.create(nativeModelSpec(ckpt.config), seqs, { threads: 2, precision: '${precision}' });
          await session.embed(embeddingRef(ckpt));
          const run = session.forwardLayer(1, layerTensorRefs(ckpt, 1));
          setTimeout(() => fs.truncateSync(${JSON.stringify(file)}, ${Math.floor(size / 3)}), ${delayMs});
          let out;
          try { await run; out = { ok: true }; } catch (e) { out = { code: e.code, message: e.message }; }
          await session.dispose();
          process.stdout.write(JSON.stringify(out));
        })();`, { SHORTGPT_WEIGHT_STAGE: 'streamed' });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
      const out = r.out as { ok?: boolean; code?: string; message?: string };
      // A layer that finished before the truncation is fine too; otherwise ERR_IO, whether the
      // truncation came before the mapping (past the end of the file) or during the reads.
      if (!out.ok) expect(out.code).toBe('ERR_IO');
      seen.push(out.ok ? 'ok' : /became shorter/.test(out.message ?? '') ? 'during' : 'before');
    }
    // At least one truncation landed before the layer finished (here: every one, during the reads).
    expect(seen.filter((x) => x !== 'ok').length).toBeGreaterThan(0);
  }, 300_000);
});
