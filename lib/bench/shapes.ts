/**
 * The model shapes the benchmark runs: the two presets the issue names (S = SmolLM-135M,
 * M = Llama-3.2-1B, the same numbers as scripts/torch_peer.py), a shape from command-line
 * numbers, or one from a config.json. Every shape becomes a full ModelConfig through
 * resolveConfig, so the synthetic layer has exactly the tensors (and validation) a real
 * checkpoint of that shape would have.
 */
import * as fs from 'node:fs';
import { resolveConfig } from '../checkpoint/config';
import type { ModelConfig } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { FILE_LIMITS, readTextLimitedSync } from '../util/readLimited';

/** A model shape to benchmark: a name and the config the engine sees. */
export interface BenchShape {
  /** 'S', 'M', 'custom', or the config file's name. */
  name: string;
  config: ModelConfig;
}

/** The numbers a shape is made of; config.json field names in the comments. */
export interface ShapeNumbers {
  hiddenSize: number; // hidden_size
  numHiddenLayers: number; // num_hidden_layers
  numAttentionHeads: number; // num_attention_heads
  numKeyValueHeads?: number; // num_key_value_heads (default: heads)
  intermediateSize: number; // intermediate_size
  vocabSize?: number; // vocab_size (default 32000; only the nominal size, see runner.ts)
  headDim?: number; // head_dim (default hidden / heads)
}

// rope_theta as in torch_peer.py (SmolLM: 10000; Llama 3.2: 500000). Rotary tables are computed
// once per session, so the value does not change the timing; it keeps the models recognisable.
/** The built-in shapes: S (SmolLM-135M-like) and M (Llama-3.2-1B-like). */
export const PRESETS: Record<'S' | 'M', ShapeNumbers & { ropeTheta: number }> = {
  S: { hiddenSize: 576, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3, intermediateSize: 1536, vocabSize: 49152, ropeTheta: 10000 },
  M: { hiddenSize: 2048, numHiddenLayers: 16, numAttentionHeads: 32, numKeyValueHeads: 8, intermediateSize: 8192, vocabSize: 128256, ropeTheta: 500000 },
};

/** A Llama config.json for `n`, resolved (and validated) like any checkpoint's. */
export function llamaShape(name: string, n: ShapeNumbers, ropeTheta = 10000, source = `bench shape '${name}'`): BenchShape {
  const raw: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: n.hiddenSize,
    num_hidden_layers: n.numHiddenLayers,
    num_attention_heads: n.numAttentionHeads,
    num_key_value_heads: n.numKeyValueHeads ?? n.numAttentionHeads,
    intermediate_size: n.intermediateSize,
    vocab_size: n.vocabSize ?? 32000,
    rms_norm_eps: 1e-5,
    rope_theta: ropeTheta,
    max_position_embeddings: 131072,
    tie_word_embeddings: true,
  };
  if (n.headDim !== undefined) raw.head_dim = n.headDim;
  return { name, config: resolveConfig(raw, source) };
}

/**
 * The MoE preset: Mixtral-8x7B's shape (hidden 4096, 32 layers, 32 heads, 8 kv heads, 8 experts
 * of intermediate 14336, 2 per token, vocab 32000) as a MixtralForCausalLM config. One layer's
 * experts are 5.6 GB of synthetic F32 weights (2.8 GB in BF16), so run it with --layers-to-run.
 */
export function moeShape(): BenchShape {
  const raw: Record<string, unknown> = {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, intermediate_size: 14336, num_local_experts: 8, num_experts_per_tok: 2, vocab_size: 32000,
    rms_norm_eps: 1e-5, rope_theta: 1e6, max_position_embeddings: 32768, tie_word_embeddings: false,
  };
  return { name: 'MoE', config: resolveConfig(raw, "bench shape 'MoE'") };
}

/** A built-in shape by name. */
export function presetShape(name: 'S' | 'M'): BenchShape {
  const p = PRESETS[name];
  return llamaShape(name, p, p.ropeTheta);
}

/** Any architecture the engine supports: the config decides biases, q/k norms, fused qkv, window. */
export function shapeFromConfigFile(file: string): BenchShape {
  let text: string;
  try {
    text = readTextLimitedSync(file, 'bench config', FILE_LIMITS.smallJson);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ShortGptError(code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_IO', `${file}: cannot read the config (${code ?? String(e)})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ShortGptError('ERR_CONFIG', `${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return { name: 'config', config: resolveConfig(raw, file) };
}

/** The shape with some numbers replaced (e.g. S with 4 layers), renamed so no one mistakes it for S. */
export function overrideShape(shape: BenchShape, o: Partial<ShapeNumbers>, source: string): BenchShape {
  if (Object.values(o).every((v) => v === undefined)) return shape;
  const c = shape.config;
  const heads = o.numAttentionHeads ?? c.numAttentionHeads;
  const hidden = o.hiddenSize ?? c.hiddenSize;
  const n: ShapeNumbers = {
    hiddenSize: hidden,
    numHiddenLayers: o.numHiddenLayers ?? c.numHiddenLayers,
    numAttentionHeads: heads,
    // When heads change and kv heads are not given, keep no GQA ambiguity: kv heads = heads.
    numKeyValueHeads: o.numKeyValueHeads ?? (o.numAttentionHeads === undefined ? c.numKeyValueHeads : heads),
    intermediateSize: o.intermediateSize ?? c.intermediateSize,
    vocabSize: o.vocabSize ?? c.vocabSize,
    // An explicit head dim survives only when neither hidden nor heads changed.
    headDim: o.headDim ?? (o.hiddenSize === undefined && o.numAttentionHeads === undefined ? c.headDim : undefined),
  };
  return llamaShape(shape.name === 'custom' ? 'custom' : `${shape.name}*`, n, c.ropeTheta, source);
}
