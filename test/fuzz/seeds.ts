/**
 * Writes the seed corpus test/fuzz/corpus/<target>/seed-* (committed; rerun after a format change):
 *   node -r ./test/prune/helpers/tsRequire.js test/fuzz/seeds.ts
 * Seeds: the raw-byte fixtures of test/checkpoint/safetensors.test.ts, tiny generated checkpoints
 * of every architecture (their safetensors files, shard indexes and config.json), and the
 * config.json variants of test/checkpoint/config.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCheckpoint, SHORT_ARCH, type GenDType } from '../../scripts/generate-checkpoint';
import { corpusDir, type TargetName } from './targets';

function put(target: TargetName, name: string, bytes: Buffer | string): void {
  fs.writeFileSync(path.join(corpusDir(target), `seed-${name}`), bytes);
}

/** 8-byte little-endian header length + header + data (as in safetensors.test.ts). */
function raw(header: string, data = 0, length?: bigint): Buffer {
  const h = Buffer.from(header, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  return Buffer.concat([prefix, h, Buffer.alloc(data)]);
}
const T = (dtype: string, shape: unknown, offs: unknown): string => JSON.stringify({ dtype, shape, data_offsets: offs });

async function main(): Promise<void> {
  for (const t of ['safetensors', 'shard-index', 'config'] as const) {
    fs.rmSync(corpusDir(t), { recursive: true, force: true });
    fs.mkdirSync(corpusDir(t), { recursive: true });
  }
  // safetensors.test.ts fixtures: valid files, then one per rule.
  put('safetensors', 'valid-metadata', raw(`{"__metadata__":{"format":"pt"},"b":${T('F16', [2, 3], [16, 28])},"a":${T('F32', [4], [0, 16])}}    `, 28));
  put('safetensors', 'valid-proto-scalar-zero', raw(`{"__proto__":${T('F32', [], [0, 4])},"z":${T('BF16', [0, 5], [4, 4])},"i":${T('I64', [1], [4, 12])}}`, 12));
  put('safetensors', 'empty', raw('{}'));
  put('safetensors', 'too-small', Buffer.from([2, 0, 0, 0, 0, 0, 0]));
  put('safetensors', 'length-huge', raw('{}', 0, 2n ** 64n - 1n));
  put('safetensors', 'bad-utf8', Buffer.concat([raw(''), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])]).fill(7, 0, 1));
  put('safetensors', 'duplicate', raw(`{"w":${T('F32', [1], [0, 4])},"w":${T('F32', [1], [4, 8])}}`, 8));
  put('safetensors', 'escaped-duplicate', raw(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"\\u0064type":"F16"}}`, 4));
  put('safetensors', 'metadata-number', raw(`{"__metadata__":{"format":"pt","step":3}}`));
  put('safetensors', 'shape-huge', raw(`{"w":${T('F32', [2 ** 40, 2 ** 40], [0, 4])}}`, 4));
  put('safetensors', 'overlap', raw(`{"a":${T('F32', [2], [0, 8])},"b":${T('F32', [2], [4, 12])}}`, 12));
  put('safetensors', 'trailing-bytes', raw(`{"w":${T('F32', [1], [0, 4])}}`, 5));

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-seeds-'));
  try {
    const dtypes: GenDType[] = ['F32', 'BF16', 'F16', 'F32', 'BF16'];
    const archs = Object.entries(SHORT_ARCH);
    for (const [i, [short, architecture]] of archs.entries()) {
      const dir = path.join(work, short);
      await generateCheckpoint(dir, {
        architecture, dtype: dtypes[i]!, shards: i % 2 === 0 ? 2 : 1, layers: 2, hiddenSize: 8, intermediateSize: 16, vocabSize: 16,
        numAttentionHeads: 2, numKeyValueHeads: architecture === 'BaichuanForCausalLM' ? 2 : 1, headDim: architecture === 'Qwen3ForCausalLM' ? 4 : undefined,
        ropeScaling: short === 'llama' ? 'llama3' : short === 'qwen2' ? 'linear' : 'none', slidingWindow: short === 'mistral' || short === 'qwen3' ? 8 : undefined,
      });
      put('config', short, fs.readFileSync(path.join(dir, 'config.json')));
      for (const f of fs.readdirSync(dir).sort()) {
        if (f.endsWith('.safetensors')) put('safetensors', `${short}-${f.replace(/\.safetensors$/, '')}`, fs.readFileSync(path.join(dir, f)));
        if (f.endsWith('.index.json')) put('shard-index', short, fs.readFileSync(path.join(dir, f)));
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  put('shard-index', 'no-metadata', JSON.stringify({ weight_map: { 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors', 'lm_head.weight': 'model-00002-of-00002.safetensors' } }));
  put('shard-index', 'path-escape', JSON.stringify({ metadata: { total_size: 8 }, weight_map: { a: '../model.safetensors' } }));

  // config.test.ts variants and the bundled real model.
  put('config', 'stories260k', fs.readFileSync(path.join(__dirname, '..', '..', 'assets', 'stories260k', 'config.json')));
  const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 8, vocab_size: 100 };
  put('config', 'model-type-only', JSON.stringify({ model_type: 'qwen3', ...base }));
  put('config', 'baichuan1', JSON.stringify({ architectures: ['BaiChuanForCausalLM'], ...base }));
  put('config', 'baichuan13b', JSON.stringify({ architectures: ['BaichuanForCausalLM'], model_type: 'baichuan', hidden_size: 5120, intermediate_size: 13696, num_hidden_layers: 40, num_attention_heads: 40, vocab_size: 125696, model_max_length: 4096 }));
  put('config', 'qwen2-layer-types', JSON.stringify({ architectures: ['Qwen2ForCausalLM'], ...base, use_sliding_window: true, sliding_window: 16, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], eos_token_id: [1, 2] }));
  put('config', 'rope-parameters', JSON.stringify({ architectures: ['LlamaForCausalLM'], ...base, rope_parameters: { rope_type: 'yarn', rope_theta: 500000, factor: 4 } }));
}

void main();
