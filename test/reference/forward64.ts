/**
 * The independent float64 reference of the Hugging Face decoder forward pass (Llama, Mistral,
 * Qwen2, Qwen3, Baichuan 7B), for tests only. It shares no code with lib/ or native/: its own
 * safetensors reader, its own config defaults, naive loops in double precision. Engine results
 * (f32) are compared against it; `npm run golden` (scripts/gen-golden.ts) checks it against a
 * second independent implementation's values (../shared/golden) where those exist.
 */
import { readCheckpointTensors64, type Tensor64 } from './safetensors64';
import { readRefConfig, type RefConfig } from './config64';
import { applyRope, attention, linear, rmsNorm, silu } from './ops64';

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

function embed(model: RefModel, tokens: readonly number[]): Float64Array {
  const { hidden, vocab } = model.config;
  const table = tensor(model, 'model.embed_tokens.weight');
  const h = new Float64Array(tokens.length * hidden);
  tokens.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`reference: token ${id} outside vocabulary ${vocab}`);
    h.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  });
  return h;
}

/** q, k, v projections: separate (with optional biases) or Baichuan's fused W_pack ([q; k; v] rows). */
function projectQkv(model: RefModel, p: string, x: Float64Array, T: number): [Float64Array, Float64Array, Float64Array] {
  const { hidden, heads, kvHeads, headDim } = model.config;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  const packed = maybe(model, `${p}.self_attn.W_pack.weight`);
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

/** One decoder layer: h + attn(norm(h)), then + mlp(norm(.)). Returns the new residual stream. */
function decoderLayer(model: RefModel, layer: number, h: Float64Array, T: number): Float64Array {
  const { hidden, heads, kvHeads, headDim, eps, invFreq, windows } = model.config;
  const p = `model.layers.${layer}`;
  const x = rmsNorm(h, T, hidden, tensor(model, `${p}.input_layernorm.weight`), eps);
  let [q, k, v] = projectQkv(model, p, x, T);
  const qNorm = maybe(model, `${p}.self_attn.q_norm.weight`);
  const kNorm = maybe(model, `${p}.self_attn.k_norm.weight`);
  // Qwen3: RMSNorm over each head's head_dim values, before RoPE.
  if (qNorm) q = rmsNorm(q, T * heads, headDim, qNorm, eps);
  if (kNorm) k = rmsNorm(k, T * kvHeads, headDim, kNorm, eps);
  applyRope(q, T, heads, headDim, invFreq);
  applyRope(k, T, kvHeads, headDim, invFreq);
  const ctx = attention(q, k, v, T, heads, kvHeads, headDim, windows[layer]);
  const o = linear(ctx, T, heads * headDim, tensor(model, `${p}.self_attn.o_proj.weight`), hidden, maybe(model, `${p}.self_attn.o_proj.bias`));
  const mid = new Float64Array(T * hidden);
  for (let i = 0; i < mid.length; i++) mid[i] = h[i] + o[i];

  const y = rmsNorm(mid, T, hidden, tensor(model, `${p}.post_attention_layernorm.weight`), eps);
  const gateW = tensor(model, `${p}.mlp.gate_proj.weight`);
  const inter = gateW.length / hidden;
  const gate = linear(y, T, hidden, gateW, inter, maybe(model, `${p}.mlp.gate_proj.bias`));
  const up = linear(y, T, hidden, tensor(model, `${p}.mlp.up_proj.weight`), inter, maybe(model, `${p}.mlp.up_proj.bias`));
  for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]) * up[i];
  const down = linear(gate, T, inter, tensor(model, `${p}.mlp.down_proj.weight`), hidden, maybe(model, `${p}.mlp.down_proj.bias`));
  const out = new Float64Array(T * hidden);
  for (let i = 0; i < out.length; i++) out[i] = mid[i] + down[i];
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
  const normed = rmsNorm(h, T, hidden, tensor(model, 'model.norm.weight'), eps);
  const raw = tied ? tensor(model, 'model.embed_tokens.weight') : tensor(model, 'lm_head.weight');
  const head = normHead ? normalizeRows(raw, vocab, hidden) : raw;
  return linear(normed, T, hidden, head, vocab);
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
