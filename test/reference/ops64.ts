/**
 * Naive float64 building blocks of the Hugging Face decoder forward. Activations are row-major
 * [tokens, features] Float64Arrays; weights are HF nn.Linear layout [out, in].
 */

// Module-level copies of the Math functions used in hot loops: under jest every test file runs in
// a vm context, where each lookup of a global such as `Math` is several times slower.
const { exp, sqrt, cos, sin, max: maxOf } = Math;
const NEG_INF = Number.NEGATIVE_INFINITY;

/** y[t, o] = sum_i x[t, i] * W[o, i] + b[o]  (nn.Linear: y = x W^T + b). */
export function linear(x: Float64Array, tokens: number, inDim: number, w: Float64Array, outDim: number, bias?: Float64Array): Float64Array {
  if (w.length !== inDim * outDim) throw new Error(`reference: weight has ${w.length} values, expected ${outDim}x${inDim}`);
  const y = new Float64Array(tokens * outDim);
  // Four output features per pass over x: same sums, same order, fewer loads (the reference
  // runs over thousands of tokens in the golden check).
  for (let t = 0; t < tokens; t++) {
    const xo = t * inDim;
    let o = 0;
    for (; o + 4 <= outDim; o += 4) {
      const w0 = o * inDim;
      const w1 = w0 + inDim;
      const w2 = w1 + inDim;
      const w3 = w2 + inDim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < inDim; i++) {
        const xi = x[xo + i];
        s0 += xi * w[w0 + i];
        s1 += xi * w[w1 + i];
        s2 += xi * w[w2 + i];
        s3 += xi * w[w3 + i];
      }
      y[t * outDim + o] = s0;
      y[t * outDim + o + 1] = s1;
      y[t * outDim + o + 2] = s2;
      y[t * outDim + o + 3] = s3;
    }
    for (; o < outDim; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i] * w[wo + i];
      y[t * outDim + o] = s;
    }
    if (bias) for (let b = 0; b < outDim; b++) y[t * outDim + b] += bias[b];
  }
  return y;
}

/** RMSNorm over each row of `dim` values: x / sqrt(mean(x^2) + eps) * w. */
export function rmsNorm(x: Float64Array, rows: number, dim: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  return y;
}

/**
 * Rotary embedding in place, rotate_half convention (HF apply_rotary_pos_emb): dimension i pairs
 * with i + d/2; angle = position * invFreq[i]. `x` is [tokens, heads, headDim], position = token.
 */
/**
 * RoPE in the rotate_half convention over the first 2 * invFreq.length dimensions of each head
 * (all of them unless partial rotary: Phi-3's partial_rotary_factor); cos and sin times `scale`
 * (LongRoPE's attention_factor).
 */
export function applyRope(x: Float64Array, tokens: number, heads: number, headDim: number, invFreq: Float64Array, scale = 1): void {
  const half = invFreq.length;
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * invFreq[i];
      const c = cos(angle) * scale;
      const s = sin(angle) * scale;
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * headDim;
        const a = x[base + i];
        const b = x[base + i + half];
        x[base + i] = a * c - b * s;
        x[base + i + half] = b * c + a * s;
      }
    }
  }
}

/**
 * Grouped-query causal attention with softmax in float64. q: [T, heads, d]; k, v: [T, kvHeads, d];
 * query head h reads kv head floor(h / (heads / kvHeads)) (HF repeat_kv). Query i sees keys j <= i
 * with i - j < window when a window is given. Returns [T, heads * d].
 */
export function attention(q: Float64Array, k: Float64Array, v: Float64Array, tokens: number, heads: number, kvHeads: number, d: number, window: number | null,
  scoreScale: number | null = null, softcap: number | null = null): Float64Array {
  const out = new Float64Array(tokens * heads * d);
  const group = heads / kvHeads;
  // Granite's attention_multiplier replaces 1/sqrt(head_dim).
  const scale = scoreScale ?? 1 / sqrt(d);
  const scores = new Float64Array(tokens);
  // One kv head's keys and values gathered contiguously ([T, d]) so the inner loops are unit-stride.
  const kh = new Float64Array(tokens * d);
  const vh = new Float64Array(tokens * d);
  for (let g = 0; g < kvHeads; g++) {
    for (let j = 0; j < tokens; j++) {
      kh.set(k.subarray((j * kvHeads + g) * d, (j * kvHeads + g + 1) * d), j * d);
      vh.set(v.subarray((j * kvHeads + g) * d, (j * kvHeads + g + 1) * d), j * d);
    }
    for (let h = g * group; h < (g + 1) * group; h++) {
      for (let i = 0; i < tokens; i++) {
        const first = window === null ? 0 : maxOf(0, i - window + 1);
        const qo = (i * heads + h) * d;
        let max = NEG_INF;
        for (let j = first; j <= i; j++) {
          let s = 0;
          for (let x = 0, ko = j * d; x < d; x++) s += q[qo + x] * kh[ko + x];
          s *= scale;
          // Gemma 2's attn_logit_softcapping: cap * tanh(s / cap), after the scale.
          if (softcap !== null) s = Math.tanh(s / softcap) * softcap;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = first; j <= i; j++) {
          scores[j] = exp(scores[j] - max);
          sum += scores[j];
        }
        for (let j = first; j <= i; j++) {
          const p = scores[j] / sum;
          for (let x = 0, vo = j * d; x < d; x++) out[qo + x] += p * vh[vo + x];
        }
      }
    }
  }
  return out;
}

/** torch's gelu(approximate='tanh') (gelu_pytorch_tanh): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function silu(x: number): number {
  return x / (1 + exp(-x));
}
