/**
 * Deterministic generator of small random-weight checkpoints for every supported architecture,
 * dtype (F32, F16, BF16) and layout (single file or sharded), in the Hugging Face format:
 * config.json, model.safetensors or model-0000K-of-0000N.safetensors + index, and a few side files
 * (tokenizer_config.json, generation_config.json, README.md) so copy-through can be tested.
 *
 *   node dist/scripts/generate-checkpoint.js OUT --arch qwen3 --dtype bf16 --shards 3
 *
 * Weights ~ N(0, 1/sqrt(fan_in)) keep hidden states well-conditioned through the layers; norm
 * weights are 1 + small noise (Gemma, whose norms scale by 1 + w, reads them as about 2); biases
 * are small. The same options give the same bytes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { EMBED_TOKENS, LM_HEAD, globalTensorSpecs, layerTensorSpecs } from '../lib/checkpoint/architectures';
import { resolveConfig } from '../lib/checkpoint/config';
import { f32ToBf16Bits, f32ToF16Bits } from '../lib/checkpoint/halfFloat';
import { DTYPE_BYTES } from '../lib/checkpoint/safetensors';
import { encodeSafetensorsHeader } from '../lib/checkpoint/safetensorsHeader';
import type { Architecture, DType, ModelConfig } from '../lib/checkpoint/types';
import { hash32, mulberry32, normalSource } from './gen-random';

export type GenDType = 'F32' | 'F16' | 'BF16';

export interface GenerateOptions {
  architecture: Architecture;
  dtype: GenDType;
  /** 1 (default) = model.safetensors; N > 1 = N shards + model.safetensors.index.json. */
  shards?: number;
  layers?: number;
  seed?: number;
  /** tie_word_embeddings (ignored for Baichuan, which never ties). */
  tie?: boolean;
  /** 'longrope': Phi-3 only (short/long factors, original_max_position_embeddings = max / 4). */
  ropeScaling?: 'none' | 'linear' | 'llama3' | 'longrope';
  /** Phi-3 only: partial_rotary_factor (default: not written, i.e. 1). */
  partialRotaryFactor?: number;
  /** Mistral: sliding_window (default 8); Qwen2/3: turns use_sliding_window on for every layer. */
  slidingWindow?: number;
  hiddenSize?: number;
  intermediateSize?: number;
  vocabSize?: number;
  numAttentionHeads?: number;
  numKeyValueHeads?: number;
  /** Llama/Qwen3 `attention_bias`: q/k/v and o_proj biases (Qwen2 always has q/k/v biases). */
  attentionBias?: boolean;
  /** Qwen3 only: default 16, deliberately not hidden / heads. */
  headDim?: number;
  maxPositionEmbeddings?: number;
  /**
   * Baichuan only: write Baichuan 1's class name `BaiChuanForCausalLM` (plain linear lm_head)
   * instead of Baichuan 2's `BaichuanForCausalLM` (NormHead: lm_head rows normalised). Same tensors.
   */
  baichuan1?: boolean;
  /**
   * Granite only: embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling
   * (default 2.5, 0.6, 0.5, 1.7: each far enough from 1 and from 1/sqrt(head_dim) that a
   * forgotten or misplaced one fails the parity tolerances).
   */
  graniteMultipliers?: { embedding: number; residual: number; attention: number; logitsScaling: number };
  /**
   * Gemma 2 only: attn_logit_softcapping and final_logit_softcapping (default 3.5 and 4.5: small
   * enough that capping changes this tiny model's numbers; Gemma 2's own are 50 and 30). Not whole
   * numbers: JSON writes those as ints, which Gemma2Config's strict float fields refuse.
   */
  gemmaSoftcaps?: { attention: number | null; final: number | null };
  /**
   * Mixtral / Qwen3-MoE: experts (default 4), experts per token (2), Qwen3-MoE's
   * moe_intermediate_size (default 24), norm_topk_prob (default true, as Qwen3-30B-A3B),
   * decoder_sparse_step (1) and mlp_only_layers ([]); Mixtral's experts are intermediate_size wide.
   */
  moe?: { experts?: number; topK?: number; intermediate?: number; normTopk?: boolean; sparseStep?: number; mlpOnly?: number[] };
  /** SmolLM3 only: no_rope_layer_interval (default 2, so that a 3-layer model has a no-RoPE layer); the list is written out as SmolLM3Config does. */
  noRopeInterval?: number;
}

