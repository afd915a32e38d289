/**
 * The independent float64 reference of the Hugging Face decoder forward pass (Llama, Mistral,
 * Qwen2, Qwen3, Baichuan 7B, Granite, SmolLM3, OLMo 2, Phi-3, Gemma 2, Gemma 3, Mixtral, Qwen3-MoE),
 * for tests only. It shares no code with lib/ or native/: its own
 * safetensors reader, its own config defaults, naive loops in double precision. Engine results
 * (f32) are compared against it; `npm run golden` (scripts/gen-golden.ts) checks it against a
 * second independent implementation's values (../shared/golden) where those exist.
 */
import { readCheckpointTensors64, type Tensor64 } from './safetensors64';
import { readRefConfig, type RefConfig } from './config64';
import { applyRope, attention, geluTanh, linear, rmsNorm, silu } from './ops64';

export interface RefModel {
  dir: string;
  config: RefConfig;
  tensors: Map<string, Tensor64>;
}

export interface RefLayerScore {
  layer: number;
  blockInfluence: number;
  angularDistance: number;
  relativeMagnitude: number;
  tokens: number;
  /** Tokens whose cosine was undefined (counted as 0.5). */
  nanCount: number;
}

export interface RefPerplexity {
  perplexity: number;
  meanNll: number;
  predictions: number;
  /** Sum of every final logit at every position of every sequence (a checksum). */
  logitsSum: number;
}

// Hot loops use these instead of `Math.*`: global lookups are slow inside jest's vm context.
const { exp, log, sqrt, acos, min, max } = Math;

const models = new Map<string, RefModel>();

/**
 * Loads a checkpoint decoded to float64, cached per directory for the test file's lifetime: do
 * not edit a checkpoint's files after the reference has read them (use a new directory).
 */
export function loadReferenceModel(dir: string): RefModel {
  let model = models.get(dir);
  if (!model) {
    model = { dir, config: readRefConfig(dir), tensors: readCheckpointTensors64(dir) };
    models.set(dir, model);
  }
  return model;
}

function tensor(model: RefModel, name: string): Float64Array {
  const t = model.tensors.get(name);
  if (!t) throw new Error(`reference: ${model.dir} has no tensor ${name}`);
  return t.data;
}

function maybe(model: RefModel, name: string): Float64Array | undefined {
  return model.tensors.get(name)?.data;
}

/** A norm weight as applied: Gemma2RMSNorm / Gemma3RMSNorm scale by (1 + w), the others by w. */
function normWeight(model: RefModel, name: string): Float64Array {
  const w = tensor(model, name);
  return model.config.gemma ? w.map((x) => 1 + x) : w;
}

/** `v` as torch.tensor(v).to(dtype) holds it (round to nearest, ties to even). */
function roundToDtype(v: number, dtype: string | undefined): number {
  const f = Math.fround(v);
  if (dtype !== 'BF16' && dtype !== 'F16') return f;
  const bits = dtype === 'BF16' ? 7 : 10; // fraction bits
  const scale = 2 ** (bits - Math.floor(Math.log2(Math.abs(f))));
  const x = f * scale;
  let r = Math.round(x);
  if (Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0) r -= 1;
  return r / scale;
}

function embed(model: RefModel, tokens: readonly number[]): Float64Array {
  const { hidden, vocab, embeddingMultiplier } = model.config;
  const table = tensor(model, 'model.embed_tokens.weight');
  const h = new Float64Array(tokens.length * hidden);
  tokens.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`reference: token ${id} outside vocabulary ${vocab}`);
    h.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  });
  // GraniteModel: inputs_embeds * embedding_multiplier. Gemma: * sqrt(hidden_size), the scale
  // cast to the embedding weights' dtype first (GemmaTextScaledWordEmbedding).
  const scale = model.config.gemma ? roundToDtype(Math.sqrt(hidden), model.tensors.get('model.embed_tokens.weight')?.dtype) : embeddingMultiplier;
  if (scale !== 1) for (let i = 0; i < h.length; i++) h[i] *= scale;
  return h;
}

