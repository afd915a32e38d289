/** Checkpoint directories: single file and sharded, the shard-index rules, and the architecture table check. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { layerIndexOf, layerTensorName, layerTensorSpecs, globalTensorSpecs } from '../../lib/checkpoint/architectures';
import { layerTensors, openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { readSafetensorsHeader } from '../../lib/checkpoint/safetensors';
import { ShortGptError } from '../../lib/errors';
import { readTensorBytes, readTensorF32 } from '../../lib/checkpoint/tensorData';
import { generateCheckpoint, generateCheckpointCli, writeTensorFile, type TensorToWrite } from '../../scripts/generate-checkpoint';
import { stories260kDir } from '../helpers/paths';

let tmp: string;
let n = 0;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-ckpt-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

async function fresh(opts: Partial<Parameters<typeof generateCheckpoint>[1]> = {}): Promise<string> {
  const dir = path.join(tmp, `c${n++}`);
  await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 2, ...opts });
  return dir;
}

async function tensorsOf(file: string): Promise<TensorToWrite[]> {
  const st = await readSafetensorsHeader(file);
  const bytes = fs.readFileSync(file);
  return st.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(t.dataOffset, t.dataOffset + t.byteLength) }));
}

async function rewriteSingle(dir: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const file = path.join(dir, 'model.safetensors');
  const ts = edit(await tensorsOf(file));
  writeTensorFile(file, ts);
}

async function rejection(dir: string): Promise<ShortGptError> {
  try {
    await openCheckpoint(dir);
  } catch (e) {
    expect(e).toBeInstanceOf(ShortGptError);
    return e as ShortGptError;
  }
  throw new Error('expected openCheckpoint to throw');
}

const readIndex = (dir: string): { metadata: Record<string, unknown>; weight_map: Record<string, string> } =>
  JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
const writeIndex = (dir: string, v: unknown): void => fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(v));

describe('opening checkpoints', () => {
  it('the real stories260k: tied, 5 layers, every tensor with a file and offset', async () => {
    const ck = await openCheckpoint(stories260kDir);
    expect(ck.config).toMatchObject({ architecture: 'LlamaForCausalLM', numHiddenLayers: 5, tieWordEmbeddings: true, rmsNormEps: 1e-5 });
    expect(ck.tensors.size).toBe(47);
    expect(ck.index).toBeUndefined();
    expect(ck.warnings).toEqual([]);
    const l4 = layerTensors(ck, 4);
    expect([...l4.keys()].sort()).toEqual(['down_proj', 'gate_proj', 'input_layernorm', 'k_proj', 'o_proj', 'post_attention_layernorm', 'q_proj', 'up_proj', 'v_proj']);
    expect(l4.get('k_proj')).toMatchObject({ name: 'model.layers.4.self_attn.k_proj.weight', shape: [32, 64], dtype: 'F32', byteLength: 32 * 64 * 4 });
    expect(ck.rawConfig.hidden_size).toBe(64);
  });

  it('a sharded checkpoint: index and shards agree, tensors come from their shards', async () => {
    const dir = await fresh({ shards: 3, architecture: 'Qwen3ForCausalLM', dtype: 'BF16' });
    const ck = await openCheckpoint(dir);
    expect(ck.files).toHaveLength(3);
    expect(ck.index!.weightMap.size).toBe(ck.tensors.size);
    for (const [name, shard] of ck.index!.weightMap) expect(path.basename(ck.tensors.get(name)!.file)).toBe(shard);
    expect(ck.index!.metadata.total_size).toBe([...ck.tensors.values()].reduce((s, t) => s + t.byteLength, 0));
    expect(layerTensors(ck, 1).get('q_norm')!.shape).toEqual([16]);
    expect(() => layerTensors(ck, 2)).toThrow(expect.objectContaining({ code: 'ERR_LAYER_INDEX' }));
  });

  it('the generator is deterministic: same options, same bytes; another seed, other bytes', async () => {
    const a = await fresh({ seed: 7 });
    const b = await fresh({ seed: 7 });
    const c = await fresh({ seed: 8 });
    const read = (d: string): Buffer => fs.readFileSync(path.join(d, 'model.safetensors'));
    expect(read(a).equals(read(b))).toBe(true);
    expect(read(a).equals(read(c))).toBe(false);
    for (const f of ['README.md', 'tokenizer_config.json', 'generation_config.json']) expect(fs.existsSync(path.join(a, f))).toBe(true);
  });

  it('generated weights have the intended scale: matrices ~ N(0, 1/fan_in), norms ~ 1', async () => {
    const dir = await fresh({ hiddenSize: 64, intermediateSize: 128, layers: 1 });
    const ts = await tensorsOf(path.join(dir, 'model.safetensors'));
    const stats = (name: string): { mean: number; std: number } => {
      const t = ts.find((x) => x.name === name)!;
      const v = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      return { mean, std: Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length) };
    };
    const down = stats('model.layers.0.mlp.down_proj.weight'); // fan_in 128
    expect(Math.abs(down.mean)).toBeLessThan(0.01);
    expect(down.std).toBeGreaterThan(0.95 / Math.sqrt(128));
    expect(down.std).toBeLessThan(1.05 / Math.sqrt(128));
    const norm = stats('model.layers.0.input_layernorm.weight');
    expect(Math.abs(norm.mean - 1)).toBeLessThan(0.05);
  });
});

describe('tensor data and the generator CLI', () => {
  it('reads a tensor by offset; the F16 and BF16 files decode to the F32 values within half-precision rounding', async () => {
    const dirs = await Promise.all((['F32', 'F16', 'BF16'] as const).map((dtype) => fresh({ dtype, seed: 3, shards: dtype === 'F16' ? 2 : 1 })));
    const [f32, f16, bf16] = await Promise.all(dirs.map((d) => openCheckpoint(d)));
    const name = 'model.layers.1.self_attn.o_proj.weight';
    const ref = await readTensorF32(f32!.tensors.get(name)!);
    const raw = await readTensorBytes(f32!.tensors.get(name)!);
    expect(raw.readFloatLE(4)).toBe(ref[1]);
    for (const [ck, rel] of [[f16!, 2 ** -11], [bf16!, 2 ** -8]] as const) {
      const v = await readTensorF32(ck.tensors.get(name)!);
      expect(v.length).toBe(ref.length);
      for (let i = 0; i < v.length; i++) {
        if (Math.abs(v[i]! - ref[i]!) > rel * Math.abs(ref[i]!) + 1e-7) throw new Error(`${ck.config.architecture} element ${i}: ${v[i]} vs ${ref[i]}`);
      }
    }
  });

  it('the CLI writes a checkpoint and rejects a bad option naming it', async () => {
    const dir = path.join(tmp, 'cli');
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      expect(await generateCheckpointCli([dir, '--arch', 'baichuan', '--dtype', 'bf16', '--shards', '2', '--layers', '3'])).toBe(0);
      await expect(generateCheckpointCli([dir, '--arch', 'gpt2'])).rejects.toThrow(/--arch must be one of/);
    } finally {
      process.stdout.write = write;
    }
    const ck = await openCheckpoint(dir);
    expect(ck.config).toMatchObject({ architecture: 'BaichuanForCausalLM', numHiddenLayers: 3 });
    expect(ck.files).toHaveLength(2);
  });
});

describe('shard index rules', () => {
  it('ERR_SHARD_MISSING: a listed shard does not exist', async () => {
    const dir = await fresh({ shards: 2 });
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_SHARD_MISSING');
    expect(e.message).toMatch(/model-00002-of-00002\.safetensors/);
  });

  it('ERR_SHARD_INDEX: weight_map names a tensor its shard does not hold', async () => {
    const dir = await fresh({ shards: 2 });
    const idx = readIndex(dir);
    idx.weight_map['model.ghost.weight'] = 'model-00001-of-00002.safetensors';
    writeIndex(dir, idx);
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_SHARD_INDEX');
    expect(e.message).toMatch(/'model\.ghost\.weight'.*model-00001-of-00002/);
  });

  it('ERR_SHARD_INDEX: a shard holds a tensor weight_map does not list', async () => {
    const dir = await fresh({ shards: 2 });
    const idx = readIndex(dir);
    delete idx.weight_map['model.norm.weight'];
    writeIndex(dir, idx);
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_SHARD_INDEX');
    expect(e.message).toMatch(/'model\.norm\.weight'.*not in weight_map/);
  });

  it('ERR_SHARD_INDEX: weight_map puts a tensor in the wrong shard', async () => {
    const dir = await fresh({ shards: 2 });
    const idx = readIndex(dir);
    idx.weight_map['model.embed_tokens.weight'] = 'model-00002-of-00002.safetensors';
    writeIndex(dir, idx);
    expect((await rejection(dir)).code).toBe('ERR_SHARD_INDEX');
  });

  it('ERR_SHARD_INDEX: malformed index (not JSON, duplicate key, no weight_map, a path outside the directory)', async () => {
    const dir = await fresh({ shards: 2 });
    const file = path.join(dir, 'model.safetensors.index.json');
    const good = fs.readFileSync(file, 'utf8');
    const variants = [
      '{"weight_map": ',
      good.replace('"weight_map": {', '"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",'),
      '{"metadata": {}}',
      JSON.stringify({ weight_map: { 'model.norm.weight': '../model-00001-of-00002.safetensors' } }),
    ];
    const messages: string[] = [];
    for (const v of variants) {
      fs.writeFileSync(file, v);
      const e = await rejection(dir);
      expect(e.code).toBe('ERR_SHARD_INDEX');
      expect(e.message).toContain(file);
      messages.push(e.message);
    }
    expect(messages[1]).toMatch(/duplicate key 'model\.norm\.weight'/);
    expect(messages[3]).toMatch(/shard file name in the same directory/);
  });

  it('a stale metadata.total_size is a warning, not an error', async () => {
    const dir = await fresh({ shards: 2 });
    const idx = readIndex(dir);
    idx.metadata.total_size = 1;
    writeIndex(dir, idx);
    const ck = await openCheckpoint(dir);
    expect(ck.warnings.join('\n')).toMatch(/total_size is 1/);
  });

  it('with both model.safetensors and an index, the single file wins (as in transformers) with a warning', async () => {
    const dir = await fresh();
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{}');
    const ck = await openCheckpoint(dir);
    expect(ck.index).toBeUndefined();
    expect(ck.warnings.join('\n')).toMatch(/ignored because model\.safetensors is present/);
  });

  it('ERR_NO_WEIGHTS: no safetensors at all, with a hint about .bin files', async () => {
    const dir = await fresh();
    fs.rmSync(path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_NO_WEIGHTS');
    expect(e.message).toMatch(/pytorch_model\.bin/);
  });

  it('ERR_CONFIG: no config.json; ERR_CHECKPOINT_DIR: a file instead of a directory', async () => {
    const dir = await fresh();
    fs.rmSync(path.join(dir, 'config.json'));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toContain(path.join(dir, 'config.json'));
    expect((await rejection(path.join(dir, 'README.md'))).code).toBe('ERR_CHECKPOINT_DIR');
  });

  it('a corrupt shard header is reported with the shard\'s path', async () => {
    const dir = await fresh({ shards: 2 });
    const shard = path.join(dir, 'model-00001-of-00002.safetensors');
    fs.appendFileSync(shard, Buffer.from([0]));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_SAFETENSORS_FILE_LENGTH');
    expect(e.message).toContain(shard);
  });
});

describe('architecture table check', () => {
  it('ERR_TENSOR_MISSING names the tensor, the expected shape and the checkpoint', async () => {
    const dir = await fresh();
    await rewriteSingle(dir, (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_TENSOR_MISSING');
    expect(e.message).toMatch(/'model\.layers\.1\.mlp\.up_proj\.weight' \(expected shape \[48, 32\]/);
    expect(e.message).toContain(dir);
  });

  it('ERR_TENSOR_MISSING: an untied checkpoint without lm_head', async () => {
    const dir = await fresh();
    await rewriteSingle(dir, (ts) => ts.filter((t) => t.name !== 'lm_head.weight'));
    expect((await rejection(dir)).message).toMatch(/'lm_head\.weight'/);
  });

  it('ERR_TENSOR_SHAPE names tensor, file, actual and expected shapes', async () => {
    const dir = await fresh();
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    cfg.intermediate_size = 50;
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_TENSOR_SHAPE');
    expect(e.message).toMatch(/model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[48, 32\].*expects \[50, 32\]/);
  });

  it('an unknown tensor is a warning naming it; a layer beyond num_hidden_layers says so', async () => {
    const dir = await fresh();
    await rewriteSingle(dir, (ts) => [...ts,
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [4], data: Buffer.alloc(16) },
      { name: 'model.layers.9.mlp.up_proj.weight', dtype: 'F32', shape: [1], data: Buffer.alloc(4) }]);
    // A tensor of a layer past num_hidden_layers is refused by default (issue 10, item 6: scoring
    // only the declared layers would silently ignore it), naming both counts.
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_TENSOR_LAYER');
    expect(e.message).toMatch(/'model\.layers\.9\.mlp\.up_proj\.weight' belongs to layer 9, but config\.json has num_hidden_layers = 2 while the checkpoint has tensors of 3 layers, up to layer 9/);
    // inspect's mode: the refusal is handed over, and the rest is still described.
    const refused: ShortGptError[] = [];
    const ck = await openCheckpoint(dir, { onExtraLayers: (x) => refused.push(x) });
    expect(refused.map((x) => x.code)).toEqual(['ERR_TENSOR_LAYER']);
    expect(ck.warnings).toHaveLength(2);
    expect(ck.warnings[0]).toMatch(/unknown tensor 'model\.layers\.0\.self_attn\.rotary_emb\.inv_freq' F32 \[4\]/);
    expect(ck.warnings[1]).toMatch(/layer 9 is beyond num_hidden_layers 2/);
  });

  it('ERR_SAFETENSORS_DTYPE: a layer tensor stored as I8', async () => {
    const dir = await fresh();
    await rewriteSingle(dir, (ts) => ts.map((t) => (t.name === 'model.layers.0.self_attn.v_proj.weight' ? { ...t, dtype: 'I8', data: t.data.subarray(0, t.data.length / 4) } : t)));
    const e = await rejection(dir);
    expect(e.code).toBe('ERR_SAFETENSORS_DTYPE');
    expect(e.message).toMatch(/'model\.layers\.0\.self_attn\.v_proj\.weight' has dtype I8/);
  });

  it('Baichuan needs W_pack, not q/k/v; Qwen2 needs the q/k/v biases', async () => {
    const dir = await fresh({ architecture: 'BaichuanForCausalLM' });
    const ck = await openCheckpoint(dir);
    expect(layerTensors(ck, 0).get('W_pack')!.shape).toEqual([96, 32]);
    const q2 = await fresh({ architecture: 'Qwen2ForCausalLM' });
    await rewriteSingle(q2, (ts) => ts.filter((t) => t.name !== 'model.layers.0.self_attn.k_proj.bias'));
    expect((await rejection(q2)).message).toMatch(/'model\.layers\.0\.self_attn\.k_proj\.bias' \(expected shape \[16\]/);
  });
});

describe('architecture table helpers', () => {
  it('layerIndexOf parses model.layers.<N>. and nothing else', () => {
    expect(layerIndexOf('model.layers.12.mlp.up_proj.weight')).toBe(12);
    expect(layerIndexOf('model.layers.0.input_layernorm.weight')).toBe(0);
    expect(layerIndexOf('model.layers.01.x')).toBeNull();
    expect(layerIndexOf('model.layers.x.y')).toBeNull();
    expect(layerIndexOf('model.norm.weight')).toBeNull();
    expect(layerIndexOf('lm_head.weight')).toBeNull();
    expect(layerTensorName(3, 'mlp.up_proj.weight')).toBe('model.layers.3.mlp.up_proj.weight');
  });

  it('specs follow the config: GQA, explicit head_dim, biases, tying', async () => {
    const ck = await openCheckpoint(stories260kDir);
    const specs = layerTensorSpecs(ck.config, 2);
    expect(specs.find((s) => s.role === 'k_proj')).toEqual({ role: 'k_proj', name: 'model.layers.2.self_attn.k_proj.weight', shape: [32, 64] });
    expect(specs.find((s) => s.role === 'o_proj')!.shape).toEqual([64, 64]);
    expect(globalTensorSpecs(ck.config).map((g) => g.name)).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
    const biased = layerTensorSpecs({ ...ck.config, attentionBias: true }, 0).filter((s) => s.name.endsWith('.bias'));
    expect(biased.map((s) => [s.role, s.shape])).toEqual([['q_bias', [64]], ['k_bias', [32]], ['v_bias', [32]], ['o_bias', [64]]]);
    const qwen2 = layerTensorSpecs({ ...ck.config, architecture: 'Qwen2ForCausalLM', attentionBias: true }, 0);
    expect(qwen2.some((s) => s.role === 'o_bias')).toBe(false);
  });
});
