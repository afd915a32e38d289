/**
 * prune's quality-bound options (--max-ppl-increase, --max-kl, --min-task-acc, --task-format):
 * parsed into lib/prune/qualityBound.ts's QualityBounds, every malformed value a usage error
 * naming the option; and the curve's lines for prune's text output.
 */
import { UsageError, ShortGptError } from '../errors';
import { curveTable, parseFraction, parseTaskBound, type QualityBounds, type QualityCurve } from '../prune/qualityBound';
import { stringOption, type OptionSpec, type Parsed } from './args';

export const QUALITY_BOUND_OPTION_SPEC: OptionSpec = {
  'max-ppl-increase': { type: 'string' },
  'max-kl': { type: 'string' },
  'min-task-acc': { type: 'string' },
  'task-format': { type: 'string' },
};

export const QUALITY_BOUND_OPTION_HELP = `  --max-ppl-increase P | --max-kl X | --min-task-acc FILE:A [--task-format F]
                         instead of --remove: the largest cut within it on --eval data`;

/** The bounds given, or undefined; UsageError naming the option for a bad value. */
export function qualityBoundsOption(command: string, parsed: Parsed): QualityBounds | undefined {
  const ppl = stringOption(parsed, 'max-ppl-increase');
  const kl = stringOption(parsed, 'max-kl');
  const task = stringOption(parsed, 'min-task-acc');
  if (ppl === undefined && kl === undefined && task === undefined) return undefined;
  try {
    const b: QualityBounds = {};
    if (ppl !== undefined) b.maxPplIncrease = parseFraction(ppl, '--max-ppl-increase');
    if (kl !== undefined) {
      const x = Number(kl);
      if (kl.trim() === '' || !Number.isFinite(x) || x < 0) throw new ShortGptError('ERR_BOUND', `--max-kl takes a number of nats of 0 or more, e.g. 0.05; got '${kl}'`);
      b.maxKl = x;
    }
    if (task !== undefined) {
      const format = stringOption(parsed, 'task-format');
      b.minTaskAcc = { ...parseTaskBound(task), ...(format !== undefined ? { format } : {}) };
    }
    return b;
  } catch (e) {
    if (e instanceof ShortGptError) throw new UsageError(`${command}: ${e.message}`);
    throw e;
  }
}

/** The curve and the choice, for prune's text output. */
export function curveLines(c: QualityCurve): string[] {
  return [`quality curve on the --eval data (${c.predictions} predictions; the cut of each size k is the strategy's):`, ...curveTable(c).split('\n').map((l) => `  ${l}`), `chosen: remove ${c.chosen} layer${c.chosen === 1 ? '' : 's'}`];
}
