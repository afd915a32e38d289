/**
 * ShortGPT layer scoring (Men et al. 2024, arXiv 2403.03853, eq. 1): every calibration token
 * goes through layer l before layer l+1 is loaded, and each layer's Block Influence
 * BI_l = 1 - mean_t cos(h_l,t, h_l+1,t) is computed from the residual stream before and after it
 * (before the final norm, for the last layer too), with angular distance and relative
 * magnitude alongside.
 */
import type { NativeLastTokenStates, NativeLayerStats } from '../../binding';
import { openCheckpoint } from '../checkpoint/checkpoint';
import type { Checkpoint } from '../checkpoint/types';
import { embeddingRef, layerTensorRefs, nativeModelSpec } from '../engine/modelSpec';
import { engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { EngineSession, type TokenSequences } from '../engine/session';

export interface LayerScore {
  layer: number;
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
  sumAngular: number;
  sumRelMag: number;
}

export interface LayerScores {
  /** The checkpoint directory. */
  model: string;
  tokens: number;
  sequences: number;
  layers: LayerScore[];
  /** With keepLastTokenStates: each sequence's last-token state after the embedding and every layer. */
  lastTokenStates?: NativeLastTokenStates;
}

export interface ScoreProgress {
  layer: number;
  layers: number;
  sequencesDone: number;
  sequencesTotal: number;
}

export interface ScoreOptions extends EngineOptions {
  onProgress?: (p: ScoreProgress) => void;
  /** Cancels between batches of sequences; the promise rejects with code ERR_ABORTED. */
  signal?: AbortSignal;
  keepLastTokenStates?: boolean;
}

export function layerScore(layer: number, s: NativeLayerStats): LayerScore {
  return {
    layer,
    tokens: s.tokens,
    blockInfluence: 1 - s.sumCos / s.tokens,
    angularDistance: s.sumAngular / s.tokens,
    relativeMagnitude: s.sumRelMag / s.tokens,
    nanCount: s.nanCount,
    sumCos: s.sumCos,
    sumAngular: s.sumAngular,
    sumRelMag: s.sumRelMag,
  };
}

export async function resolveCheckpoint(model: Checkpoint | string): Promise<Checkpoint> {
  return typeof model === 'string' ? openCheckpoint(model) : model;
}

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
