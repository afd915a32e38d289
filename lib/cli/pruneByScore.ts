/**
 * `prune MODEL --calib DATA (--remove N | --ratio R) ...`: the option half of prune-by-score
 * (lib/cli/commands/prune.ts keeps --remove-layers and dispatches here when --calib is given).
 */
import { UsageError } from '../errors';
import { parseMetric, parseStrategy } from '../prune/choose';
import { floatOption, flag, intOption, stringOption, type OptionSpec, type Parsed } from './args';
import { CALIB_OPTION_SPEC, listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { ENGINE_OPTION_SPEC, resolveCommandEngine } from './engineOption';
import { modelOptions } from './modelOption';
import { resolveModelLocation } from '../checkpoint/modelLocation';
import { runPruneCli } from './pruneRun';
import { readScoresFile } from '../scoring/mergeFiles';
import { BOOTSTRAP_OPTION_SPEC, bootstrapSamples, refuseBootstrapOn } from './bootstrapOption';
import { healCliOptions, refuseHealOn } from './healOption';
import { QUALITY_BOUND_OPTION_SPEC, qualityBoundsOption } from './qualityBoundOption';
import { cpuForComparison } from './evalCompare';

export const PRUNE_BY_SCORE_SPEC: OptionSpec = {
  calib: { type: 'string', multiple: true },
  scores: { type: 'string' },
  remove: { type: 'string' },
  ratio: { type: 'string' },
  metric: { type: 'string' },
  strategy: { type: 'string' },
  'keep-first': { type: 'string' },
  'keep-last': { type: 'string' },
  eval: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean' },
  quiet: { type: 'boolean' },
  ...BOOTSTRAP_OPTION_SPEC,
  heal: { type: 'string' },
  'heal-ridge': { type: 'string' },
  ...QUALITY_BOUND_OPTION_SPEC,
  ...ENGINE_OPTION_SPEC,
  ...CALIB_OPTION_SPEC,
};

/** Options that only say how to compute or print: harmless (ignored) with --remove-layers. */
const NEUTRAL_OPTIONS = new Set(['threads', 'device', 'quiet']);

/** Which prune-by-score options were given (to refuse mixing them with --remove-layers). */
export function pruneByScoreOptionsGiven(parsed: Parsed): string[] {
  return Object.keys(PRUNE_BY_SCORE_SPEC).filter((k) => parsed.values[k] !== undefined && !NEUTRAL_OPTIONS.has(k));
}

export async function runPruneByScore(modelDir: string, parsed: Parsed, io: CliIO): Promise<number> {
  const cmd = 'prune';
  const calib = listOption(parsed, 'calib') ?? [];
  // Merged scores (shortgpt-native merge --out) stand in for scoring: lib/scoring/mergePrune.ts.
  const scoresFile = stringOption(parsed, 'scores');
  if (scoresFile !== undefined && parsed.values.calib !== undefined) throw new UsageError('prune: --scores FILE already holds the scores; give --calib DATA or --scores FILE, not both');
  const remove = intOption(cmd, parsed, 'remove', { min: 1 });
  const ratio = floatOption(cmd, parsed, 'ratio');
  if (remove !== undefined && ratio !== undefined) throw new UsageError('prune: give either --remove N or --ratio R, not both');
  const qualityBound = qualityBoundsOption(cmd, parsed);
  if (qualityBound === undefined && parsed.values['task-format'] !== undefined) throw new UsageError('prune: --task-format applies to --min-task-acc only');
  if (remove === undefined && ratio === undefined && qualityBound === undefined) throw new UsageError('prune: say how many layers to remove: --remove N or --ratio R (0 < R < 1), or bound the quality: --max-ppl-increase P, --max-kl X or --min-task-acc FILE:A');
  if (qualityBound !== undefined && parsed.values.eval === undefined) throw new UsageError('prune: a quality bound (--max-ppl-increase, --max-kl, --min-task-acc) is measured on held-out data: give --eval DATA');
  if (ratio !== undefined && !(ratio > 0 && ratio < 1)) throw new UsageError(`prune: --ratio must be between 0 and 1 (exclusive), got ${ratio}`);
  const usage = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw new UsageError(`prune: ${(e as Error).message}`);
    }
  };
  const metricText = stringOption(parsed, 'metric');
  const strategyText = stringOption(parsed, 'strategy');
  const metric = metricText === undefined ? undefined : usage(() => parseMetric(metricText, '--metric'));
  const strategy = strategyText === undefined ? undefined : usage(() => parseStrategy(strategyText, '--strategy'));
  if (qualityBound !== undefined && strategy === 'iterative') throw new UsageError('prune: a quality bound chooses the cut with --strategy one-shot or block (iterative would need its own scoring pass for every candidate count)');
  if (qualityBound !== undefined && strategy === 'block' && scoresFile !== undefined) throw new UsageError('prune: a quality bound with --strategy block needs --calib DATA (the last-token states), not --scores');
  const dryRun = flag(parsed, 'dry-run');
  const out = stringOption(parsed, 'out');
  if (!dryRun && (out === undefined || out === '')) throw new UsageError('prune: --out OUT_DIR is required (or --dry-run to only see the plan)');
  const json = flag(parsed, 'json');
  const quiet = flag(parsed, 'quiet');
  const calibOptions = parseCalibOptions(cmd, parsed);
  const keepFirst = intOption(cmd, parsed, 'keep-first', { min: 0 });
  const keepLast = intOption(cmd, parsed, 'keep-last', { min: 0 });
  const bootstrap = bootstrapSamples(cmd, parsed);
  const heal = healCliOptions(cmd, parsed);
  // An explicit --device cuda with what only the CPU backend does is refused on any machine (as
  // --heal is), before CUDA is probed: without CUDA the probe's error would hide the real one.
  if (/^cuda(:|$)/.test(stringOption(parsed, 'device') ?? '')) {
    refuseBootstrapOn(cmd, 'cuda', bootstrap);
    if (qualityBound !== undefined) cpuForComparison(cmd, 'a quality bound (--max-ppl-increase, --max-kl, --min-task-acc)', { device: 'cuda' as const }, parsed, io);
  }
  // Last of the checks, before anything is read or written: --device cuda without CUDA stops here.
  const { engine } = resolveCommandEngine(cmd, parsed, io, { silent: json || quiet });
  refuseBootstrapOn(cmd, engine.device, bootstrap);
  refuseHealOn(cmd, engine.device, heal.heal);
  const boundEngine = qualityBound !== undefined ? cpuForComparison(cmd, 'a quality bound (--max-ppl-increase, --max-kl, --min-task-acc)', engine, parsed, io) : engine;
  if (scoresFile !== undefined && (bootstrap !== undefined || heal.heal)) throw new UsageError(`prune: --${bootstrap !== undefined ? 'bootstrap' : 'heal'} needs the calibration windows run through the model; it cannot be combined with --scores`);
  const scores = scoresFile === undefined ? undefined : readScoresFile(scoresFile);
  // A hub id or cache folder becomes its snapshot directory here, where --revision is known.
  const model = resolveModelLocation(modelDir, modelOptions(cmd, parsed)).dir;
  const { status } = await runPruneCli(model, {
    calib,
    scores,
    remove,
    ratio,
    metric,
    strategy,
    keepFirst,
    keepLast,
    eval: listOption(parsed, 'eval'),
    out: dryRun ? undefined : out,
    force: flag(parsed, 'force'),
    dryRun,
    ...boundEngine,
    ...calibOptions,
    bootstrap,
    bootstrapSeed: calibOptions.seed,
    ...heal,
    qualityBound,
  }, io, { json, quiet, jsonExtra: { device: boundEngine.device } });
  return status;
}
