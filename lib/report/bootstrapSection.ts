/** report.md's bootstrap section: each layer's 95% interval and how stable the choice is. */
import { STABLE_PROBABILITY } from '../scoring/bootstrap';
import { formatScore } from './buildReport';
import { METRIC_NAMES, type PruneReport } from './types';

const pct = (p: number): string => `${(p * 100).toFixed(1)}%`;

/** One warning per chosen layer a resample chooses less than 90% of the time. */
export function bootstrapWarnings(report: PruneReport): string[] {
  const b = report.bootstrap;
  if (!b?.chosen) return [];
  return b.chosen.perLayer
    .filter((c) => c.probability < STABLE_PROBABILITY)
    .map((c) => `layer ${c.layer} was chosen again in only ${pct(c.probability)} of ${b.samples} bootstrap resamples of the calibration windows: the choice depends on which windows were sampled; add calibration data (more --samples or more text) before trusting it`);
}

export function bootstrapMarkdown(report: PruneReport): string[] {
  const b = report.bootstrap;
  if (!b) return [];
  const out = ['## Stability (bootstrap)', ''];
  out.push(
    `${b.samples} resamples, with replacement, of the ${b.windows} calibration windows (seed ${b.seed}); each layer's ${METRIC_NAMES[b.metric]} recomputed from the resampled windows' sums (no new forward passes).`,
    '',
  );
  const chosen = new Map((b.chosen?.perLayer ?? []).map((c) => [c.layer, c.probability]));
  out.push(`| layer | ${METRIC_NAMES[b.metric]} | 95% interval |${b.chosen ? ' chosen again |' : ''}`, `| ---: | ---: | :---: |${b.chosen ? ' ---: |' : ''}`);
  for (const l of b.layers) {
    const p = chosen.get(l.layer);
    const flag = p !== undefined && p < STABLE_PROBABILITY ? ' ⚠' : '';
    out.push(`| ${l.layer} | ${formatScore(l.estimate)} | [${formatScore(l.low)}, ${formatScore(l.high)}] |${b.chosen ? ` ${p === undefined ? '—' : pct(p) + flag} |` : ''}`);
  }
  out.push('');
  if (b.chosen) out.push(`The same set of ${b.chosen.layers.length} layer${b.chosen.layers.length === 1 ? '' : 's'} is chosen in ${pct(b.chosen.sameSet)} of resamples.`, '');
  if (b.note) out.push(b.note, '');
  return out;
}