/** q, k, v projections: separate (with optional biases) or Baichuan's fused W_pack ([q; k; v] rows). */
function projectQkv(model: RefModel, p: string, x: Float64Array, T: number): [Float64Array, Float64Array, Float64Array] {
  const { hidden, heads, kvHeads, headDim } = model.config;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  // Baichuan's W_pack and Phi-3's qkv_proj: [q; k; v] rows.
  const packed = maybe(model, `${p}.self_attn.W_pack.weight`) ?? maybe(model, `${p}.self_attn.qkv_proj.weight`);
  if (packed) {
    const qkv = linear(x, T, hidden, packed, qDim + 2 * kvDim, maybe(model, `${p}.self_attn.W_pack.bias`));
    const q = new Float64Array(T * qDim);
    const k = new Float64Array(T * kvDim);
    const v = new Float64Array(T * kvDim);
    const row = qDim + 2 * kvDim;
    for (let t = 0; t < T; t++) {
      q.set(qkv.subarray(t * row, t * row + qDim), t * qDim);
      k.set(qkv.subarray(t * row + qDim, t * row + qDim + kvDim), t * kvDim);
      v.set(qkv.subarray(t * row + qDim + kvDim, (t + 1) * row), t * kvDim);
    }
    return [q, k, v];
  }
  const proj = (name: string, out: number) =>
    linear(x, T, hidden, tensor(model, `${p}.self_attn.${name}.weight`), out, maybe(model, `${p}.self_attn.${name}.bias`));
  return [proj('q_proj', qDim), proj('k_proj', kvDim), proj('v_proj', kvDim)];
}

/**
 * The sparse MoE MLP of one sequence (MixtralSparseMoeBlock / Qwen3MoeSparseMoeBlock): per token,
 * softmax of the router logits, the topK most probable experts (renormalised for Mixtral or with
 * norm_topk_prob), the weighted sum of their SwiGLU outputs. In float64 throughout.
 */
function moeMlp(model: RefModel, p: string, y: Float64Array, T: number): Float64Array {
  const { hidden, moe } = model.config;
  const mixtral = model.config.architecture === 'mixtral';
  const prefix = `${p}.${mixtral ? 'block_sparse_moe' : 'mlp'}`;
  const E = moe!.experts;
  const logits = linear(y, T, hidden, tensor(model, `${prefix}.gate.weight`), E);
  const out = new Float64Array(T * hidden);
  const names = mixtral ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
  for (let t = 0; t < T; t++) {
    const l = logits.subarray(t * E, (t + 1) * E);
    const top = Math.max(...l);
    const probs = Array.from(l, (x) => exp(x - top));
    const sum = probs.reduce((a, b) => a + b, 0);
    const order = probs.map((q, e) => ({ q: q / sum, e })).sort((a, b) => b.q - a.q || a.e - b.e).slice(0, moe!.topK);
    const total = order.reduce((a, b) => a + b.q, 0);
    const x = y.subarray(t * hidden, (t + 1) * hidden);
    for (const { q, e } of order) {
      const w = moe!.normTopk ? q / total : q;
      const gateW = tensor(model, `${prefix}.experts.${e}.${names[0]}.weight`);
      const inter = gateW.length / hidden;
      const gate = linear(x, 1, hidden, gateW, inter);
      const up = linear(x, 1, hidden, tensor(model, `${prefix}.experts.${e}.${names[1]}.weight`), inter);
      for (let i = 0; i < inter; i++) gate[i] = silu(gate[i]) * up[i];
      const down = linear(gate, 1, inter, tensor(model, `${prefix}.experts.${e}.${names[2]}.weight`), hidden);
      for (let i = 0; i < hidden; i++) out[t * hidden + i] += w * down[i];
    }
  }
  return out;
}

