/**
 * --bootstrap N for `score` and `prune`: resample the scored windows N times (seeded by --seed)
 * and report each layer's 95% interval and, for prune's one-shot choice, how often each chosen
 * layer is chosen again (lib/scoring/bootstrap.ts). Parsed and printed here so both commands
 * say it the same way.
 */
import { STABLE_PROBABILITY, type BootstrapResult } from '../scoring/bootstrap';
import { UsageError } from '../errors';
import { intOption, type OptionSpec, type Parsed } from './args';

export const BOOTSTRAP_OPTION_SPEC: OptionSpec = { bootstrap: { type: 'string' } };

export const BOOTSTRAP_OPTION_HELP = `  --bootstrap N   resample the scored windows N times (e.g. 200; seeded by --seed): each
                  layer's score gets a 95% interval, and each chosen layer the probability
                  that a resample chooses it too (CPU backend; no extra forward passes)`;

/** The number of resamples, or undefined without --bootstrap. */
export function bootstrapSamples(command: string, parsed: Parsed): number | undefined {
  return intOption(command, parsed, 'bootstrap', { min: 1, max: 100000 });
}

/** Human lines: intervals per layer, then the chosen layers' probabilities with a warning under 0.9. */
export function bootstrapLines(b: BootstrapResult): string[] {
  const lines = [`bootstrap: ${b.samples} resamples of ${b.windows} windows (seed ${b.seed}), 95% intervals of ${b.metric}:`];
  for (const l of b.layers) lines.push(`  layer ${String(l.layer).padStart(3)}  ${l.estimate.toFixed(6)}  [${l.low.toFixed(6)}, ${l.high.toFixed(6)}]`);
  if (b.chosen) {
    lines.push(`  chosen again in a resample: ${b.chosen.perLayer.map((c) => `layer ${c.layer} ${formatProbability(c.probability)}`).join(', ')}; the same set ${formatProbability(b.chosen.sameSet)}`);
    const weak = unstableChoices(b);
    if (weak.length) lines.push(`  warning: ${weak.map((c) => `layer ${c.layer}`).join(', ')} chosen in under ${STABLE_PROBABILITY * 100}% of resamples: the choice depends on which windows were sampled; add calibration data (more --samples or text)`);
  }
  return lines;
}

/** Chosen layers whose probability is under STABLE_PROBABILITY. */
export function unstableChoices(b: BootstrapResult): { layer: number; probability: number }[] {
  return b.chosen ? b.chosen.perLayer.filter((c) => c.probability < STABLE_PROBABILITY) : [];
}

export function formatProbability(p: number): string {
  return `${(p * 100).toFixed(1)}%`;
}

/** The CUDA backend keeps no per-window sums: refuse before any pass runs rather than after. */
export function refuseBootstrapOn(command: string, device: string, samples: number | undefined): void {
  if (samples !== undefined && device === 'cuda') {
    throw new UsageError(`${command}: --bootstrap needs per-window sums, which the CUDA backend does not keep; use --device cpu`);
  }
}
