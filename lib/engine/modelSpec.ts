/**
 * From a validated checkpoint to what the native engine takes: the model spec and tensor
 * references (file, offset, dtype, shape). Only references cross into native code; the bytes
 * are read there.
 */
import type { NativeModelSpec, NativeTensorRef } from '../../binding';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerTensorSpecs } from '../checkpoint/architectures';
import { layerTensors } from '../checkpoint/checkpoint';
import type { Checkpoint, ModelConfig, TensorInfo } from '../checkpoint/types';
import { ShortGptError } from '../errors';

export function nativeModelSpec(config: ModelConfig): NativeModelSpec {
  return {
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numHeads: config.numAttentionHeads,
    numKvHeads: config.numKeyValueHeads,
    headDim: config.headDim,
    vocabSize: config.vocabSize,
    rmsNormEps: config.rmsNormEps,
    ropeTheta: config.ropeTheta,
    ropeScaling: config.ropeScaling,
    slidingWindow: config.slidingWindow ?? 0,
    qkNorm: config.qkNorm,
    attentionBias: config.attentionBias,
    fusedQkv: config.fusedQkv,
    // From the architecture table, so the engine expects exactly the tensors the checkpoint check does.
    outputBias: layerTensorSpecs(config, 0).some((s) => s.role === 'o_bias'),
    normalizedLmHead: config.normalizedLmHead ?? false,
    // Granite; the defaults are the plain decoder's (attentionScale 0: 1/sqrt(head_dim)).
    embeddingMultiplier: config.multipliers?.embedding ?? config.gemma?.embeddingScale ?? 1,
    residualMultiplier: config.multipliers?.residual ?? 1,
    attentionScale: config.multipliers?.attention ?? config.gemma?.attentionScale ?? 0,
    logitsScaling: config.multipliers?.logitsScaling ?? 1,
    // SmolLM3: layers (as indexed in the checkpoint) that apply no rotary embedding.
    noRopeLayers: config.noRopeLayers ?? [],
    // OLMo 2: post-norms instead of pre-norms, q/k norms over the whole projection.
    postNorms: config.postNorms ?? false,
    // Phi-3: fused gate_up_proj, partial rotary (0: every dimension of the head).
    fusedGateUp: config.fusedGateUp ?? false,
    rotaryDim: config.rotaryDim ?? 0,
    // Mixtral / Qwen3-MoE: layers whose weights carry 'moe_router' run the sparse MLP.
    ...(config.moe ? {
      numExperts: config.moe.numExperts,
      numExpertsPerTok: config.moe.topK,
      moeIntermediateSize: config.moe.intermediateSize,
      normTopkProb: config.moe.normTopkProb,
    } : {}),
    // Gemma 2/3 (see ModelConfig.gemma).
    ...(config.gemma ? {
      gemmaNorms: true,
      roundEmbeddingScale: true,
      attnLogitSoftcapping: config.gemma.attnLogitSoftcapping ?? 0,
      finalLogitSoftcapping: config.gemma.finalLogitSoftcapping ?? 0,
      fullAttentionLayers: config.gemma.fullAttentionLayers,
      localRopeTheta: config.gemma.localRopeTheta ?? 0,
    } : {}),
  };
}

export function tensorRef(t: TensorInfo): NativeTensorRef {
  return { name: t.name, file: t.file, offset: t.dataOffset, dtype: t.dtype, shape: t.shape };
}

/** Layer `layer`'s tensors by role (LayerTensorRole), as the engine's forwardLayer takes them. */
export function layerTensorRefs(ckpt: Checkpoint, layer: number): Record<string, NativeTensorRef> {
  const out: Record<string, NativeTensorRef> = {};
  for (const [role, info] of layerTensors(ckpt, layer)) out[role] = tensorRef(info);
  return out;
}

/**
 * The tensors of the first layer after `layer` that `runs` (default: every layer), or undefined
 * when none is left: forwardLayer's `next`, which lets the CUDA backend copy that layer in while
 * this one computes.
 */
export function nextLayerRefs(
  ckpt: Checkpoint, layer: number, runs: (l: number) => boolean = () => true,
): Record<string, NativeTensorRef> | undefined {
  for (let l = layer + 1; l < ckpt.config.numHiddenLayers; l++) if (runs(l)) return layerTensorRefs(ckpt, l);
  return undefined;
}

function globalTensor(ckpt: Checkpoint, name: string): NativeTensorRef {
  const t = ckpt.tensors.get(name);
  if (!t) throw new ShortGptError('ERR_TENSOR_MISSING', `${ckpt.dir}: tensor '${name}' is missing`);
  return tensorRef(t);
}

export function embeddingRef(ckpt: Checkpoint): NativeTensorRef {
  return globalTensor(ckpt, EMBED_TOKENS);
}

export function finalNormRef(ckpt: Checkpoint): NativeTensorRef {
  return globalTensor(ckpt, FINAL_NORM);
}

/** lm_head.weight, or the embedding matrix when the config ties them (tie_word_embeddings). */
export function lmHeadRef(ckpt: Checkpoint): NativeTensorRef {
  return globalTensor(ckpt, ckpt.config.tieWordEmbeddings ? EMBED_TOKENS : LM_HEAD);
}
