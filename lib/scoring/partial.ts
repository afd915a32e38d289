/**
 * Partial statistics of one shard (`score --shard I/N --partial OUT.json`): every sum a later
 * step needs, never a mean, so shards add exactly (lib/scoring/merge.ts):
 * - per layer: tokens, sum of cosines, of angular distances, of relative magnitudes, and the
 *   zero-norm token count (the engine's NativeLayerStats);
 * - for the block strategy (Gromov et al. 2024): for every pair of residual-stream positions
 *   a < b (position p = the state entering layer p; p = L is the last layer's output), the sum
 *   over the shard's windows of the last token's arccos(cos)/pi, computed per window exactly as
 *   lib/prune/strategies/block.ts does, so a block [l, l+n) is pair (l, l+n);
 * - the provenance every shard must share (lib/scoring/partialProvenance.ts).
 */
import type { NativeLastTokenStates } from '../../binding';
import type { Checkpoint } from '../checkpoint/types';
import { batchWindows } from '../data/batches';
import { ShortGptError } from '../errors';
import { DEFAULT_BATCH_TOKENS, type LoadedWindows } from '../prune/calibration';
import { scoreBatches, type PassOptions } from '../prune/strategies/passes';
import { packageVersion } from '../version';
import type { LayerScore } from './scoreLayers';
import { shardRange, type ShardSpec } from './shard';
import type { ScoringProvenance } from './partialProvenance';

export const PARTIAL_FORMAT = 'shortgpt-native/partial-scores';
export const PARTIAL_VERSION = 1;

/** One layer's sums over a shard's tokens. */
export interface LayerSums {
  layer: number;
  tokens: number;
  sumCos: number;
  sumAngular: number;
  sumRelMag: number;
  nanCount: number;
  /** The same sums per window, in window order, where the backend keeps them (the CPU; for the bootstrap). */
  perWindow?: PerWindowSums;
}

/** Per-window sums as JSON arrays (NativePerSequenceStats). */
export interface PerWindowSums {
  tokens: number[];
  sumCos: number[];
  nanCount: number[];
  sumAngular: number[];
  sumRelMag: number[];
}

export const PER_WINDOW_FIELDS = ['tokens', 'sumCos', 'nanCount', 'sumAngular', 'sumRelMag'] as const;

/** The block strategy's sums: `sums[a][b - a - 1]` = sum over windows of the angular distance of positions a < b. */
export interface BlockSums {
  /** Windows summed over. */
  sequences: number;
  /** Positions 0..L; row a holds pairs (a, a+1) .. (a, L). */
  sums: number[][];
}

/** What one shard writes. */
export interface PartialScores {
  format: typeof PARTIAL_FORMAT;
  version: typeof PARTIAL_VERSION;
  tool: { name: 'shortgpt-native'; version: string };
  shard: {
    index: number;
    count: number;
    /** The shard's windows: [start, end) of the provenance's `data.windows`. */
    windowStart: number;
    windowEnd: number;
  };
  provenance: ScoringProvenance;
  /** The checkpoint directory this shard read (informational: shards match by hashes, not paths). */
  model: string;
  /** Tokens and windows this shard scored. */
  tokens: number;
  sequences: number;
  layers: LayerSums[];
  block: BlockSums;
  /** With --eval DATA: the next-token NLL sums of this shard's share of the eval windows. */
  perplexity?: PerplexitySums;
}

/** Perplexity as sums: exp(sumNll / predictions) once every shard's are added. */
export interface PerplexitySums {
  sumNll: number;
  predictions: number;
  tokens: number;
  /** Eval windows this shard ran. */
  sequences: number;
  /** The eval data's identity, the same in every shard: sources, window count, hash of the windows. */
  data: { sources: string[]; windows: number; windowsSha256: string };
}

export function layerSums(l: LayerScore): LayerSums {
  const sums: LayerSums = { layer: l.layer, tokens: l.tokens, sumCos: l.sumCos, sumAngular: l.sumAngular, sumRelMag: l.sumRelMag, nanCount: l.nanCount };
  const w = l.perWindow;
  if (w) sums.perWindow = { tokens: Array.from(w.tokens), sumCos: Array.from(w.sumCos), nanCount: Array.from(w.nanCount), sumAngular: Array.from(w.sumAngular), sumRelMag: Array.from(w.sumRelMag) };
  return sums;
}

/**
 * Pairwise sums of last-token angular distance over the sequences in `states`. Per window the
 * arithmetic is block.ts's meanAngularDistance's (same loop order, so the same double), and
 * the norms are computed once per position instead of once per pair.
 */
export function blockSumsOf(states: NativeLastTokenStates, numLayers: number): BlockSums {
  const { sequences, hiddenSize: hidden } = states;
  const positions = numLayers + 1;
  const n = sequences * hidden;
  const view = (p: number): Float32Array => {
    const entry = states.layers.indexOf(p - 1);
    if (entry < 0) throw new ShortGptError('ERR_STATE', `partial scores: no last-token state after ${p === 0 ? 'the embedding' : `layer ${p - 1}`}`);
    return states.data.subarray(entry * n, (entry + 1) * n);
  };
  const views = Array.from({ length: positions }, (_, p) => view(p));
  const sq = views.map((v) => {
    const out = new Float64Array(sequences);
    for (let s = 0; s < sequences; s++) {
      let acc = 0;
      for (let i = 0, o = s * hidden; i < hidden; i++) acc += v[o + i] * v[o + i];
      out[s] = acc;
    }
    return out;
  });
  const sums: number[][] = [];
  for (let a = 0; a < positions; a++) {
    const row: number[] = [];
    for (let b = a + 1; b < positions; b++) {
      const x = views[a];
      const y = views[b];
      let sum = 0;
      for (let s = 0; s < sequences; s++) {
        let dot = 0;
        const o = s * hidden;
        for (let i = 0; i < hidden; i++) dot += x[o + i] * y[o + i];
        const denom = Math.sqrt(sq[a][s]) * Math.sqrt(sq[b][s]);
        const cos = denom > 0 ? Math.min(1, Math.max(-1, dot / denom)) : Number.NaN;
        sum += Number.isNaN(cos) ? 0.5 : Math.acos(cos) / Math.PI;
      }
      row.push(sum);
    }
    sums.push(row);
  }
  return { sequences, sums };
}

/**
 * Scores shard `shard` of the loaded windows (all windows are loaded by every shard, so the
 * split and the data hash need nothing but the data): every layer's sums and the block sums.
 */
export async function scoreShard(ckpt: Checkpoint, loaded: LoadedWindows, shard: ShardSpec, provenance: ScoringProvenance, opts: PassOptions & { batchTokens?: number }): Promise<PartialScores> {
  const { start, end } = shardRange(loaded.windows.length, shard.index, shard.count);
  const batches = batchWindows(loaded.windows.slice(start, end), opts.batchTokens ?? DEFAULT_BATCH_TOKENS).map((b) => b.map((w) => w.ids));
  const r = await scoreBatches(ckpt, batches, { engine: opts.engine, signal: opts.signal, onProgress: opts.onProgress, keepLastTokenStates: true });
  return {
    format: PARTIAL_FORMAT,
    version: PARTIAL_VERSION,
    tool: { name: 'shortgpt-native', version: packageVersion },
    shard: { index: shard.index, count: shard.count, windowStart: start, windowEnd: end },
    provenance,
    model: ckpt.dir,
    tokens: r.tokens,
    sequences: r.sequences,
    layers: r.layers.map(layerSums),
    block: blockSumsOf(r.lastTokenStates as NativeLastTokenStates, ckpt.config.numHiddenLayers),
  };
}
