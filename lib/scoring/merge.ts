/**
 * `merge`: partial scores of N shards -> one SCORES document, the same shape as `score --json`
 * plus the merged provenance and the sums. The partials must belong together (same model, data,
 * options and N; every shard 0..N-1 exactly once, covering the windows without gap or overlap);
 * sums are added in shard order, so a merge is deterministic and equals the single-process
 * result to rounding (contiguous shards keep the window order; see lib/scoring/shard.ts).
 */
import { ShortGptError } from '../errors';
import type { ScoreRow } from '../cli/commands/score';
import { rankLayers } from '../report/buildReport';
import { layerMeans } from './layerMeans';
import type { LayerScore } from './scoreLayers';
import { PER_WINDOW_FIELDS, type BlockSums, type LayerSums, type PartialScores, type PerplexitySums } from './partial';
import { provenanceMismatch, type ScoringProvenance } from './partialProvenance';

export const SCORES_FORMAT = 'shortgpt-native/scores';

/** SCORES.json: `score --json`'s fields, plus where the numbers came from and the sums behind them. */
export interface MergedScores {
  format: typeof SCORES_FORMAT;
  model: string;
  tokens: number;
  sequences: number;
  device: 'cpu' | 'cuda';
  layers: Array<Pick<ScoreRow, 'layer' | 'bi' | 'angular' | 'relmag' | 'rank' | 'zeroNormTokens'>>;
  warnings: string[];
  provenance: ScoringProvenance;
  /** The sums the means came from: per layer, and the block strategy's pairs (lib/scoring/partial.ts). */
  sums: { layers: LayerSums[]; block: BlockSums };
  /** With --eval in the shards: perplexity on the eval data, pooled over every shard's windows. */
  perplexity?: { perplexity: number; meanNll: number; predictions: number; tokens: number; sums: PerplexitySums };
}

/** A partial with its file name, for messages. */
export interface NamedPartial {
  file: string;
  partial: PartialScores;
}

const fail = (message: string): never => {
  throw new ShortGptError('ERR_MERGE_MISMATCH', `merge: ${message}`);
};

/** Checks that `parts` are shards 0..N-1 of one run, and returns them in shard order. */
export function checkPartials(parts: readonly NamedPartial[]): NamedPartial[] {
  if (parts.length === 0) fail('no partial files given');
  const first = parts[0];
  const n = first.partial.shard.count;
  for (const p of parts.slice(1)) {
    const why = provenanceMismatch(first.partial.provenance, p.partial.provenance, [first.file, p.file]);
    if (why !== undefined) fail(`${p.file} does not belong with ${first.file}: ${why}`);
    if (p.partial.shard.count !== n) fail(`${p.file} is shard ${p.partial.shard.index} of ${p.partial.shard.count}, but ${first.file} is of ${n}: different shard count N`);
  }
  const byIndex = new Map<number, NamedPartial>();
  for (const p of parts) {
    const other = byIndex.get(p.partial.shard.index);
    if (other) fail(`shard ${p.partial.shard.index} of ${n} given twice: ${other.file} and ${p.file}`);
    byIndex.set(p.partial.shard.index, p);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) fail(`missing shard${missing.length > 1 ? 's' : ''} ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''} of ${n} (got ${parts.length} partial file${parts.length > 1 ? 's' : ''})`);
  const ordered = Array.from({ length: n }, (_, i) => byIndex.get(i) as NamedPartial);
  let next = 0;
  for (const p of ordered) {
    const s = p.partial.shard;
    if (s.windowStart !== next) fail(`${p.file} (shard ${s.index}) starts at window ${s.windowStart}, expected ${next}`);
    if (p.partial.sequences !== s.windowEnd - s.windowStart) fail(`${p.file} (shard ${s.index}) scored ${p.partial.sequences} windows, but its range ${s.windowStart}..${s.windowEnd} holds ${s.windowEnd - s.windowStart}`);
    const badWindows = p.partial.layers.find((l) => l.perWindow !== undefined && l.perWindow.tokens.length !== p.partial.sequences);
    if (badWindows) fail(`${p.file} (shard ${s.index}): layer ${badWindows.layer} has per-window sums for ${badWindows.perWindow!.tokens.length} windows, but the shard scored ${p.partial.sequences}`);
    next = s.windowEnd;
  }
  if (next !== first.partial.provenance.data.windows) fail(`the shards cover ${next} windows, but the data has ${first.partial.provenance.data.windows}`);
  // --eval: all shards or none, on the same eval data, covering its windows.
  const withEval = ordered.filter((p) => p.partial.perplexity !== undefined);
  if (withEval.length > 0 && withEval.length < ordered.length) fail(`${ordered.find((p) => !p.partial.perplexity)!.file} has no --eval perplexity sums, but ${withEval[0].file} has`);
  if (withEval.length > 0) {
    const d = withEval[0].partial.perplexity!.data;
    for (const p of withEval) {
      const e = p.partial.perplexity!.data;
      if (JSON.stringify(e.sources) !== JSON.stringify(d.sources) || e.windows !== d.windows || e.windowsSha256 !== d.windowsSha256) fail(`${p.file} scored different --eval data (${JSON.stringify(e.sources)}, ${e.windows} windows) than ${withEval[0].file} (${JSON.stringify(d.sources)}, ${d.windows} windows)`);
    }
    const covered = withEval.reduce((n, p) => n + p.partial.perplexity!.sequences, 0);
    if (covered !== d.windows) fail(`the shards ran ${covered} --eval windows, but the --eval data has ${d.windows}`);
  }
  return ordered;
}

