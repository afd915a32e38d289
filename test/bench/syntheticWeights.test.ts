import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { layerTensorSpecs } from '../../lib/checkpoint/architectures';
import { bf16BitsToF32, f16BitsToF32 } from '../../lib/checkpoint/halfFloat';
import { readSafetensorsHeader } from '../../lib/checkpoint/safetensors';
import { resolveConfig } from '../../lib/checkpoint/config';
import { llamaShape } from '../../lib/bench/shapes';
import { writeSyntheticLayer, WEIGHT_STD } from '../../lib/bench/syntheticWeights';
import { Prng } from '../../lib/bench/prng';

const config = llamaShape('t', { hiddenSize: 64, numHiddenLayers: 3, numAttentionHeads: 4, numKeyValueHeads: 2, intermediateSize: 96 }).config;
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function values(file: string, offset: number, count: number, dtype: string): number[] {
  const buf = fs.readFileSync(file).subarray(offset);
  return Array.from({ length: count }, (_, i) => (dtype === 'F32' ? buf.readFloatLE(4 * i) : dtype === 'F16' ? f16BitsToF32(buf.readUInt16LE(2 * i)) : bf16BitsToF32(buf.readUInt16LE(2 * i))));
}

describe('synthetic layer weights', () => {
  test('hold exactly the tensors of layer 0 plus the embedding, valid safetensors, norms 1, others ~N(0, 0.02)', async () => {
    const s = await writeSyntheticLayer(dir, config, { dtype: 'F32', seed: 7, embeddingRows: 100 });
    const header = await readSafetensorsHeader(s.file);
    expect(header.tensors.map((t) => t.name).sort()).toEqual(['model.embed_tokens.weight', ...layerTensorSpecs(config, 0).map((t) => t.name)].sort());
    expect(Object.keys(s.layer).sort()).toEqual(layerTensorSpecs(config, 0).map((t) => t.role).sort());
    expect(s.embedding.shape).toEqual([100, 64]);
    expect(values(s.file, s.layer.input_layernorm!.offset, 64, 'F32').every((v) => v === 1)).toBe(true);
    const up = values(s.file, s.layer.up_proj!.offset, 96 * 64, 'F32');
    const mean = up.reduce((a, b) => a + b, 0) / up.length;
    const std = Math.sqrt(up.reduce((a, b) => a + (b - mean) ** 2, 0) / up.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(Math.abs(std - WEIGHT_STD)).toBeLessThan(0.001);
    expect(s.layerBytes).toBe(4 * (2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 96 * 64));
  });

  test('the same seed writes the same bytes; another seed different ones', async () => {
    const a = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'a')), config, { dtype: 'F32', seed: 1, embeddingRows: 10 });
    const b = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'b')), config, { dtype: 'F32', seed: 1, embeddingRows: 10 });
    const c = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'c')), config, { dtype: 'F32', seed: 2, embeddingRows: 10 });
    expect(fs.readFileSync(a.file).equals(fs.readFileSync(b.file))).toBe(true);
    expect(fs.readFileSync(a.file).equals(fs.readFileSync(c.file))).toBe(false);
  });

  test.each(['F16', 'BF16'] as const)('%s holds the f32 values rounded to the dtype', async (dtype) => {
    const f32 = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'f')), config, { dtype: 'F32', seed: 3, embeddingRows: 10 });
    const half = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'h')), config, { dtype, seed: 3, embeddingRows: 10 });
    expect(half.layer.q_proj!.dtype).toBe(dtype);
    const exact = values(f32.file, f32.layer.q_proj!.offset, 64 * 64, 'F32');
    const rounded = values(half.file, half.layer.q_proj!.offset, 64 * 64, dtype);
    const rel = dtype === 'F16' ? 2 ** -11 : 2 ** -8; // half an ulp of the 10- and 7-bit mantissas
    for (let i = 0; i < exact.length; i++) expect(Math.abs(rounded[i]! - exact[i]!)).toBeLessThanOrEqual(rel * Math.abs(exact[i]!) + 6e-8);
  });

  test('follows the architecture: Qwen3 layers get q/k norms (1), Qwen2 q/k/v biases', async () => {
    const base = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 48, vocab_size: 50 };
    const qwen3 = resolveConfig({ ...base, architectures: ['Qwen3ForCausalLM'], head_dim: 8 }, 'qwen3.json');
    const s3 = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'q3')), qwen3, { dtype: 'F32', seed: 1, embeddingRows: 50 });
    expect(values(s3.file, s3.layer.q_norm!.offset, 8, 'F32')).toEqual(new Array(8).fill(1));
    const qwen2 = resolveConfig({ ...base, architectures: ['Qwen2ForCausalLM'] }, 'qwen2.json');
    const s2 = await writeSyntheticLayer(fs.mkdtempSync(path.join(dir, 'q2')), qwen2, { dtype: 'F32', seed: 1, embeddingRows: 50 });
    expect(s2.layer.k_bias!.shape).toEqual([16]);
  });

  test('the generator is a fixed sequence (mulberry32), independent of the platform', () => {
    const p = new Prng(42);
    expect([p.nextU32(), p.nextU32(), p.nextU32()]).toEqual([2581720956, 1925393290, 3661312704]);
  });
});
