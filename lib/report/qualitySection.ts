/** report.md's paired-comparison line (prune --eval) and quality-curve section (a quality bound). */
import { curveTable, describeBounds, formatPercent } from '../prune/qualityBound';
import { QUALITY_SVG } from './qualityChart';
import type { PerplexityReport, PruneReport } from './types';

export function comparisonLine(p: PerplexityReport): string {
  const of = p.klOf === 'plain cut' ? ' (of the plain cut, before healing)' : '';
  return `- **Next-token agreement** with the original${of}: KL(original ‖ pruned) mean ${p.kl?.mean.toPrecision(4)} nats, 95th percentile ${p.kl?.p95.toPrecision(4)} nats; top-1 agreement ${formatPercent(p.top1Agreement ?? Number.NaN)}`;
}

/**
 * How a bounded prune chose its count, for report.md's and the model card's "Chosen by" line
 * ('' without a bound): the count the bound chose and the counts measured, which --remove /
 * --ratio (report.request) only capped.
 */
export function boundChoiceText(report: Pick<PruneReport, 'qualityCurve' | 'request'>): string {
  const c = report.qualityCurve;
  if (!c) return '';
  const measured = c.points.length - 1;
  const cap = report.request.remove !== null ? `, at most --remove ${report.request.remove}`
    : report.request.ratio !== null ? `, at most --ratio ${report.request.ratio}` : '';
  return `; how many by the quality bound (${describeBounds(c.bounds)}): ${c.chosen} layer${c.chosen === 1 ? '' : 's'}, the largest cut within it of 1..${measured} measured${cap}`;
}

export function qualityCurveMarkdown(report: PruneReport): string[] {
  const c = report.qualityCurve;
  if (!c) return [];
  const task = c.bounds.minTaskAcc !== undefined;
  const out = [
    '## Quality curve', '',
    `Bound: ${describeBounds(c.bounds)}. Each cut is the strategy's cut of k layers (one-shot: the k lowest-scored; block: the best block of k), evaluated by skipping them at run time on the --eval data (${c.predictions} predictions); the largest cut within the bound is chosen${c.chosen > 0 ? `: **${c.chosen} layer${c.chosen === 1 ? '' : 's'}**` : ' (none is)'}.${report.heal ? ' The curve is of plain deletion; the written model is then healed (see Healing).' : ''}`, '',
    `![Perplexity and top-1 agreement vs layers removed; chosen cut marked](${QUALITY_SVG})`, '',
    `| removed | layers | perplexity | rise | KL mean | KL p95 | top-1 agreement |${task ? ' task acc |' : ''} within bound |`,
    `| ---: | :--- | ---: | ---: | ---: | ---: | ---: |${task ? ' ---: |' : ''} :--- |`,
  ];
  for (const p of c.points) {
    const chosen = p.count === c.chosen && c.chosen > 0;
    out.push(`| ${chosen ? `**${p.count}**` : p.count} | ${p.layers.join(', ') || '—'} | ${p.perplexity.toFixed(4)} | ${formatPercent(p.pplIncrease)} | ${p.kl.mean.toPrecision(4)} | ${p.kl.p95.toPrecision(4)} | ${formatPercent(p.top1Agreement)} |${task ? ` ${p.taskAcc?.toFixed(4) ?? '—'} |` : ''} ${p.withinBound ? 'yes' : 'no'}${chosen ? ' (chosen)' : ''} |`);
  }
  out.push('');
  return out;
}

export { curveTable };
