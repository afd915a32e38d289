/**
 * ShortGPT layer scoring (Men et al. 2024, arXiv 2403.03853, eq. 1): every calibration token
 * goes through layer l before layer l+1 is loaded, and each layer's Block Influence
 * BI_l = 1 - mean_t cos(h_l,t, h_l+1,t) is computed from the residual stream before and after it
 * (before the final norm, for the last layer too), with angular distance and relative
 * magnitude alongside.
 */
import type { NativeLastTokenStates, NativeLayerStats, NativePerSequenceStats } from '../../binding';
import { openCheckpoint } from '../checkpoint/checkpoint';
import type { Checkpoint } from '../checkpoint/types';
import { embeddingRef, layerTensorRefs, nativeModelSpec, nextLayerRefs } from '../engine/modelSpec';
import { engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { EngineSession, type TokenSequences } from '../engine/session';
import { layerMeans } from './layerMeans';

/** One decoder layer's scores: means over every token of every sequence scored. */
export interface LayerScore {
  /** The layer's index in the checkpoint (0-based). */
  layer: number;
  /** Tokens the means are taken over. */
  tokens: number;
  /** 1 - mean cosine between the layer's input and output; an undefined cosine counts as 0.5. */
  blockInfluence: number;
  /** Mean arccos(cos) / pi. */
  angularDistance: number;
  /** Mean ||h_out - h_in|| / ||h_out||. */
  relativeMagnitude: number;
  /** Tokens whose cosine was undefined (a zero-norm hidden state). */
  nanCount: number;
  /** The raw sums the means come from (double, summed in token order). */
  sumCos: number;
  /** Sum of arccos(cos) / pi over the tokens. */
  sumAngular: number;
  /** Sum of ||h_out - h_in|| / ||h_out|| over the tokens. */
  sumRelMag: number;
  /**
   * The same sums per window (sequence), in sequence order: they add up to the pooled sums and
   * let the bootstrap (lib/scoring/bootstrap.ts) resample windows without another pass. Absent where the backend
   * keeps none (CUDA).
   */
  perWindow?: NativePerSequenceStats;
}

/** What {@link scoreLayers} returns: every layer's scores, in layer order. */
export interface LayerScores {
  /** The checkpoint directory. */
  model: string;
  /** Tokens scored (all sequences together). */
  tokens: number;
  /** Sequences scored. */
  sequences: number;
  /** One entry per decoder layer, `layers[i].layer === i`. */
  layers: LayerScore[];
  /** With keepLastTokenStates: each sequence's last-token state after the embedding and every layer. */
  lastTokenStates?: NativeLastTokenStates;
}

/** Progress of {@link scoreLayers}: sequences through the running layer. */
export interface ScoreProgress {
  /** The layer running (0-based). */
  layer: number;
  /** The model's decoder layers. */
  layers: number;
  /** Sequences through this layer so far (restarts at each layer), and in all. */
  sequencesDone: number;
  /** Sequences in all. */
  sequencesTotal: number;
}

/** Options of {@link scoreLayers}: the engine fields, progress and cancellation. */
export interface ScoreOptions extends EngineOptions {
  /** Called as sequences finish each layer (from the event loop, not the engine's threads). */
  onProgress?: (p: ScoreProgress) => void;
  /** Cancels between batches of sequences; the promise rejects with code ERR_ABORTED. */
  signal?: AbortSignal;
  /** Also return each sequence's last-token hidden state after every layer (default false). */
  keepLastTokenStates?: boolean;
}

export function layerScore(layer: number, s: NativeLayerStats): LayerScore {
  return { ...layerMeans(layer, s), ...(s.perSequence ? { perWindow: s.perSequence } : {}) };
}

export async function resolveCheckpoint(model: Checkpoint | string): Promise<Checkpoint> {
  return typeof model === 'string' ? openCheckpoint(model) : model;
}

/**
 * Scores every decoder layer of `model` (a checkpoint directory, or one opened with
 * {@link openCheckpoint}) on token sequences: Block Influence (ShortGPT eq. 1), angular distance
 * and relative magnitude, each a mean over every token. Lower = the layer changes the residual
 * stream less. Layers stream through the engine one at a time, so memory is the activations of
 * all sequences (f32, tokens x hidden size) plus one layer's weights.
 *
 * @example
 * const tokenizer = await loadTokenizer(dir);
 * const scores = await scoreLayers(dir, [tokenizer.encode('Once upon a time...')], { threads: 8 });
 * console.log(scores.layers.map((l) => l.blockInfluence));
 */
export async function scoreLayers(model: Checkpoint | string, sequences: TokenSequences, options: ScoreOptions = {}): Promise<LayerScores> {
  const ckpt = await resolveCheckpoint(model);
  const numLayers = ckpt.config.numHiddenLayers;
  const session = EngineSession.create(nativeModelSpec(ckpt.config), sequences, {
    ...engineOptionsOf(options),
    keepLastTokenStates: options.keepLastTokenStates,
  });
  try {
    const { signal, onProgress } = options;
    await session.embed(embeddingRef(ckpt), { signal });
    const layers: LayerScore[] = [];
    for (let l = 0; l < numLayers; l++) {
      const stats = await session.forwardLayer(l, layerTensorRefs(ckpt, l), {
        signal,
        next: nextLayerRefs(ckpt, l),
        onProgress: onProgress && ((p) => onProgress({ ...p, layers: numLayers })),
      });
      layers.push(layerScore(l, stats));
    }
    return {
      model: ckpt.dir,
      tokens: session.totalTokens,
      sequences: session.sequenceCount,
      layers,
      lastTokenStates: options.keepLastTokenStates ? session.lastTokenStates() : undefined,
    };
  } finally {
    await session.dispose();
  }
}