export const SHORT_ARCH: Record<string, Architecture> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', baichuan: 'BaichuanForCausalLM',
};

/**
 * Issue 14's architectures, apart from SHORT_ARCH: suites that run every SHORT_ARCH entry with
 * per-architecture expectations (inspect, rewrite, fuzz seeds) cover the first five; these are
 * covered by test/helpers/checkpointCases.ts and test/engine/arch-dense.test.ts.
 */
export const MORE_SHORT_ARCH: Record<string, Architecture> = {
  granite: 'GraniteForCausalLM', smollm3: 'SmolLM3ForCausalLM', olmo2: 'Olmo2ForCausalLM', phi3: 'Phi3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM', gemma3: 'Gemma3ForCausalLM', mixtral: 'MixtralForCausalLM', qwen3moe: 'Qwen3MoeForCausalLM',
};

const TORCH_DTYPE: Record<GenDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The config.json a transformers save_pretrained would write for these options. */
export function generatedConfigJson(opts: GenerateOptions): Record<string, unknown> {
  const arch = opts.architecture;
  const layers = opts.layers ?? 4;
  const gemma = arch === 'Gemma2ForCausalLM' || arch === 'Gemma3ForCausalLM';
  // Gemma scales embeddings by sqrt(hidden) rounded to the weights' dtype; 64 (sqrt 8) is exact
  // in every dtype, so a float64 run of the same checkpoint scales identically.
  const hidden = opts.hiddenSize ?? (gemma ? 64 : 32);
  const heads = opts.numAttentionHeads ?? 4;
  const kvHeads = arch === 'BaichuanForCausalLM' ? heads : opts.numKeyValueHeads ?? 2;
  const maxPos = opts.maxPositionEmbeddings ?? 128;
  const className = arch === 'BaichuanForCausalLM' && opts.baichuan1 ? 'BaiChuanForCausalLM' : arch;
  const base: Record<string, unknown> = {
    architectures: [className],
    hidden_size: hidden,
    intermediate_size: opts.intermediateSize ?? 48,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    vocab_size: opts.vocabSize ?? 96,
    max_position_embeddings: maxPos,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    tie_word_embeddings: arch === 'BaichuanForCausalLM' ? false : opts.tie ?? false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: TORCH_DTYPE[opts.dtype],
    initializer_range: 0.02,
    use_cache: true,
  };
  const scaling = opts.ropeScaling ?? 'none';
  const ropeScaling = scaling === 'linear' ? { type: 'linear', factor: 2.0 }
    : scaling === 'llama3' ? { rope_type: 'llama3', factor: 4.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: Math.max(1, Math.floor(maxPos / 4)) }
      : null;
  const layerTypes = (t: string): string[] => new Array<string>(layers).fill(t);
  switch (arch) {
    case 'LlamaForCausalLM':
      return { ...base, model_type: 'llama', num_key_value_heads: kvHeads, rope_theta: 10000.0, rope_scaling: ropeScaling, attention_bias: opts.attentionBias ?? false, mlp_bias: false };
    case 'MistralForCausalLM':
      return { ...base, model_type: 'mistral', num_key_value_heads: kvHeads, rope_theta: 10000.0, rope_scaling: ropeScaling, sliding_window: opts.slidingWindow ?? 8 };
    case 'Qwen2ForCausalLM':
    case 'Qwen3ForCausalLM': {
      const sliding = opts.slidingWindow !== undefined;
      const common = {
        ...base, num_key_value_heads: kvHeads, rope_theta: 1000000.0, rope_scaling: ropeScaling,
        use_sliding_window: sliding, sliding_window: sliding ? opts.slidingWindow : null, max_window_layers: sliding ? 0 : layers,
        layer_types: layerTypes(sliding ? 'sliding_attention' : 'full_attention'),
      };
      return arch === 'Qwen2ForCausalLM'
        ? { ...common, model_type: 'qwen2' }
        : { ...common, model_type: 'qwen3', head_dim: opts.headDim ?? 16, attention_bias: opts.attentionBias ?? false };
    }
    case 'GraniteForCausalLM': {
      const m = opts.graniteMultipliers ?? { embedding: 2.5, residual: 0.6, attention: 0.5, logitsScaling: 1.7 };
      return { ...base, model_type: 'granite', num_key_value_heads: kvHeads, rope_theta: 10000.0, rope_scaling: ropeScaling, attention_bias: opts.attentionBias ?? false, mlp_bias: false,
        embedding_multiplier: m.embedding, residual_multiplier: m.residual, attention_multiplier: m.attention, logits_scaling: m.logitsScaling };
    }
    case 'SmolLM3ForCausalLM': {
      // SmolLM3Config.__post_init__ writes no_rope_layers (1 = RoPE) and layer_types out in full.
      const interval = opts.noRopeInterval ?? 2;
      const sliding = opts.slidingWindow !== undefined;
      // pad_token_id: SmolLM3Config's default (128004) is outside a small test vocabulary.
      return { ...base, model_type: 'smollm3', pad_token_id: null, num_key_value_heads: kvHeads, rope_theta: 2000000.0, rope_scaling: ropeScaling, attention_bias: opts.attentionBias ?? false, mlp_bias: false,
        no_rope_layer_interval: interval, no_rope_layers: Array.from({ length: layers }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0)),
        use_sliding_window: sliding, sliding_window: sliding ? opts.slidingWindow : null, layer_types: layerTypes(sliding ? 'sliding_attention' : 'full_attention') };
    }
    case 'Phi3ForCausalLM': {
      // Phi3Config: pad_token_id's default (32000) is outside a small vocabulary; the LongRoPE
      // factors are distinct per frequency, short ones near 1, long ones growing, as in Phi-3.5's.
      const headDim = hidden / heads;
      const half = Math.floor(headDim * (opts.partialRotaryFactor ?? 1)) / 2;
      const original = Math.max(1, Math.floor(maxPos / 4));
      const longrope = scaling === 'longrope' ? {
        rope_scaling: { type: 'longrope', short_factor: Array.from({ length: half }, (_, i) => 1 + 0.05 * i), long_factor: Array.from({ length: half }, (_, i) => 1 + 1.5 * i) },
        original_max_position_embeddings: original,
      } : { rope_scaling: ropeScaling, original_max_position_embeddings: maxPos };
      return { ...base, model_type: 'phi3', pad_token_id: null, num_key_value_heads: kvHeads, rope_theta: 10000.0, ...longrope,
        ...(opts.partialRotaryFactor !== undefined ? { partial_rotary_factor: opts.partialRotaryFactor } : {}),
        sliding_window: opts.slidingWindow ?? null, resid_pdrop: 0.0, embd_pdrop: 0.0, attention_dropout: 0.0 };
    }
    case 'Gemma2ForCausalLM':
    case 'Gemma3ForCausalLM': {
      // layer_types written out as the config classes do: Gemma 2 alternates sliding and full;
      // here Gemma 3 makes every third layer full (its default pattern, 6, would leave a 3-layer
      // model without one). Sliding window 20 (shorter than the longer test sequences),
      // query_pre_attn_scalar 24 (not head_dim 16); Gemma 3's global layers take rope_theta 1e6
      // with Gemma 3 4B's linear scaling x8, its sliding layers rope_local_base_freq 1e4.
      const gemma3 = arch === 'Gemma3ForCausalLM';
      const caps = opts.gemmaSoftcaps ?? { attention: 3.5, final: 4.5 };
      const types = Array.from({ length: layers }, (_, i) => ((i + 1) % (gemma3 ? 3 : 2) ? 'sliding_attention' : 'full_attention'));
      const common = { ...base, num_key_value_heads: kvHeads, head_dim: opts.headDim ?? hidden / heads, hidden_activation: 'gelu_pytorch_tanh', hidden_act: 'gelu_pytorch_tanh',
        query_pre_attn_scalar: 24, sliding_window: opts.slidingWindow ?? 20, layer_types: types, attention_bias: opts.attentionBias ?? false, pad_token_id: 0 };
      return gemma3
        ? { ...common, model_type: 'gemma3_text', rope_theta: 1000000.0, rope_local_base_freq: 10000.0, rope_scaling: { rope_type: 'linear', factor: 8.0 },
          attn_logit_softcapping: null, final_logit_softcapping: null }
        : { ...common, model_type: 'gemma2', rope_theta: 10000.0, attn_logit_softcapping: caps.attention, final_logit_softcapping: caps.final };
    }
    case 'MixtralForCausalLM':
      return { ...base, model_type: 'mixtral', num_key_value_heads: kvHeads, rope_theta: 1000000.0, rope_scaling: ropeScaling, sliding_window: opts.slidingWindow ?? null,
        num_local_experts: opts.moe?.experts ?? 4, num_experts_per_tok: opts.moe?.topK ?? 2 };
    case 'Qwen3MoeForCausalLM':
      return { ...base, model_type: 'qwen3_moe', num_key_value_heads: kvHeads, head_dim: opts.headDim ?? 16, rope_theta: 1000000.0, rope_scaling: ropeScaling,
        attention_bias: opts.attentionBias ?? false, use_sliding_window: opts.slidingWindow !== undefined, sliding_window: opts.slidingWindow ?? null,
        num_experts: opts.moe?.experts ?? 4, num_experts_per_tok: opts.moe?.topK ?? 2, moe_intermediate_size: opts.moe?.intermediate ?? 24,
        norm_topk_prob: opts.moe?.normTopk ?? true, decoder_sparse_step: opts.moe?.sparseStep ?? 1, mlp_only_layers: opts.moe?.mlpOnly ?? [] };
    case 'Olmo2ForCausalLM':
      // Olmo2Config's pad_token_id default (1) is a valid id here; no bos by default.
      return { ...base, model_type: 'olmo2', num_key_value_heads: kvHeads, rope_theta: 500000.0, rope_scaling: ropeScaling, attention_bias: opts.attentionBias ?? false };
    case 'BaichuanForCausalLM':
      // Baichuan 7B's remote-code config: no num_key_value_heads, no rope_theta (10000 fixed).
      return { ...base, model_type: 'baichuan', model_max_length: maxPos, pad_token_id: 0,
        auto_map: { AutoConfig: 'configuration_baichuan.BaichuanConfig', AutoModelForCausalLM: `modeling_baichuan.${className}` } };
  }
}

