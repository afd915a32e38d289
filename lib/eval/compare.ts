/**
 * Paired comparison of two models on the same windows (eval PRUNED --compare ORIGINAL): both
 * perplexities, KL(reference || candidate) of the next-token distributions (mean and 95th
 * percentile), and top-1 agreement, pooled and per window.
 *
 * Streamed: the reference runs first, layer by layer as everywhere else, and only its final
 * residual stream is kept (a snapshot, [tokens, hidden] f32) before its session is freed; then
 * the candidate runs and the engine's divergence pass reads both residual streams against one
 * vocabulary chunk of each lm_head at a time. Peak memory: two residual streams, one layer, and a
 * chunk of each head; never a [tokens, vocab] array. Layers in either `skipLayers` are skipped at
 * run time, so a candidate cut is compared without writing it.
 */
import type { NativeDivergence, NativeReferenceHead } from '../../binding';
import type { Checkpoint } from '../checkpoint/types';
import { engineOptionsOf, type EngineOptions } from '../engine/engineOptions';
import { checkSkipLayers, forwardKeptLayers } from '../engine/forwardKept';
import { finalNormRef, lmHeadRef, nativeModelSpec } from '../engine/modelSpec';
import { EngineSession, type TokenSequences } from '../engine/session';
import { ShortGptError } from '../errors';
import { resolveCheckpoint } from '../scoring/scoreLayers';
import { ComparisonAccumulator, type ComparisonStats, type WindowComparison } from './compareStats';

export type { ComparisonStats, WindowComparison } from './compareStats';

/** Progress of a comparison: which model runs, and its layer's progress over the sequences. */
export interface CompareProgress {
  /** Which model runs: the reference first, then the candidate. */
  model: 'reference' | 'candidate';
  /** The layer running (0-based, of that model). */
  layer: number;
  /** Sequences through this layer so far. */
  sequencesDone: number;
  /** Sequences in all. */
  sequencesTotal: number;
}

/** Options of {@link compareModels}: layers skipped at run time on either side, and the engine's. */
export interface CompareOptions extends EngineOptions {
  /** Candidate layers to skip at run time (0-based): the candidate as if rewritten without them. */
  skipLayers?: number[];
  /** Reference layers to skip at run time. */
  referenceSkipLayers?: number[];
  /** Cancels between batches of sequences; rejects with ERR_ABORTED. */
  signal?: AbortSignal;
  /** Called as each layer of each model advances over the sequences. */
  onProgress?: (p: CompareProgress) => void;
}

/** What {@link compareModels} measured: the pooled statistics, the models and the layers skipped, and each window's statistics. */
export interface ComparisonResult extends ComparisonStats {
  /** The reference model's directory. */
  reference: string;
  /** The candidate model's directory. */
  candidate: string;
  /** Candidate layers skipped at run time (sorted, 0-based). */
  skipLayers: number[];
  /** Reference layers skipped at run time (sorted, 0-based). */
  referenceSkipLayers: number[];
  /** The same statistics for each window (sequence), in order; a 1-token window has NaN ones. */
  perWindow: WindowComparison[];
}

/**
 * The two models must predict over the same vocabulary from states of the same width, and read
 * the same tokens (the caller tokenizes with one of them): ERR_VOCAB_MISMATCH / ERR_MODEL_MISMATCH.
 */
export function checkComparable(candidate: Checkpoint, reference: Checkpoint): void {
  const a = candidate.config;
  const b = reference.config;
  if (a.vocabSize !== b.vocabSize) {
    throw new ShortGptError('ERR_VOCAB_MISMATCH', `cannot compare ${candidate.dir} (vocab_size ${a.vocabSize}) with ${reference.dir} (vocab_size ${b.vocabSize}): the next-token distributions must be over the same vocabulary`);
  }
  if (a.hiddenSize !== b.hiddenSize) {
    throw new ShortGptError('ERR_MODEL_MISMATCH', `cannot compare ${candidate.dir} (hidden_size ${a.hiddenSize}) with ${reference.dir} (hidden_size ${b.hiddenSize}): --compare takes the same model before and after pruning`);
  }
  // The engine's divergence pass computes both heads with the candidate's spec: the final norm's
  // form and epsilon (Gemma's 1 + w), NormHead, logits_scaling (Granite), final soft-capping
  // (Gemma 2). Every one of those fields must agree, or the reference's logits would be wrong.
  const sa = nativeModelSpec(a) as unknown as Record<string, unknown>;
  const sb = nativeModelSpec(b) as unknown as Record<string, unknown>;
  const headFields: Array<[string, unknown]> = [
    ['rmsNormEps', undefined], ['gemmaNorms', false], ['normalizedLmHead', false], ['logitsScaling', 1], ['finalLogitSoftcapping', 0],
  ];
  for (const [field, dflt] of headFields) {
    const va = sa[field] ?? dflt;
    const vb = sb[field] ?? dflt;
    if (va !== vb) {
      throw new ShortGptError('ERR_MODEL_MISMATCH', `cannot compare ${candidate.dir} (${field} ${String(va)}) with ${reference.dir} (${field} ${String(vb)}): the final norm and lm_head must compute alike; --compare takes the same model before and after pruning`);
    }
  }
}

