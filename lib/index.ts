/**
 * shortgpt-native: score the layers of a Hugging Face decoder LLM by Block Influence (ShortGPT,
 * arXiv 2403.03853), delete the least influential ones and write a smaller checkpoint.
 *
 * This entry is the job as a user runs it: {@link prune} does everything; {@link scoreLayers},
 * {@link chooseLayers}, {@link perplexity}, {@link rewriteCheckpoint}, {@link inspectCheckpoint} and
 * {@link doctorReport} are its steps and checks; {@link bootstrapScores} (how stable a cut is),
 * {@link compareModels} (KL and top-1 agreement against the original) and {@link evaluateTasks}
 * (multiple-choice accuracy) judge a cut. Lower-level pieces (safetensors headers,
 * calibration data and windows, report building, devices, benchmarks) are in
 * `shortgpt-native/advanced`. Every error a user can cause is a {@link ShortGptError} with a
 * stable `code`.
 *
 * @example
 * import { prune } from 'shortgpt-native';
 * const result = await prune('./Llama-2-7b-hf', { calib: 'pg19.parquet', remove: 9, out: './Llama-2-7b-short' });
 * console.log(result.plan.removed);
 */
export { ShortGptError, UsageError } from './errors';
export { packageVersion } from './version';

// The whole job.
export { prune, type PruneOptions, type PruneResult, type PrunePlan, type PruneProgress } from './prune/prune';
export type { RemovalRequest } from './prune/choose';
export type { CalibrationOptions } from './prune/calibration';
export type { EngineOptions } from './engine/engineOptions';
export type { StrategyResult } from './prune/strategies/types';
export type { BatchedPerplexity } from './prune/strategies/passes';
export type { HealMethod, HealReport } from './prune/heal';
export type { Metric, Strategy, MetricScores, PruneReport } from './report/types';

// Its steps: open, tokenize, score, choose, evaluate, rewrite.
export { openCheckpoint } from './checkpoint/checkpoint';
export type { Checkpoint, ModelConfig, TensorInfo } from './checkpoint/types';
export { loadTokenizer, type Tokenizer } from './data/tokenizer';
export { scoreLayers, type LayerScore, type LayerScores, type ScoreOptions, type ScoreProgress } from './scoring/scoreLayers';
export { bootstrapScores, type BootstrapOptions, type BootstrapResult, type LayerInterval } from './scoring/bootstrap';
export type { TokenSequences } from './engine/session';
export { toMetricScores } from './report/buildReport';
export { chooseLayers, type ChooseOptions, type LayerChoice } from './prune/choose';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity';
export { evaluateTasks, loadTaskFile, type TaskEvalOptions, type TaskItem, type TaskItemResult, type TaskResult, type TaskSpec } from './eval/tasks';
export { compareModels, type CompareOptions, type CompareProgress, type ComparisonResult, type ComparisonStats, type WindowComparison } from './eval/compare';
export { rewriteCheckpoint, type RewriteOptions, type RewriteResult, type RewriteProgress } from './prune/rewrite';

// Looking before and around the job.
export { inspectCheckpoint, formatInspectReport, type InspectReport } from './checkpoint/inspect';
export { doctorReport, type DoctorReport } from './cli/commands/doctor';
