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

export const PRUNE_BY_SCORE_SPEC: OptionSpec = {
  calib: { type: 'string', multiple: true },
  remove: { type: 'string' },
  ratio: { type: 'string' },
  metric: { type: 'string' },
  strategy: { type: 'string' },
  'keep-first': { type: 'string' },
  'keep-last': { type: 'string' },
  eval: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean' },
  quiet: { type: 'boolean' },
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
  const calib = listOption(parsed, 'calib') as string[];
  const remove = intOption(cmd, parsed, 'remove', { min: 1 });
  const ratio = floatOption(cmd, parsed, 'ratio');
  if (remove !== undefined && ratio !== undefined) throw new UsageError('prune: give either --remove N or --ratio R, not both');
  if (remove === undefined && ratio === undefined) throw new UsageError('prune: say how many layers to remove: --remove N or --ratio R (0 < R < 1)');
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
  const dryRun = flag(parsed, 'dry-run');
  const out = stringOption(parsed, 'out');
  if (!dryRun && (out === undefined || out === '')) throw new UsageError('prune: --out OUT_DIR is required (or --dry-run to only see the plan)');
  const json = flag(parsed, 'json');
  const quiet = flag(parsed, 'quiet');
  const calibOptions = parseCalibOptions(cmd, parsed);
  const keepFirst = intOption(cmd, parsed, 'keep-first', { min: 0 });
  const keepLast = intOption(cmd, parsed, 'keep-last', { min: 0 });
  // Last of the checks, before anything is read or written: --device cuda without CUDA stops here.
  const { engine } = resolveCommandEngine(cmd, parsed, io, { silent: json || quiet });
  // A hub id or cache folder becomes its snapshot directory here, where --revision is known.
  const model = resolveModelLocation(modelDir, modelOptions(cmd, parsed)).dir;
  const { status } = await runPruneCli(model, {
    calib,
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
    ...engine,
    ...calibOptions,
  }, io, { json, quiet, jsonExtra: { device: engine.device } });
  return status;
}