/** 'head-varied': a matrix whose rows are then scaled by different factors (see values()). */
interface PlannedTensor { name: string; shape: number[]; init: 'matrix' | 'norm' | 'bias' | 'embedding' | 'head-varied' }

/** Every tensor in the order transformers writes them: embeddings, layers, final norm, lm_head. */
function plan(config: ModelConfig): PlannedTensor[] {
  const kind = (name: string, shape: number[]): PlannedTensor['init'] => {
    if (name === EMBED_TOKENS) return 'embedding';
    // Baichuan's lm_head gets rows of visibly different norms, so that Baichuan 2's NormHead
    // (which divides them out) changes the logits measurably; N(0, 1/fan_in) rows all have norm ~1.
    if (name === LM_HEAD && config.architecture === 'BaichuanForCausalLM') return 'head-varied';
    if (name.endsWith('.bias')) return 'bias';
    return shape.length === 1 ? 'norm' : 'matrix';
  };
  const globals = globalTensorSpecs(config);
  const out: PlannedTensor[] = [];
  const add = (name: string, shape: number[]): void => { out.push({ name, shape, init: kind(name, shape) }); };
  add(globals[0]!.name, globals[0]!.shape);
  for (let l = 0; l < config.numHiddenLayers; l++) for (const s of layerTensorSpecs(config, l)) add(s.name, s.shape);
  for (const g of globals.slice(1)) add(g.name, g.shape);
  return out;
}