/** Adds the shards' sums in shard order. */
export function mergePartials(parts: readonly NamedPartial[], model?: string): MergedScores {
  const ordered = checkPartials(parts);
  const first = ordered[0].partial;
  // Per-window sums are carried through only when every shard has them (concatenated in shard order).
  const perWindow = ordered.every((p) => p.partial.layers.every((l) => l.perWindow !== undefined));
  const layers: LayerSums[] = first.layers.map(({ perWindow: w, ...l }) => (perWindow && w ? { ...l, perWindow: { tokens: [...w.tokens], sumCos: [...w.sumCos], nanCount: [...w.nanCount], sumAngular: [...w.sumAngular], sumRelMag: [...w.sumRelMag] } } : l));
  const block: BlockSums = { sequences: first.block.sequences, sums: first.block.sums.map((r) => [...r]) };
  let tokens = first.tokens;
  let sequences = first.sequences;
  for (const { partial: p } of ordered.slice(1)) {
    tokens += p.tokens;
    sequences += p.sequences;
    block.sequences += p.block.sequences;
    p.layers.forEach((l, i) => {
      const a = layers[i];
      a.tokens += l.tokens;
      a.sumCos += l.sumCos;
      a.sumAngular += l.sumAngular;
      a.sumRelMag += l.sumRelMag;
      a.nanCount += l.nanCount;
      if (a.perWindow && l.perWindow) for (const k of PER_WINDOW_FIELDS) a.perWindow[k].push(...l.perWindow[k]);
    });
    p.block.sums.forEach((row, a) => row.forEach((v, j) => {
      block.sums[a][j] += v;
    }));
  }
  const doc = scoresDocument(model ?? first.model, tokens, sequences, layers, block, first.provenance, []);
  if (first.perplexity) {
    const sums: PerplexitySums = { ...first.perplexity, data: { ...first.perplexity.data } };
    for (const { partial: p } of ordered.slice(1)) {
      sums.sumNll += p.perplexity!.sumNll;
      sums.predictions += p.perplexity!.predictions;
      sums.tokens += p.perplexity!.tokens;
      sums.sequences += p.perplexity!.sequences;
    }
    const meanNll = sums.sumNll / sums.predictions;
    doc.perplexity = { perplexity: Math.exp(meanNll), meanNll, predictions: sums.predictions, tokens: sums.tokens, sums };
  }
  return doc;
}

/** The means of summed layer statistics, as scoreLayers reports them. */
export function layerScoreOf(s: LayerSums): LayerScore {
  return layerMeans(s.layer, s);
}

export function scoresDocument(model: string, tokens: number, sequences: number, layers: LayerSums[], block: BlockSums, provenance: ScoringProvenance, warnings: string[]): MergedScores {
  // score --json's ranking: by Block Influence ascending, ties by layer index.
  const scores = layers.map(layerScoreOf);
  const ranks = rankLayers(scores.map((l) => l.blockInfluence));
  const rows = scores.map((l, i) => ({ layer: l.layer, bi: l.blockInfluence, angular: l.angularDistance, relmag: l.relativeMagnitude, rank: ranks[i], zeroNormTokens: l.nanCount }));
  return {
    format: SCORES_FORMAT,
    model,
    tokens,
    sequences,
    device: provenance.engine.device,
    layers: rows,
    warnings,
    provenance,
    sums: { layers, block },
  };
}
