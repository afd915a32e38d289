import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { inspectCheckpoint } from '../../lib/checkpoint/inspect';
import { generateCheckpoint, SHORT_ARCH, type GenDType } from '../../scripts/generate-checkpoint';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-inspect-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('inspect on the real stories260k', () => {
  it('reports 5 layers and 260,032 parameters (JSON)', async () => {
    const io = capture();
    expect(await main(['inspect', stories260kDir, '--json'], io)).toBe(0);
    const r = JSON.parse(io.out());
    expect(r).toMatchObject({
      architecture: 'LlamaForCausalLM', modelType: 'llama', layers: 5, hiddenSize: 64, numAttentionHeads: 8, numKeyValueHeads: 4,
      headDim: 8, intermediateSize: 172, vocabSize: 512, tieWordEmbeddings: true, dtypes: { F32: 47 }, sharded: false,
      totalParameters: 260032, globalParameters: 512 * 64 + 64, files: ['model.safetensors'], warnings: [],
    });
    // Per layer: 2 norms (64) + q,o (64x64) + k,v (32x64) + gate,up,down (172x64): 45,440.
    expect(r.parametersPerLayer).toEqual([45440, 45440, 45440, 45440, 45440]);
    expect(r.bytesOnDisk).toBe(fs.statSync(path.join(stories260kDir, 'model.safetensors')).size);
    // The JSON field names are an interface: changing them breaks users' scripts.
    expect(Object.keys(r).sort()).toEqual([
      'architecture', 'bytesOnDisk', 'dir', 'dtypes', 'errors', 'files', 'globalParameters', 'headDim', 'hiddenSize', 'intermediateSize', 'layers',
      'modelType', 'numAttentionHeads', 'numKeyValueHeads', 'parametersPerLayer', 'ropeScaling', 'sharded', 'slidingWindow',
      'tensorCount', 'tieWordEmbeddings', 'totalParameters', 'vocabSize', 'warnings',
    ]);
  });

  it('prints a human-readable summary', async () => {
    const io = capture();
    expect(await main(['inspect', stories260kDir], io)).toBe(0);
    expect(io.out()).toMatch(/architecture\s+LlamaForCausalLM/);
    expect(io.out()).toMatch(/260,032 total; 45,440 per layer/);
  });

  it('exits 1 naming the directory when it is not a checkpoint, 2 without MODEL_DIR', async () => {
    const io = capture();
    expect(await main(['inspect', path.join(tmp, 'nope')], io)).toBe(1);
    expect(io.err()).toMatch(/ERR_CHECKPOINT_DIR.*nope/);
    const io2 = capture();
    expect(await main(['inspect'], io2)).toBe(2);
    expect(io2.err()).toMatch(/MODEL_DIR/);
  });
});

/** Parameters of one layer computed from the generator's defaults, independently of the table. */
function expectedLayerParams(arch: string): number {
  const h = 32, inter = 48, heads = 4;
  const kv = arch === 'baichuan' ? 4 : 2;
  const hd = arch === 'qwen3' ? 16 : h / heads;
  const norms = 2 * h;
  const mlp = 3 * h * inter;
  if (arch === 'baichuan') return norms + 3 * h * h + h * h + mlp;
  const attn = 2 * heads * hd * h + 2 * kv * hd * h;
  const bias = arch === 'qwen2' ? heads * hd + 2 * kv * hd : 0;
  const qk = arch === 'qwen3' ? 2 * hd : 0;
  return norms + attn + bias + qk + mlp;
}

describe('inspect on generated variants', () => {
  it('a tied llama has no lm_head; llama3 rope scaling and a Qwen2 window are reported', async () => {
    const tied = path.join(tmp, 'tied');
    await generateCheckpoint(tied, { architecture: 'LlamaForCausalLM', dtype: 'F32', tie: true, ropeScaling: 'llama3', layers: 2 });
    const r = await inspectCheckpoint(tied);
    expect(r).toMatchObject({ tieWordEmbeddings: true, globalParameters: 96 * 32 + 32, tensorCount: 2 * 9 + 2, ropeScaling: { type: 'llama3', factor: 4 } });
    const q2 = path.join(tmp, 'q2sw');
    await generateCheckpoint(q2, { architecture: 'Qwen2ForCausalLM', dtype: 'F16', slidingWindow: 6, layers: 2, shards: 2 });
    expect(await inspectCheckpoint(q2)).toMatchObject({ slidingWindow: 6, sharded: true, dtypes: { F16: 2 * 12 + 3 } });
    // Llama/Qwen3 attention_bias: q/k/v biases plus an o_proj bias of [hidden]
    const biased = path.join(tmp, 'q3bias');
    await generateCheckpoint(biased, { architecture: 'Qwen3ForCausalLM', dtype: 'BF16', attentionBias: true, layers: 1 });
    expect((await inspectCheckpoint(biased)).parametersPerLayer).toEqual([expectedLayerParams('qwen3') + 4 * 16 + 2 * 2 * 16 + 32]);
  });
});

const cases: [string, GenDType, number][] = [];
for (const arch of Object.keys(SHORT_ARCH)) for (const dtype of ['F32', 'F16', 'BF16'] as GenDType[]) for (const shards of [1, 3]) cases.push([arch, dtype, shards]);

describe.each(cases)('inspect on generated %s %s, %i shard(s)', (arch, dtype, shards) => {
  it('reports the generated shape, dtype, parameters and files', async () => {
    const dir = path.join(tmp, `${arch}-${dtype}-${shards}`);
    await generateCheckpoint(dir, { architecture: SHORT_ARCH[arch]!, dtype, shards });
    const r = await inspectCheckpoint(dir);
    const perLayer = expectedLayerParams(arch);
    const global = 96 * 32 * 2 + 32; // embeddings + untied lm_head + final norm
    const tensorsPerLayer = { llama: 9, mistral: 9, qwen2: 12, qwen3: 11, baichuan: 7 }[arch]!;
    expect(r).toMatchObject({
      architecture: SHORT_ARCH[arch], layers: 4, hiddenSize: 32, vocabSize: 96, intermediateSize: 48,
      numKeyValueHeads: arch === 'baichuan' ? 4 : 2, headDim: arch === 'qwen3' ? 16 : 8,
      dtypes: { [dtype]: 4 * tensorsPerLayer + 3 }, tensorCount: 4 * tensorsPerLayer + 3,
      parametersPerLayer: [perLayer, perLayer, perLayer, perLayer], globalParameters: global,
      totalParameters: 4 * perLayer + global, sharded: shards > 1, warnings: [],
    });
    expect(r.files).toHaveLength(shards);
    const bytes = r.files.reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
    expect(r.bytesOnDisk).toBe(bytes);
    const width = dtype === 'F32' ? 4 : 2;
    expect(bytes).toBeGreaterThan(r.totalParameters * width);
    if (arch === 'mistral') expect(r.slidingWindow).toBe(8);
  });
});