/** One decoder layer: h + attn(norm(h)), then + mlp(norm(.)). Returns the new residual stream. */
function decoderLayer(model: RefModel, layer: number, h: Float64Array, T: number, onMlpOutput?: (down: Float64Array) => void): Float64Array {
  const { hidden, heads, kvHeads, headDim, eps, windows, rope, residualMultiplier: rm, ropeScale, gemma } = model.config;
  // LongRoPE (Phi-3): the long factors for a sequence longer than original_max_position_embeddings;
  // Gemma 3: the local base on sliding layers.
  const invFreq = gemma?.invFreqLocal && gemma.sliding[layer] ? gemma.invFreqLocal
    : model.config.invFreqLong && T > model.config.longAbove ? model.config.invFreqLong : model.config.invFreq;
  const attentionScale = gemma ? gemma.attentionScale : model.config.attentionScale;
  const p = `model.layers.${layer}`;
  const norm = (a: Float64Array, name: string): Float64Array => rmsNorm(a, T, hidden, normWeight(model, `${p}.${name}.weight`), eps);
  // Olmo2DecoderLayer: no norm before attention or MLP; RMSNorm of each one's output instead.
  // Gemma2DecoderLayer / Gemma3DecoderLayer: norms before and after both.
  const olmo2 = model.config.architecture === 'olmo2';
  const x = olmo2 ? h : norm(h, 'input_layernorm');
  let [q, k, v] = projectQkv(model, p, x, T);
  const qNorm = maybe(model, `${p}.self_attn.q_norm.weight`) && normWeight(model, `${p}.self_attn.q_norm.weight`);
  const kNorm = maybe(model, `${p}.self_attn.k_norm.weight`) && normWeight(model, `${p}.self_attn.k_norm.weight`);
  // Qwen3: RMSNorm over each head's head_dim values, before RoPE; OLMo 2: over the whole projection.
  if (qNorm) q = olmo2 ? rmsNorm(q, T, heads * headDim, qNorm, eps) : rmsNorm(q, T * heads, headDim, qNorm, eps);
  if (kNorm) k = olmo2 ? rmsNorm(k, T, kvHeads * headDim, kNorm, eps) : rmsNorm(k, T * kvHeads, headDim, kNorm, eps);
  // SmolLM3Attention: `if self.use_rope` (no_rope_layers[layer_idx]).
  if (rope[layer]) {
    applyRope(q, T, heads, headDim, invFreq, ropeScale);
    applyRope(k, T, kvHeads, headDim, invFreq, ropeScale);
  }
  const ctx = attention(q, k, v, T, heads, kvHeads, headDim, windows[layer], attentionScale, gemma?.attnSoftcap ?? null);
  const attnOut = linear(ctx, T, heads * headDim, tensor(model, `${p}.self_attn.o_proj.weight`), hidden, maybe(model, `${p}.self_attn.o_proj.bias`));
  const o = olmo2 || gemma ? norm(attnOut, 'post_attention_layernorm') : attnOut;
  const mid = new Float64Array(T * hidden);
  // GraniteDecoderLayer: residual + hidden_states * residual_multiplier (1 elsewhere).
  for (let i = 0; i < mid.length; i++) mid[i] = h[i] + o[i] * rm;

  const y = olmo2 ? mid : norm(mid, gemma ? 'pre_feedforward_layernorm' : 'post_attention_layernorm');
  if (model.config.moe?.sparse[layer]) {
    const moeOut = moeMlp(model, p, y, T);
    onMlpOutput?.(moeOut);
    const res = new Float64Array(T * hidden);
    for (let i = 0; i < res.length; i++) res[i] = mid[i] + moeOut[i];
    return res;
  }
  // Phi-3's gate_up_proj: [gate; up] rows (Phi3MLP: gate, up = chunk(2)).
  const gateUpW = maybe(model, `${p}.mlp.gate_up_proj.weight`);
  const gateW = gateUpW ? gateUpW.subarray(0, gateUpW.length / 2) : tensor(model, `${p}.mlp.gate_proj.weight`);
  const upW = gateUpW ? gateUpW.subarray(gateUpW.length / 2) : tensor(model, `${p}.mlp.up_proj.weight`);
  const inter = gateW.length / hidden;
  const gate = linear(y, T, hidden, gateW, inter, maybe(model, `${p}.mlp.gate_proj.bias`));
  const up = linear(y, T, hidden, upW, inter, maybe(model, `${p}.mlp.up_proj.bias`));
  // Gemma: GeGLU with gelu_pytorch_tanh; the others: SwiGLU.
  if (gemma) for (let i = 0; i < gate.length; i++) gate[i] = geluTanh(gate[i]) * up[i];
  else for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]) * up[i];
  const down = linear(gate, T, inter, tensor(model, `${p}.mlp.down_proj.weight`), hidden, maybe(model, `${p}.mlp.down_proj.bias`));
  onMlpOutput?.(down);
  const mlpOut = olmo2 || gemma ? norm(down, 'post_feedforward_layernorm') : down;
  const out = new Float64Array(T * hidden);
  for (let i = 0; i < out.length; i++) out[i] = mid[i] + mlpOut[i] * rm;
  return out;
}

/** Runs layers `from`..L-1 on h (the residual entering layer `from`); skipped layers pass h through. */
function runLayers(model: RefModel, h: Float64Array, T: number, from: number, skip: ReadonlySet<number>): Float64Array {
  for (let l = from; l < model.config.numLayers; l++) if (!skip.has(l)) h = decoderLayer(model, l, h, T);
  return h;
}

