/**
 * Floating-point operations of one decoder layer, counted the usual way (a multiply-add is 2
 * FLOPs), for the GFLOP/s the benchmark prints. Counted: every projection GEMM and the two
 * matrix products of causal attention. Not counted (all O(tokens * hidden), under 1% at the
 * benchmark shapes): RMSNorm, RoPE, softmax, SiLU * up, residual adds and the Block Influence
 * statistics.
 */
import type { ModelConfig } from '../checkpoint/types';

/** One weight GEMM of the layer: Y[tokens, n] = X[tokens, k] * W[n, k]^T. */
export interface LayerGemm {
  /** The Hugging Face projections with this (n, k), e.g. 'q,o'. */
  ops: string;
  n: number;
  k: number;
  /** How many projections of the layer have this (n, k). */
  count: number;
}

/**
 * The layer's projections grouped by distinct (n, k), in the order the layer runs them.
 * q: [heads*headDim, hidden], k/v: [kvHeads*headDim, hidden], o: [hidden, heads*headDim],
 * gate/up: [intermediate, hidden], down: [hidden, intermediate]. Baichuan's fused W_pack
 * [3*hidden, hidden] (Phi-3's qkv_proj, [qd + 2*kvd, hidden]) does the work of q, k and v and is
 * counted as one GEMM.
 */
export function layerGemms(c: ModelConfig): LayerGemm[] {
  const H = c.hiddenSize;
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  const list: { op: string; n: number; k: number }[] = c.fusedQkv
    ? [{ op: 'W_pack', n: qd + 2 * kvd, k: H }]
    : [{ op: 'q', n: qd, k: H }, { op: 'k', n: kvd, k: H }, { op: 'v', n: kvd, k: H }];
  list.push({ op: 'o', n: H, k: qd });
  // The synthetic layer is layer 0: an MoE one runs the router and, per token, topK experts
  // (counted as topK GEMMs over all tokens: the same FLOPs as each expert over its own tokens).
  const moe = c.moe && !c.moe.denseLayers.includes(0) ? c.moe : undefined;
  if (moe) {
    list.push({ op: 'router', n: moe.numExperts, k: H });
    for (let e = 0; e < moe.topK; e++) {
      list.push({ op: 'expert gate', n: moe.intermediateSize, k: H }, { op: 'expert up', n: moe.intermediateSize, k: H }, { op: 'expert down', n: H, k: moe.intermediateSize });
    }
  } else {
    list.push(
      { op: 'gate', n: c.intermediateSize, k: H },
      { op: 'up', n: c.intermediateSize, k: H },
      { op: 'down', n: H, k: c.intermediateSize },
    );
  }
  const byShape = new Map<string, LayerGemm>();
  for (const { op, n, k } of list) {
    const key = `${n}x${k}`;
    const g = byShape.get(key);
    if (g) {
      g.ops += `,${op}`;
      g.count += 1;
    } else {
      byShape.set(key, { ops: op, n, k, count: 1 });
    }
  }
  return [...byShape.values()];
}

/** 2*M*N*K for each projection, M = tokens. */
export function gemmFlops(c: ModelConfig, tokens: number): number {
  return layerGemms(c).reduce((sum, g) => sum + g.count * 2 * tokens * g.n * g.k, 0);
}

/**
 * Query-key pairs of one sequence of length T under causal attention: query i (0-based) sees
 * keys 0..i, so sum_i (i+1) = T(T+1)/2; with a sliding window W it sees min(i+1, W) keys.
 */
export function causalPairs(T: number, window = 0): number {
  if (window <= 0 || T <= window) return (T * (T + 1)) / 2;
  return (window * (window + 1)) / 2 + (T - window) * window;
}

/**
 * Causal attention of one sequence: per head and per (query, key) pair, QK^T is a headDim-long
 * dot product (2*headDim FLOPs) and PV adds headDim multiply-adds (2*headDim FLOPs):
 *   2 * 2 * headDim * heads * T(T+1)/2   (without a sliding window)
 * Grouped-query attention shares K and V between heads but every query head still does its own
 * products, so the count uses the query heads.
 */
export function attentionFlops(c: ModelConfig, T: number): number {
  return 2 * 2 * c.headDim * c.numAttentionHeads * causalPairs(T, c.slidingWindow ?? 0);
}

/** One layer over all sequences (their lengths): every GEMM plus causal attention. */
export function layerFlops(c: ModelConfig, sequenceLengths: readonly number[]): { gemm: number; attention: number; total: number } {
  const tokens = sequenceLengths.reduce((a, b) => a + b, 0);
  const gemm = gemmFlops(c, tokens);
  const attention = sequenceLengths.reduce((sum, T) => sum + attentionFlops(c, T), 0);
  return { gemm, attention, total: gemm + attention };
}
