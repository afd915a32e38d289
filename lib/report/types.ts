/**
 * report.json: what a prune run did and why, for people (report.md renders it) and for tools.
 * The prune command fills a `ReportInput`; `buildReport` derives the rest (ranks, mapping,
 * reasons, the same cut in mergekit and llama.cpp terms), so every report is consistent.
 */
import type { CalibrationSummary } from '../data/windows';
import type { HealReport } from '../prune/heal';
import type { QualityCurve } from '../prune/qualityBound';
import type { BootstrapResult } from '../scoring/bootstrap';

/** Layer scores (ShortGPT §3; Gromov et al. 2024 for angular distance). */
export type Metric = 'bi' | 'angular' | 'relmag';
/**
 * How layers are chosen: 'one-shot' (the paper: the N lowest scores of one pass), 'iterative'
 * (remove the lowest, re-score the shorter model, repeat) or 'block' (the N contiguous layers whose
 * input and output are closest by last-token angular distance; Gromov et al. 2024).
 */
export type Strategy = 'one-shot' | 'iterative' | 'block';

/** Every Metric, in the order reports list them. */
export const METRICS: readonly Metric[] = ['bi', 'angular', 'relmag'];
/** Every Strategy. */
export const STRATEGIES: readonly Strategy[] = ['one-shot', 'iterative', 'block'];

/** Each Metric's name for people, e.g. bi -> Block Influence. */
export const METRIC_NAMES: Record<Metric, string> = {
  bi: 'Block Influence',
  angular: 'angular distance',
  relmag: 'relative magnitude',
};

/** One layer's scores, each a mean over every calibration token. */
export interface MetricScores {
  /** 1 - mean cos(h_in, h_out). */
  bi: number;
  /** mean arccos(cos)/pi. */
  angular: number;
  /** mean ||h_out - h_in|| / ||h_out||. */
  relmag: number;
  /**
   * Tokens whose input or output hidden state was exactly zero: their cosine is undefined and
   * counts as 0.5 (the authors' rule). NaN/Inf never counts here: it stops the run
   * (ERR_NONFINITE_WEIGHT / ERR_NONFINITE_ACTIVATION). Absent: not known (0 in the report).
   */
  zeroNormTokens?: number;
}

/** One layer in report.json: its scores, rank, whether it was removed and why, and its new index. */
export interface LayerReport extends MetricScores {
  /** Index in the source model (0-based). */
  layer: number;
  /** Tokens of this layer whose undefined (zero-norm) cosine counted as 0.5. */
  zeroNormTokens: number;
  /** 1 = least influential under the report's metric (NaN scores rank last). */
  rank: number;
  removed: boolean;
  /** Index in the pruned model, null when removed. */
  newIndex: number | null;
  /** Why the layer was removed; null for kept layers. */
  reason: string | null;
}

/** Iterative strategy: one removal per step, the survivors re-scored each time. */
export interface IterationStep {
  step: number;
  /** Source index of the layer removed at this step. */
  removed: number;
  /** Its score under the metric at this step. */
  score: number;
  /** Source layer index -> score, for every layer still present at this step. */
  scores: Record<string, number>;
}

/** Block strategy (Gromov et al. 2024): layers [start, end) removed as one contiguous block. */
export interface BlockChoice {
  start: number;
  /** Exclusive. */
  end: number;
  /** Angular distance between the block's input and output on the last token of each window. */
  distance: number;
  /** Every block of the same length that was considered, start -> distance. */
  candidates?: Record<string, number>;
}

/** Perplexity before and after the cut on held-out data (report.json `perplexity`). */
export interface PerplexityReport {
  /** The held-out data (paths as given). */
  data: string[];
  /** Tokens predicted. */
  predictions: number;
  before: number;
  after: number;
  /** after / before - 1 (0.25 = perplexity rose by 25%). */
  rise: number;
  /** E.g. the data stopped at --max-calib-tokens, so only its start was evaluated. */
  warnings?: string[];
  /** KL(original || pruned) of the next-token distributions over the same positions, nats (lib/eval/compare.ts). */
  kl?: { mean: number; p95: number };
  /** Share of positions where both models' most likely next token is the same. */
  top1Agreement?: number;
  /** With --heal: KL and top-1 agreement are the plain cut's (the perplexity after is the healed model's). */
  klOf?: 'plain cut';
}

/** mergekit passthrough slice: layers [start, end) of the source, half-open as mergekit reads it. */
export interface MergekitSlice {
  layer_range: [number, number];
}