/**
 * h_0 (embeddings) .. h_L of one sequence with no layer skipped. Memoised per sequence array
 * (weakly, so it is freed with the array; do not mutate a sequence once passed in), because
 * scores and every perplexity variant of the same sequences start from these states.
 */
const streamCache = new WeakMap<RefModel, WeakMap<readonly number[], Float64Array[]>>();
function residualStreams(model: RefModel, tokens: readonly number[]): Float64Array[] {
  let perModel = streamCache.get(model);
  if (!perModel) streamCache.set(model, (perModel = new WeakMap()));
  let states = perModel.get(tokens);
  if (!states) {
    let h = embed(model, tokens);
    states = [h];
    for (let l = 0; l < model.config.numLayers; l++) states.push((h = decoderLayer(model, l, h, tokens.length)));
    perModel.set(tokens, states);
  }
  return states;
}

/** Each row divided by max(||row||, 1e-12), as torch.nn.functional.normalize(w) (dim 1). */
function normalizeRows(w: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(w.length);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = r * cols; j < (r + 1) * cols; j++) ss += w[j] * w[j];
    const norm = max(sqrt(ss), 1e-12);
    for (let j = r * cols; j < (r + 1) * cols; j++) out[j] = w[j] / norm;
  }
  return out;
}

/** Final norm and lm_head (embed_tokens when tied; row-normalised for a NormHead): [T, vocab] logits. */
function logitsOf(model: RefModel, h: Float64Array, T: number): Float64Array {
  const { hidden, vocab, eps, tied, normHead } = model.config;
  const normed = rmsNorm(h, T, hidden, normWeight(model, 'model.norm.weight'), eps);
  const raw = tied ? tensor(model, 'model.embed_tokens.weight') : tensor(model, 'lm_head.weight');
  const head = normHead ? normalizeRows(raw, vocab, hidden) : raw;
  const logits = linear(normed, T, hidden, head, vocab);
  // GraniteForCausalLM: logits / logits_scaling.
  if (model.config.logitsScaling !== 1) for (let i = 0; i < logits.length; i++) logits[i] /= model.config.logitsScaling;
  // Gemma2ForCausalLM: final_logit_softcapping, cap * tanh(logits / cap).
  const cap = model.config.gemma?.finalSoftcap;
  if (cap) for (let i = 0; i < logits.length; i++) logits[i] = Math.tanh(logits[i] / cap) * cap;
  return logits;
}

/** h_0..h_L, each [T, hidden], for one sequence starting at position 0. */
export function referenceHiddenStates(dir: string, sequence: readonly number[]): Float64Array[] {
  return residualStreams(loadReferenceModel(dir), sequence).slice();
}

/**
 * Per-token comparison of a layer's input a and output b, the quantities BI is built from. The
 * cosine is NaN when either state is all zeros; the relative magnitude of an all-zero output is
 * defined as 0 when nothing changed and 1 otherwise (the engine's documented convention).
 */
export function tokenStats(a: Float64Array, b: Float64Array, offset: number, dim: number): { cos: number; relmag: number } {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let nd = 0;
  for (let i = offset; i < offset + dim; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
    nd += (b[i] - a[i]) ** 2;
  }
  const relmag = nb > 0 ? sqrt(nd) / sqrt(nb) : nd > 0 ? 1 : 0;
  return { cos: dot / sqrt(na * nb), relmag };
}

export interface RefTokenStats {
  /** Per token; NaN where a state is all zeros. */
  cos: Float64Array;
  /** arccos(cos) / pi per token, with a NaN cosine taken as 0.5. */
  angle: Float64Array;
  relmag: Float64Array;
}

/** Per layer, per token of one sequence: cos(h_l, h_l+1), angle and relative magnitude. */
export function referenceTokenStats(dir: string, sequence: readonly number[]): RefTokenStats[] {
  const model = loadReferenceModel(dir);
  const { numLayers, hidden } = model.config;
  const hs = residualStreams(model, sequence);
  const T = sequence.length;
  return Array.from({ length: numLayers }, (_, l) => {
    const out = { cos: new Float64Array(T), angle: new Float64Array(T), relmag: new Float64Array(T) };
    for (let t = 0; t < T; t++) {
      const s = tokenStats(hs[l], hs[l + 1], t * hidden, hidden);
      const c = Number.isNaN(s.cos) ? 0.5 : min(1, max(-1, s.cos));
      out.cos[t] = s.cos;
      out.angle[t] = acos(c) / Math.PI;
      out.relmag[t] = s.relmag;
    }
    return out;
  });
}

