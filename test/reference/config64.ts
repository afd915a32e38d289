/**
 * config.json -> the handful of numbers the float64 reference needs, with Hugging Face's
 * defaults applied here and independently of lib/checkpoint/config.ts. Each default cites the
 * transformers config class it comes from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type RefArchitecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'baichuan';

export interface RefConfig {
  architecture: RefArchitecture;
  numLayers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  eps: number;
  tied: boolean;
  /**
   * Baichuan 2 (class spelled `BaichuanForCausalLM`) computes logits with a NormHead: every
   * lm_head row divided by its L2 norm (modeling_baichuan.py, nn.functional.normalize).
   * Baichuan 1 (`BaiChuanForCausalLM`) uses a plain linear head.
   */
  normHead: boolean;
  /** Per-head rotary inverse frequencies (length headDim / 2), scaling already applied. */
  invFreq: Float64Array;
  /** Per layer: the sliding attention window in tokens, or null for full causal attention. */
  windows: (number | null)[];
}

type Json = Record<string, unknown>;

function architectureOf(raw: Json, dir: string): RefArchitecture {
  const name = ((raw.architectures as string[] | undefined) ?? [])[0] ?? '';
  const table: Record<string, RefArchitecture> = {
    LlamaForCausalLM: 'llama',
    MistralForCausalLM: 'mistral',
    Qwen2ForCausalLM: 'qwen2',
    Qwen3ForCausalLM: 'qwen3',
    BaichuanForCausalLM: 'baichuan',
    BaiChuanForCausalLM: 'baichuan',
  };
  const arch = table[name];
  if (!arch) throw new Error(`reference: ${dir}/config.json architecture ${JSON.stringify(name)} is not modelled`);
  return arch;
}

/** transformers modeling_rope_utils: default, linear and llama3 inverse frequencies. */
export function ropeInvFreq(headDim: number, theta: number, scaling: Json | null | undefined): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  const kind = scaling ? ((scaling.rope_type ?? scaling.type) as string | undefined) : undefined;
  if (!scaling || kind === undefined || kind === 'default') return inv;
  const factor = scaling.factor as number;
  if (kind === 'linear') {
    // Linear scaling divides positions by `factor`, i.e. every frequency.
    for (let i = 0; i < half; i++) inv[i] /= factor;
    return inv;
  }
  if (kind === 'llama3') {
    // _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones kept, and a
    // smooth interpolation between the two bands.
    const low = scaling.low_freq_factor as number;
    const high = scaling.high_freq_factor as number;
    const oldContext = scaling.original_max_position_embeddings as number;
    const lowWavelen = oldContext / low;
    const highWavelen = oldContext / high;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / factor;
      else if (wavelen >= highWavelen) {
        const smooth = (oldContext / wavelen - low) / (high - low);
        inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
      }
    }
    return inv;
  }
  throw new Error(`reference: rope_scaling type ${kind} is not modelled`);
}

/**
 * Which layers attend through a sliding window. Mistral: every layer. Qwen2/Qwen3
 * (Qwen2Config.layer_types): only with `use_sliding_window`, then the layers `layer_types` marks
 * 'sliding_attention', or without that list the layers i >= `max_window_layers` (default 28).
 */
function slidingWindows(arch: RefArchitecture, raw: Json, numLayers: number): (number | null)[] {
  // MistralConfig / Qwen2Config / Qwen3Config default sliding_window to 4096; an explicit null
  // turns it off.
  const window = raw.sliding_window === undefined ? 4096 : (raw.sliding_window as number | null);
  if (arch === 'mistral') return new Array<number | null>(numLayers).fill(window);
  if (arch !== 'qwen2' && arch !== 'qwen3') return new Array<number | null>(numLayers).fill(null);
  if (raw.use_sliding_window !== true || window === null) return new Array<number | null>(numLayers).fill(null);
  const layerTypes = raw.layer_types as string[] | undefined;
  if (layerTypes) return layerTypes.map((t) => (t === 'sliding_attention' ? window : null));
  const maxWindowLayers = (raw.max_window_layers as number | undefined) ?? 28;
  return Array.from({ length: numLayers }, (_, i) => (i >= maxWindowLayers ? window : null));
}

export function readRefConfig(dir: string): RefConfig {
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Json;
  const architecture = architectureOf(raw, dir);
  const hidden = raw.hidden_size as number;
  const heads = raw.num_attention_heads as number;
  const numLayers = raw.num_hidden_layers as number;
  // Qwen3Config declares head_dim=128 as its default; the others derive it.
  const headDim = (raw.head_dim as number | undefined) ?? (architecture === 'qwen3' ? 128 : hidden / heads);
  // Baichuan-7B's RotaryEmbedding hard-codes base 10000 and reads no rope_theta.
  // transformers v5 moves rope_theta and the scaling into `rope_parameters`.
  const ropeParams = raw.rope_parameters as Json | undefined;
  const theta = architecture === 'baichuan' ? 10000 : ((raw.rope_theta ?? ropeParams?.rope_theta) as number | undefined) ?? 10000;
  return {
    architecture,
    numLayers,
    hidden,
    heads,
    kvHeads: (raw.num_key_value_heads as number | undefined) ?? heads,
    headDim,
    vocab: raw.vocab_size as number,
    eps: (raw.rms_norm_eps as number | undefined) ?? 1e-6,
    // Llama/Mistral/Qwen2/Qwen3/Baichuan config classes all default tie_word_embeddings to false.
    tied: (raw.tie_word_embeddings as boolean | undefined) ?? false,
    normHead: ((raw.architectures as string[] | undefined) ?? [])[0] === 'BaichuanForCausalLM',
    invFreq: ropeInvFreq(headDim, theta, (raw.rope_scaling ?? ropeParams) as Json | null | undefined),
    windows: slidingWindows(architecture, raw, numLayers),
  };
}