/** Runs `ckpt` over `sequences` (skipping `skip`) in a new session, left open at its final residual stream. */
export async function runToFinalResidual(
  ckpt: Checkpoint, sequences: TokenSequences, skip: readonly number[], options: EngineOptions & { signal?: AbortSignal; onLayer?: (layer: number, done: number, total: number) => void },
): Promise<EngineSession> {
  const session = EngineSession.create(nativeModelSpec(ckpt.config), sequences, engineOptionsOf(options));
  try {
    const { signal, onLayer } = options;
    await forwardKeptLayers(session, ckpt, skip, { signal, onProgress: onLayer && ((p) => onLayer(p.layer, p.sequencesDone, p.sequencesTotal)) });
    return session;
  } catch (e) {
    await session.dispose();
    throw e;
  }
}

/** The reference side of the engine's divergence pass: a final residual stream and the head that reads it. */
export function referenceHead(ckpt: Checkpoint, residual: Float32Array): NativeReferenceHead {
  const spec = nativeModelSpec(ckpt.config);
  return { residual, finalNorm: finalNormRef(ckpt), lmHead: lmHeadRef(ckpt), rmsNormEps: spec.rmsNormEps, normalizedLmHead: spec.normalizedLmHead === true };
}

/** The reference's final residual stream over `sequences` (its session freed once copied). */
export async function referenceResidual(
  reference: Checkpoint, sequences: TokenSequences, skip: readonly number[], options: EngineOptions & { signal?: AbortSignal; onLayer?: (layer: number, done: number, total: number) => void },
): Promise<NativeReferenceHead> {
  const session = await runToFinalResidual(reference, sequences, skip, options);
  try {
    return referenceHead(reference, session.snapshot());
  } finally {
    await session.dispose();
  }
}

/** Runs the candidate over the sequences and compares it with `ref` per token. */
export async function divergenceFrom(
  candidate: Checkpoint, sequences: TokenSequences, skip: readonly number[], ref: NativeReferenceHead,
  options: EngineOptions & { signal?: AbortSignal; onLayer?: (layer: number, done: number, total: number) => void },
): Promise<NativeDivergence> {
  const session = await runToFinalResidual(candidate, sequences, skip, options);
  try {
    return await session.divergence(ref, finalNormRef(candidate), lmHeadRef(candidate), { signal: options.signal });
  } finally {
    await session.dispose();
  }
}

/**
 * Compares `candidate` (e.g. the pruned model, or the original with `skipLayers`) with
 * `reference` on token sequences: perplexity of both, KL(reference || candidate) mean and 95th
 * percentile, top-1 agreement, pooled over every predicting position and per window. Identical
 * models give KL 0 and agreement 1 exactly.
 *
 * @example
 * const r = await compareModels('./pruned', './original', windows);
 * console.log(r.perplexity, r.kl.mean, r.top1Agreement);
 */
export async function compareModels(
  candidate: Checkpoint | string, reference: Checkpoint | string, sequences: TokenSequences, options: CompareOptions = {},
): Promise<ComparisonResult> {
  const cand = await resolveCheckpoint(candidate);
  const ref = await resolveCheckpoint(reference);
  checkComparable(cand, ref);
  const skip = checkSkipLayers(cand, options.skipLayers, 'skip');
  const refSkip = checkSkipLayers(ref, options.referenceSkipLayers, 'reference skip');
  if (!sequences.some((s) => s.length >= 2)) {
    throw new ShortGptError('ERR_TOO_SHORT', 'a comparison needs at least one sequence of 2 or more tokens (a sequence of length T predicts T-1 tokens)');
  }
  const acc = new ComparisonAccumulator();
  await compareInto(acc, cand, ref, sequences, skip, refSkip, options);
  return { reference: ref.dir, candidate: cand.dir, skipLayers: skip, referenceSkipLayers: refSkip, ...acc.result() };
}

/** One session's worth of sequences of a comparison, added to `acc` (the batched passes call it per batch). */
export async function compareInto(
  acc: ComparisonAccumulator, cand: Checkpoint, ref: Checkpoint, sequences: TokenSequences, skip: readonly number[], refSkip: readonly number[],
  options: EngineOptions & { signal?: AbortSignal; onProgress?: (p: CompareProgress) => void },
): Promise<void> {
  const engine = { ...engineOptionsOf(options), signal: options.signal };
  if (engine.device === 'cuda') {
    throw new ShortGptError('ERR_UNSUPPORTED', 'a paired comparison (KL, top-1 agreement) runs on the CPU backend only: the CUDA backend has no divergence pass yet; use device cpu');
  }
  const progress = options.onProgress;
  const head = await referenceResidual(ref, sequences, refSkip, {
    ...engine, onLayer: progress && ((layer, done, total) => progress({ model: 'reference', layer, sequencesDone: done, sequencesTotal: total })),
  });
  const d = await divergenceFrom(cand, sequences, skip, head, {
    ...engine, onLayer: progress && ((layer, done, total) => progress({ model: 'candidate', layer, sequencesDone: done, sequencesTotal: total })),
  });
  acc.add(d, sequences.map((s) => s.length));
}