/** Values for one tensor, from a seed derived from the run's seed and the tensor's name. */
function values(t: PlannedTensor, seed: number): Float32Array {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const normal = normalSource(mulberry32((seed ^ hash32(t.name)) >>> 0));
  const out = new Float32Array(n);
  const fanIn = t.shape[t.shape.length - 1] ?? 1;
  const std = t.init === 'matrix' || t.init === 'head-varied' ? 1 / Math.sqrt(fanIn) : t.init === 'embedding' ? 1 : t.init === 'bias' ? 0.02 : 0.05;
  const mean = t.init === 'norm' ? 1 : 0;
  for (let i = 0; i < n; i++) out[i] = mean + std * normal();
  if (t.init === 'head-varied') {
    // Row norms spread over about [0.25, 4] (log-normal), drawn after the values.
    for (let r = 0; r * fanIn < n; r++) {
      const scale = Math.exp(0.7 * normal());
      for (let j = r * fanIn; j < (r + 1) * fanIn; j++) out[j] *= scale;
    }
  }
  return out;
}

export function encodeValues(v: Float32Array, dtype: GenDType): Buffer {
  if (dtype === 'F32') return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const half = new Uint16Array(v.length);
  const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < v.length; i++) half[i] = conv(v[i]!);
  return Buffer.from(half.buffer);
}