/**
 * Block Influence (ShortGPT eq. 1), angular distance and relative magnitude per layer, pooled
 * over every token of every sequence. A NaN cosine (a zero vector) counts as 0.5, as the
 * authors' code does; the angle then uses that same 0.5.
 */
export function referenceScores(dir: string, sequences: readonly (readonly number[])[]): RefLayerScore[] {
  const numLayers = loadReferenceModel(dir).config.numLayers;
  const sums = Array.from({ length: numLayers }, () => ({ cos: 0, angle: 0, relmag: 0, tokens: 0, nanCount: 0 }));
  for (const seq of sequences) {
    referenceTokenStats(dir, seq).forEach((layer, l) => {
      for (let t = 0; t < seq.length; t++) {
        const nan = Number.isNaN(layer.cos[t]);
        sums[l].cos += nan ? 0.5 : layer.cos[t];
        sums[l].nanCount += nan ? 1 : 0;
        sums[l].angle += layer.angle[t];
        sums[l].relmag += layer.relmag[t];
        sums[l].tokens++;
      }
    });
  }
  return sums.map((s, layer) => ({
    layer,
    blockInfluence: 1 - s.cos / s.tokens,
    angularDistance: s.angle / s.tokens,
    relativeMagnitude: s.relmag / s.tokens,
    tokens: s.tokens,
    nanCount: s.nanCount,
  }));
}

/** exp(mean next-token NLL); a sequence of T tokens predicts T - 1. Skipped layers pass through. */
export function referencePerplexity(dir: string, sequences: readonly (readonly number[])[], skipLayers: readonly number[] = []): RefPerplexity {
  const model = loadReferenceModel(dir);
  const { vocab } = model.config;
  const skip = new Set(skipLayers);
  let nll = 0;
  let predictions = 0;
  let logitsSum = 0;
  for (const seq of sequences) {
    const T = seq.length;
    // Layers before the first skipped one are unchanged: resume from the memoised stream there.
    const first = skip.size ? Math.min(...skip) : model.config.numLayers;
    const states = residualStreams(model, seq);
    const last = first >= model.config.numLayers ? states[model.config.numLayers] : runLayers(model, states[first], T, first, skip);
    const logits = logitsOf(model, last, T);
    for (let i = 0; i < logits.length; i++) logitsSum += logits[i];
    for (let t = 0; t + 1 < T; t++) {
      const row = logits.subarray(t * vocab, (t + 1) * vocab);
      let top = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < vocab; i++) if (row[i] > top) top = row[i];
      let sum = 0;
      for (let i = 0; i < vocab; i++) sum += exp(row[i] - top);
      nll += top + log(sum) - row[seq[t + 1]];
      predictions++;
    }
  }
  if (predictions === 0) throw new Error('reference: perplexity needs a sequence of at least 2 tokens');
  const meanNll = nll / predictions;
  return { perplexity: Math.exp(meanNll), meanNll, predictions, logitsSum };
}

/**
 * The final logits [T, vocab] of one sequence with `skipLayers` skipped (they pass the residual
 * stream through), from the memoised dense streams up to the first skipped layer.
 */
export function referenceLogits(dir: string, sequence: readonly number[], skipLayers: readonly number[] = []): Float64Array {
  const model = loadReferenceModel(dir);
  const skip = new Set(skipLayers);
  const T = sequence.length;
  const first = skip.size ? Math.min(...skip) : model.config.numLayers;
  const states = residualStreams(model, sequence);
  const last = first >= model.config.numLayers ? states[model.config.numLayers] : runLayers(model, states[first], T, first, skip);
  return logitsOf(model, last, T);
}

/**
 * One sequence's residual stream h_0 .. h_L and every layer's MLP output (down_proj's output,
 * before the residual add; [T, hidden] each), for --heal's statistics (issue 13).
 */
export function referenceMlpOutputs(dir: string, tokens: readonly number[]): { states: Float64Array[]; mlp: Float64Array[] } {
  const model = loadReferenceModel(dir);
  let h = embed(model, tokens);
  const states = [h];
  const mlp: Float64Array[] = [];
  for (let l = 0; l < model.config.numLayers; l++) {
    states.push((h = decoderLayer(model, l, h, tokens.length, (down) => mlp.push(down))));
  }
  return { states, mlp };
}
