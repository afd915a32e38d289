/**
 * The benchmark on a tiny shape, through the library and the CLI: structure and sanity of the
 * numbers (positive, finite, FLOPs as counted by hand), never their size: no timing assertions.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { layerFlops } from '../../lib/bench/flops';
import { runBench, type BenchResult, scaledLayerSeconds } from '../../lib/bench/runner';
import { llamaShape } from '../../lib/bench/shapes';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';

// hidden 32, 4 heads of 8, 2 kv heads, intermediate 48, 3 layers.
const tiny = llamaShape('custom', { hiddenSize: 32, numHiddenLayers: 3, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 48, vocabSize: 300 });
const TINY_FLAGS = ['--shape', 'custom', '--hidden', '32', '--layers', '3', '--heads', '4', '--kv-heads', '2', '--intermediate', '48', '--vocab', '300'];

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-test-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function expectPositiveFinite(r: BenchResult, keys: (keyof BenchResult)[]): void {
  for (const k of keys) {
    const v = r[k];
    expect(typeof v).toBe('number');
    expect(Number.isFinite(v as number) && (v as number) > 0).toBe(true);
  }
}

describe('runBench', () => {
  test('runs every layer of a tiny shape and reports positive, finite numbers; removes its temp files', async () => {
    const phases = new Set<string>();
    const layersSeen: number[] = [];
    const r = await runBench({
      shape: tiny, seqLen: 17, sequences: 2, threads: 1, runs: 2, gemmIterations: 1, tempParent: tmp,
      onProgress: (p) => {
        phases.add(p.phase);
        if (p.phase === 'run' && p.run === 0) layersSeen.push(p.layer!);
      },
    });
    expect(r).toMatchObject({ shape: 'custom', device: 'cpu', layers: 3, layersRun: 3, tokens: 34, runs: 2, dtype: 'F32', threads: 1, embeddingRows: 300 });
    expect(layersSeen).toEqual([0, 1, 2]);
    expect([...phases].sort()).toEqual(['gemm', 'peak', 'run', 'write']);
    expectPositiveFinite(r, ['seconds', 'tokensPerSecond', 'gflops', 'peakGflops', 'fractionOfPeak', 'gemmGflops', 'peakRssBytes', 'layerBytes']);
    expect(r.secondsPerRun).toHaveLength(2);
    expect(r.layerSeconds).toHaveLength(3);
    // FLOPs: the hand-checked per-layer count (flops.test.ts) times the layers.
    expect(r.flops).toBe(3 * layerFlops(tiny.config, [17, 17]).total);
    expect(r.tokensPerSecond).toBeCloseTo(34 / r.seconds, 6);
    expect(r.gflops).toBeCloseTo(r.flops / r.seconds / 1e9, 9);
    expect(r.gemm.map((g) => g.ops)).toEqual(['q,o', 'k,v', 'gate,up', 'down']);
    for (const g of r.gemm) expect(g.m).toBe(34);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  test('--layers-to-run scales the layer time to all layers; f16 and bf16 weights run', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const r = await runBench({ shape: tiny, seqLen: 9, threads: 1, layersToRun: 1, gemmIterations: 0, skipPeak: true, dtype, tempParent: tmp });
      expect(r.layersRun).toBe(1);
      expect(r.layerSeconds).toHaveLength(1);
      expect(r.seconds).toBeCloseTo(r.setupSeconds + 3 * r.layerSeconds[0]!, 9);
      expect(r.peakGflops).toBeNull();
      expect(r.gemmGflops).toBeNull();
      expect(r.layerBytes).toBe(2 * (2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 48 * 32));
    }
  });

  test('an aborted signal rejects with ERR_ABORTED and leaves no temp files', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(runBench({ shape: tiny, seqLen: 8, threads: 1, signal: controller.signal, tempParent: tmp })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

describe('shortgpt-native bench (CLI)', () => {
  test('--json prints exactly one document with the documented fields', async () => {
    const io = capture();
    const code = await main(['bench', ...TINY_FLAGS, '--seq-len', '12', '--threads', '1', '--gemm-iterations', '1', '--json'], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    const doc = JSON.parse(io.out()) as { results: BenchResult[] };
    expect(Object.keys(doc)).toEqual(['results']);
    expect(doc.results).toHaveLength(1);
    const r = doc.results[0]!;
    expect(r.shape).toBe('custom');
    expect(r.device).toBe('cpu');
    expectPositiveFinite(r, ['tokensPerSecond', 'gflops', 'peakGflops', 'gemmGflops', 'peakRssBytes']);
    expect(r.flops).toBe(3 * layerFlops(tiny.config, [12]).total);
  });

  test('the table names the shape and the columns', async () => {
    const io = capture();
    const code = await main(['bench', ...TINY_FLAGS, '--seq-len', '5', '--threads', '1', '--gemm-iterations', '1'], io);
    expect(code).toBe(0);
    expect(io.out()).toMatch(/shape\s+layers\s+tokens\s+tok\/s\s+GFLOP\/s\s+peak\s+%peak\s+GEMM GFLOP\/s/);
    expect(io.out()).toMatch(/^custom\s+3\s+1x5\s/m);
  });

  test('a shape from a config.json (Qwen3: q/k norms) runs', async () => {
    const file = path.join(tmp, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ architectures: ['Qwen3ForCausalLM'], hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, intermediate_size: 40, vocab_size: 64 }));
    const io = capture();
    const code = await main(['bench', '--config', file, '--seq-len', '6', '--threads', '1', '--gemm-iterations', '0', '--json'], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    const r = (JSON.parse(io.out()) as { results: BenchResult[] }).results[0]!;
    expect(r).toMatchObject({ architecture: 'Qwen3ForCausalLM', headDim: 16, layers: 2, gemmGflops: null });
  });

  test('numbers override a preset, which is then named S*', async () => {
    const io = capture();
    const code = await main(['bench', '--shape', 'S', '--hidden', '72', '--layers', '2', '--intermediate', '40', '--seq-len', '4', '--threads', '1', '--gemm-iterations', '0', '--json'], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    const r = (JSON.parse(io.out()) as { results: BenchResult[] }).results[0]!;
    // S's heads (9 / 3 kv) and vocabulary stay; head dim follows the new hidden size.
    expect(r).toMatchObject({ shape: 'S*', hiddenSize: 72, layers: 2, intermediateSize: 40, numHeads: 9, numKvHeads: 3, headDim: 8, vocabSize: 49152, embeddingRows: 4096 });
  });

  test.each([
    [['--shape', 'XL'], /--shape must be S, M, custom/],
    [['--shape', 'custom', '--hidden', '32'], /--shape custom needs --layers/],
    [['--dtype', 'f64'], /--dtype must be f32, f16 or bf16, got 'f64'/],
    [['--shape', 'custom', '--hidden', '32', '--layers', '2', '--heads', '4', '--kv-heads', '3', '--intermediate', '8'], /num_key_value_heads.*\(3\) must divide num_attention_heads \(4\)/],
    [['--config', 'x.json', '--layers', '2'], /do not combine it with --shape or the shape numbers/],
    [['--threads', '0'], /--threads must be at least 1/],
  ])('usage error %j exits 2 and says why', async (args, message) => {
    const io = capture();
    expect(await main(['bench', ...args], io)).toBe(2);
    expect(io.err()).toMatch(message);
    expect(io.out()).toBe('');
  });

  test('a missing config file names the file, exit 1 with a stable code', async () => {
    const io = capture();
    const file = path.join(tmp, 'nope.json');
    expect(await main(['bench', '--config', file], io)).toBe(1);
    expect(io.err()).toContain('[ERR_FILE_NOT_FOUND]');
    expect(io.err()).toContain(file);
  });
});

describe('scaledLayerSeconds (--layers-to-run)', () => {
  test('a full run is the plain sum', () => {
    expect(scaledLayerSeconds([3, 1, 2], 3)).toBe(6);
  });
  test('one layer run is scaled as it is', () => {
    expect(scaledLayerSeconds([2], 32)).toBe(64);
  });
  test('with two or more run, the first layer counts once and the mean of the others stands for the rest', () => {
    // The first layer carries one-time set-up (0.5 s): 32 layers cost 1.5 + 31 x 1, not 16 x (1.5 + 1).
    expect(scaledLayerSeconds([1.5, 1], 32)).toBe(32.5);
    expect(scaledLayerSeconds([1.5, 1, 2], 10)).toBe(1.5 + 1.5 * 9);
  });
});