export interface TensorToWrite { name: string; dtype: DType; shape: number[]; data: Buffer }

/** Writes a safetensors file holding `tensors` in order. No validation: tests use it for broken files too. */
export function writeTensorFile(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const header = encodeSafetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.data.length })), metadata);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, header);
    for (const t of tensors) fs.writeSync(fd, t.data);
  } finally {
    fs.closeSync(fd);
  }
}

/** Contiguous groups of tensors of about equal bytes, none empty. */
function splitIntoShards(sizes: number[], shards: number): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const assign: number[] = [];
  let start = 0;
  let prev = 0;
  sizes.forEach((size, i) => {
    let k = Math.min(shards - 1, Math.floor((start * shards) / Math.max(total, 1)));
    k = Math.min(Math.max(k, prev), prev + 1);
    if (i > 0 && sizes.length - i <= shards - 1 - prev) k = prev + 1; // leave one tensor per remaining shard
    if (i === 0) k = 0;
    assign.push(k);
    prev = k;
    start += size;
  });
  return assign;
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function generateCheckpoint(dir: string, opts: GenerateOptions): Promise<void> {
  if (os.endianness() !== 'LE') throw new Error('generate-checkpoint writes little-endian tensors and needs a little-endian host');
  const shards = opts.shards ?? 1;
  const seed = opts.seed ?? 1234;
  const rawConfig = generatedConfigJson(opts);
  const configFile = path.join(dir, 'config.json');
  const config = resolveConfig(rawConfig, configFile);
  const tensors = plan(config);
  if (!Number.isSafeInteger(shards) || shards < 1 || shards > tensors.length) {
    throw new Error(`shards must be between 1 and ${tensors.length} (the tensor count), got ${shards}`);
  }
  fs.mkdirSync(dir, { recursive: true });
  writeJson(configFile, rawConfig);
  writeJson(path.join(dir, 'generation_config.json'), { _from_model_config: true, bos_token_id: 1, eos_token_id: 2 });
  writeJson(path.join(dir, 'tokenizer_config.json'), { model_max_length: config.maxPositionEmbeddings, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'LlamaTokenizer' });
  fs.writeFileSync(path.join(dir, 'README.md'), `# Generated test checkpoint\n\n${config.architecture}, ${opts.dtype}, ${config.numHiddenLayers} layers, seed ${seed}. Random weights: not a language model.\n`);

  const bytes = tensors.map((t) => t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[opts.dtype]);
  const metadata = { format: 'pt' };
  // Tensors are generated one at a time while writing, so memory stays at one tensor.
  const writeShard = (file: string, members: PlannedTensor[]): void => {
    const header = encodeSafetensorsHeader(members.map((t) => ({ name: t.name, dtype: opts.dtype, shape: t.shape, byteLength: t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[opts.dtype] })), metadata);
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, header);
      for (const t of members) fs.writeSync(fd, encodeValues(values(t, seed), opts.dtype));
    } finally {
      fs.closeSync(fd);
    }
  };
  if (shards === 1) {
    writeShard(path.join(dir, 'model.safetensors'), tensors);
    return;
  }
  const assign = splitIntoShards(bytes, shards);
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const name = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const members = tensors.filter((_, i) => assign[i] === k);
    for (const t of members) weightMap[t.name] = name;
    writeShard(path.join(dir, name), members);
  }
  writeJson(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: bytes.reduce((a, b) => a + b, 0) }, weight_map: weightMap });
}

