/**
 * `shortgpt-native/advanced`: the lower-level pieces the job is built from, for tools that need
 * one stage on its own: read safetensors headers and tensors, resolve a config, load and window
 * calibration data, build and render the report, turn a cut into mergekit / llama.cpp terms,
 * choose a device, benchmark the engine.
 *
 * No function is exported from both entries: the main entry (`shortgpt-native`) has the job and
 * its steps, this one the parts below them. What is in neither (dtype bit conversions, header
 * encoding, tensor-name tables, FLOP counting) is private and may change in any release.
 *
 * @example
 * import { readSafetensorsHeader } from 'shortgpt-native/advanced';
 * const file = await readSafetensorsHeader('model.safetensors');
 * console.log(file.tensors.map((t) => `${t.name} ${t.dtype} [${t.shape.join(', ')}]`));
 */

// Checkpoints: headers, config, tensors, the layer plan of a rewrite.
export type * from './checkpoint/types';
export { readSafetensorsHeader, DTYPE_BYTES, isComputeDType } from './checkpoint/safetensors';
export { resolveConfig, SUPPORTED_ARCHITECTURES } from './checkpoint/config';
export { layerIndexOf, layerTensorName } from './checkpoint/architectures';
export { layerTensors } from './checkpoint/checkpoint';
export { readTensorBytes, readTensorF32 } from './checkpoint/tensorData';
export { rewriteOpenedCheckpoint } from './prune/rewrite';
export { planLayerRemoval, type LayerPlan } from './prune/layerPlan';

// Calibration data: documents, tokens, windows, batches.
export type { CalibrationDocument, SourceOptions, TokenDType } from './data/documents';
export { readTokenFile } from './data/tokenFile';
export { readCalibrationDocuments, tokenizeDocuments, loadCalibrationDocuments, loadCalibration, DEFAULT_MAX_CALIB_TOKENS, type TokenizedDocument, type ReadSourcesOptions, type TokenizeOptions, type LoadCalibrationOptions, type LoadedCalibration } from './data/sources';
export { splitTextDocuments, DOCUMENT_SEPARATOR } from './data/textFile';
export { cutWindows, cutWindowsOrFail, describeCalibration, DEFAULT_SEQ_LEN, type TokenWindow, type WindowOptions, type CalibrationSummary, type WindowedData } from './data/windows';
export { batchWindows } from './data/batches';
export { loadWindows, DEFAULT_BATCH_TOKENS, type LoadedWindows } from './prune/calibration';

// Choosing: requests, metrics, the strategies beyond one-shot.
export { resolveRequest, parseMetric, parseStrategy, type ResolvedRequest } from './prune/choose';
export { chooseBlock } from './prune/strategies/block';
export { iterative, DEFAULT_SNAPSHOT_BUDGET_BYTES, type IterativeOptions, type IterativeResult } from './prune/strategies/iterative';

// The report: report.json, report.md, chart.svg, and the cut in other tools' terms.
export type * from './report/types';
export { METRICS, STRATEGIES, METRIC_NAMES } from './report/types';
export { buildReport, rankLayers, formatScore } from './report/buildReport';
export { renderReportMarkdown, REPORT_JSON, REPORT_MD, CHART_SVG } from './report/markdown';
export { renderBlockInfluenceChart, type ChartOptions } from './report/chart';
export { mergekitSlices, llamaCppPruneLayers, mergekitYaml, formatLayerList } from './report/cuts';
export { reportFiles } from './report/files';

// Scaling out: one shard's partial sums, merged across shards (prune's `scores` option takes the result).
export { parseShard, shardRange, type ShardSpec } from './scoring/shard';
export { scoreShard, type PartialScores } from './scoring/partial';
export { scoringProvenance, dataIdentity, type ScoringProvenance } from './scoring/partialProvenance';
export { mergePartials, type MergedScores, type NamedPartial } from './scoring/merge';
export { readPartialFile, readScoresFile } from './scoring/mergeFiles';

// Devices and the engine's speed.
export { resolveDevice, parseDeviceRequest, probeCuda, deviceChoices, type DeviceRequest, type ResolvedDevice } from './engine/device';
export { runBench, type BenchOptions, type BenchResult, type BenchProgress, type GemmMeasurement } from './bench/runner';
export { presetShape, llamaShape, shapeFromConfigFile, PRESETS, type BenchShape, type ShapeNumbers } from './bench/shapes';