/** A quantity before and after the cut. */
export interface SizeChange {
  before: number;
  after: number;
}

/** What the prune command knows at the end of a run. */
export interface ReportInput {
  model: {
    /** Source checkpoint directory. */
    source: string;
    /** Output directory; null for --dry-run. */
    output: string | null;
    architecture: string;
    numLayers: number;
    parameters?: SizeChange;
    bytes?: SizeChange;
    /** mergekit's `dtype:` for the source (lib/report/cuts.ts mergekitDtype); absent when mixed. */
    mergekitDtype?: string;
  };
  metric: Metric;
  strategy: Strategy;
  request: { remove?: number; ratio?: number; keepFirst?: number; keepLast?: number };
  /** Scores of every source layer on the full model, index = layer. */
  scores: MetricScores[];
  removed: number[];
  /** Per removed layer, the chooser's own explanation; derived from the strategy when absent. */
  reasons?: Record<number, string>;
  iterations?: IterationStep[];
  block?: BlockChoice;
  /** `warnings`: e.g. too few windows to trust the ranking (lib/prune/calibration.ts). */
  calibration: { sources: string[]; summary: CalibrationSummary; warnings?: string[] };
  perplexity?: { data: string[]; predictions: number; before: number; after: number; warnings?: string[]; kl?: { mean: number; p95: number }; top1Agreement?: number; klOf?: 'plain cut' };
  /** A quality bound (--max-ppl-increase, --max-kl, --min-task-acc): the curve of candidate cuts and the choice. */
  qualityCurve?: QualityCurve;
  /** Seconds per step, e.g. { load, score, choose, rewrite, eval, total }. */
  timings?: Record<string, number>;
  /** Extra versions (addon build, backend); package and Node versions are filled in. */
  versions?: Record<string, string>;
  dryRun?: boolean;
  /** --heal: the patched layers, alpha, each block's fit and, with --eval, the three perplexities (lib/prune/heal.ts). */
  heal?: HealReport;
  /** --bootstrap: per-layer intervals and, for one-shot, each chosen layer's probability (lib/scoring/bootstrap.ts). */
  bootstrap?: BootstrapReport;
  /** ISO time; defaults to now. */
  createdAt?: string;
}

/** report.json: the model, the data, every layer's scores and rank, the cut and why, perplexity. */
export interface PruneReport {
  schema: 'shortgpt-native/prune-report';
  schemaVersion: 1;
  createdAt: string;
  dryRun: boolean;
  model: {
    source: string;
    output: string | null;
    architecture: string;
    numLayers: number;
    numLayersAfter: number;
    parameters: SizeChange | null;
    bytes: SizeChange | null;
  };
  metric: Metric;
  strategy: Strategy;
  /**
   * What was asked: remove / ratio as given (null when not). With a quality bound they only cap
   * the counts considered (null: every eligible layer but one), and the count chosen is
   * `qualityCurve.chosen`.
   */
  request: { remove: number | null; ratio: number | null; keepFirst: number; keepLast: number };
  /** Every source layer, in order, with every metric. */
  layers: LayerReport[];
  removedLayers: number[];
  keptLayers: number[];
  /** Source index -> pruned index for every kept layer (as in the output's shortgpt.json). */
  layerMapping: Record<string, number>;
  iterations: IterationStep[] | null;
  block: BlockChoice | null;
  /** `warnings`: reasons to distrust the ranking, e.g. fewer than 16 windows; [] when none. */
  calibration: CalibrationSummary & { sources: string[]; description: string; warnings: string[] };
  perplexity: PerplexityReport | null;
  timings: Record<string, number>;
  versions: Record<string, string>;
  /** The same cut for users of other tools. */
  cut: {
    mergekit: MergekitSlice[];
    /** mergekit's `dtype:` (as in mergekit.yaml); absent when the source's dtypes are mixed. */
    mergekitDtype?: string;
    /** `llama-quantize --prune-layers` indices (GGUF block numbers = source layer indices). */
    llamaCppPruneLayers: number[];
  };
  /** With --heal only. */
  heal?: HealReport;
  /** With --bootstrap only. */
  bootstrap?: BootstrapReport;
  /** With a quality bound only: layers removed vs perplexity, KL, top-1 agreement (and task accuracy). */
  qualityCurve?: QualityCurve;
}

/** A bootstrap over windows, with what it means for this strategy. */
export type BootstrapReport = BootstrapResult & { note?: string };