const USAGE = `Usage: node dist/scripts/generate-checkpoint.js OUT_DIR [options]

  --arch llama|mistral|qwen2|qwen3|baichuan|granite|smollm3|olmo2|phi3|gemma2|gemma3|mixtral|qwen3moe   (default llama)
  --dtype f32|f16|bf16                        (default f32)
  --shards N          1 = model.safetensors; N > 1 = N shards + index (default 1)
  --layers N          (default 4)
  --seed N            (default 1234)
  --tie               tie lm_head to the embeddings
  --attention-bias    Llama/Qwen3: q/k/v/o biases
  --baichuan1         Baichuan: Baichuan 1's class name BaiChuanForCausalLM (no NormHead)
  --rope-scaling none|linear|llama3|longrope (longrope: phi3)
  --sliding-window N  Mistral window (default 8); Qwen2/3: enable on every layer
  --hidden N  --intermediate N  --vocab N  --heads N  --kv-heads N  --head-dim N  --max-pos N`;

/** The command line; returns the exit status (0 ok, 2 bad usage). */
export async function generateCheckpointCli(argv: string[]): Promise<number> {
  const intOpts = ['shards', 'layers', 'seed', 'sliding-window', 'hidden', 'intermediate', 'vocab', 'heads', 'kv-heads', 'head-dim', 'max-pos'];
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      arch: { type: 'string' }, dtype: { type: 'string' }, tie: { type: 'boolean' }, 'attention-bias': { type: 'boolean' }, baichuan1: { type: 'boolean' }, 'rope-scaling': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(intOpts.map((o) => [o, { type: 'string' as const }])),
    },
  });
  if (v.help || positionals.length !== 1) {
    process.stdout.write(`${USAGE}\n`);
    return v.help ? 0 : 2;
  }
  const int = (name: string): number | undefined => {
    const raw = v[name as keyof typeof v];
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string' || !/^\d+$/.test(raw)) throw new Error(`--${name} expects a non-negative integer, got '${String(raw)}'`);
    return Number(raw);
  };
  const archs: Record<string, Architecture> = { ...SHORT_ARCH, ...MORE_SHORT_ARCH };
  const arch = Object.hasOwn(archs, String(v.arch ?? 'llama').toLowerCase()) ? archs[String(v.arch ?? 'llama').toLowerCase()] : undefined;
  if (!arch) throw new Error(`--arch must be one of ${Object.keys(archs).join(', ')}, got '${String(v.arch)}'`);
  const dtype = String(v.dtype ?? 'f32').toUpperCase();
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new Error(`--dtype must be f32, f16 or bf16, got '${String(v.dtype)}'`);
  const rs = String(v['rope-scaling'] ?? 'none');
  if (rs !== 'none' && rs !== 'linear' && rs !== 'llama3' && rs !== 'longrope') throw new Error(`--rope-scaling must be none, linear, llama3 or longrope, got '${rs}'`);
  const opts: GenerateOptions = {
    architecture: arch, dtype, shards: int('shards'), layers: int('layers'), seed: int('seed'), tie: v.tie === true, attentionBias: v['attention-bias'] === true, baichuan1: v.baichuan1 === true, ropeScaling: rs,
    slidingWindow: int('sliding-window'), hiddenSize: int('hidden'), intermediateSize: int('intermediate'), vocabSize: int('vocab'),
    numAttentionHeads: int('heads'), numKeyValueHeads: int('kv-heads'), headDim: int('head-dim'), maxPositionEmbeddings: int('max-pos'),
  };
  await generateCheckpoint(positionals[0]!, opts);
  process.stdout.write(`wrote ${arch} ${dtype} checkpoint to ${positionals[0]}\n`);
  return 0;
}

if (require.main === module) {
  generateCheckpointCli(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    process.stderr.write(`generate-checkpoint: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = e instanceof Error && /^--/.test(e.message) ? 2 : 1;
  });
}
