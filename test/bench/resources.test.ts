import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchFootprint, checkBenchResources } from '../../lib/bench/resources';
import { llamaShape } from '../../lib/bench/shapes';
import { writeSyntheticLayer } from '../../lib/bench/syntheticWeights';

const shape = llamaShape('t', { hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 128, vocabSize: 256 });

describe('bench resource check', () => {
  it('the file estimate covers the synthetic file actually written, within its 1 MiB slack', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-bench-res-'));
    try {
      for (const dtype of ['F32', 'BF16'] as const) {
        const written = await writeSyntheticLayer(dir, shape.config, { dtype, seed: 1, embeddingRows: 100 });
        const est = benchFootprint(shape.config, dtype, 100, 32).fileBytes;
        expect(est).toBeGreaterThanOrEqual(written.fileBytes);
        expect(est - written.fileBytes).toBeLessThanOrEqual(1 << 20);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('memory grows with tokens (activations) and the layer, and refusals carry both numbers', () => {
    const small = benchFootprint(shape.config, 'F32', 100, 32);
    const long = benchFootprint(shape.config, 'F32', 100, 32_000);
    expect(long.memoryBytes).toBeGreaterThan(small.memoryBytes * 100);
    const fp = { fileBytes: 2 * 1024 ** 3, memoryBytes: 3 * 1024 ** 3 };
    expect(() => checkBenchResources('S', fp, '/some/tmp', { disk: 1024 ** 3, memory: 8 * 1024 ** 3 }))
      .toThrow(expect.objectContaining({ code: 'ERR_BENCH_TOO_LARGE', message: expect.stringMatching(/shape S needs a 2\.0 GiB synthetic layer file, but \/some\/tmp has 1\.0 GiB free/) }));
    expect(() => checkBenchResources('S', fp, '/some/tmp', { disk: 8 * 1024 ** 3, memory: 1024 ** 3 }))
      .toThrow(expect.objectContaining({ code: 'ERR_BENCH_TOO_LARGE', message: expect.stringMatching(/needs at least 3\.0 GiB of memory .*but 1\.0 GiB is available/) }));
    expect(() => checkBenchResources('S', fp, '/some/tmp', { disk: 8 * 1024 ** 3, memory: 8 * 1024 ** 3 })).not.toThrow();
  });
});
