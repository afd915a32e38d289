/**
 * The forward pass of a checkpoint with some layers skipped at run time: embed, then every layer
 * not in `skip` in order, each told which kept layer runs next (the prefetch hint). Skipping a
 * layer passes the residual stream through unchanged, which equals running the checkpoint
 * rewritten without it. Perplexity, the paired comparison and task scoring all run this.
 */
import type { Checkpoint } from '../checkpoint/types';
import { ShortGptError } from '../errors';
import { embeddingRef, layerTensorRefs, nextLayerRefs } from './modelSpec';
import type { EngineSession, ForwardOptions } from './session';

export async function forwardKeptLayers(session: EngineSession, ckpt: Checkpoint, skip: readonly number[], options: ForwardOptions = {}): Promise<void> {
  const { signal, onProgress } = options;
  await session.embed(embeddingRef(ckpt), { signal });
  for (let l = 0; l < ckpt.config.numHiddenLayers; l++) {
    if (skip.includes(l)) continue;
    const next = nextLayerRefs(ckpt, l, (k) => !skip.includes(k));
    await session.forwardLayer(l, layerTensorRefs(ckpt, l), { signal, onProgress, next });
  }
}

/** Checks `skip` against `ckpt`'s layers (ERR_LAYER_INDEX naming `what`); returns it sorted, without duplicates. */
export function checkSkipLayers(ckpt: Checkpoint, skip: readonly number[] | undefined, what: string): number[] {
  const n = ckpt.config.numHiddenLayers;
  const out = [...new Set(skip ?? [])].sort((a, b) => a - b);
  for (const l of out) {
    if (!Number.isSafeInteger(l) || l < 0 || l >= n) {
      throw new ShortGptError('ERR_LAYER_INDEX', `${what} layer ${l} is out of range: ${ckpt.dir} has layers 0..${n - 1}`);
    }
  }
  return out;
}
