/**
 * quality.svg: the quality curve of a bounded prune (layers removed vs perplexity, with top-1
 * agreement on a second axis), the bound as a dashed line where it is a perplexity bound, and
 * the chosen cut marked. Self-contained like chart.svg (no scripts, fonts or links).
 */
import { CHART_COLORS, chartOpening } from './chart';
import { escapeXml, niceTicks, px, tickLabel } from './svg';
import { describeBounds, formatPercent, type QualityCurve } from '../prune/qualityBound';

/** The file name inside the output directory. */
export const QUALITY_SVG = 'quality.svg';

const AGREE_COLOR = '#54a24b';

export function renderQualityChart(curve: QualityCurve): string {
  const pts = curve.points;
  const n = pts.length;
  const dense = pts[0]?.perplexity ?? 1;
  const bound = curve.bounds.maxPplIncrease !== undefined ? dense * (1 + curve.bounds.maxPplIncrease) : undefined;
  const finite = pts.map((p) => p.perplexity).filter((v) => Number.isFinite(v));
  const { step, top, ticks } = niceTicks(Math.max(0, ...finite, bound ?? 0));
  const margin = { left: 72, right: 72, top: 84, bottom: 56 };
  const plotW = Math.min(960, Math.max(440, n * 48));
  const plotH = 260;
  const width = margin.left + plotW + margin.right;
  const height = margin.top + plotH + margin.bottom;
  const x = (i: number): number => margin.left + (n > 1 ? (i / (n - 1)) * plotW : plotW / 2);
  const y = (v: number): number => margin.top + plotH - (Math.max(0, Math.min(v, top)) / top) * plotH;
  const ya = (a: number): number => margin.top + plotH - Math.max(0, Math.min(1, a)) * plotH;
  const title = 'Quality vs layers removed';
  const chosenText = curve.chosen > 0 ? `chosen: ${curve.chosen} layer${curve.chosen === 1 ? '' : 's'}` : 'no cut within the bound';
  const subtitle = `${describeBounds(curve.bounds)} · ${chosenText}`;

  const out: string[] = [];
  out.push(...chartOpening(width, height, margin.left, title, chosenText, subtitle));
  const lx = margin.left + plotW - 250;
  out.push(
    `<g font-size="12" fill="${CHART_COLORS.text}">`,
    `<line x1="${px(lx)}" y1="66" x2="${px(lx + 16)}" y2="66" stroke="${CHART_COLORS.kept}" stroke-width="2"/><text x="${px(lx + 22)}" y="70.5">perplexity</text>`,
    `<line x1="${px(lx + 100)}" y1="66" x2="${px(lx + 116)}" y2="66" stroke="${AGREE_COLOR}" stroke-width="2"/><text x="${px(lx + 122)}" y="70.5">top-1 agreement</text>`,
    '</g>',
  );
  out.push(`<g font-size="11" fill="${CHART_COLORS.muted}" text-anchor="end">`);
  for (const t of ticks) {
    out.push(`<line x1="${margin.left}" y1="${px(y(t))}" x2="${px(margin.left + plotW)}" y2="${px(y(t))}" stroke="${CHART_COLORS.grid}" stroke-width="1"/>`);
    out.push(`<text x="${margin.left - 8}" y="${px(y(t) + 4)}">${tickLabel(t, step)}</text>`);
  }
  out.push('</g>', `<g font-size="11" fill="${AGREE_COLOR}" text-anchor="start">`);
  for (const a of [0, 0.25, 0.5, 0.75, 1]) out.push(`<text x="${px(margin.left + plotW + 8)}" y="${px(ya(a) + 4)}">${a * 100}%</text>`);
  out.push('</g>');
  if (bound !== undefined) {
    out.push(
      `<line class="bound" x1="${margin.left}" y1="${px(y(bound))}" x2="${px(margin.left + plotW)}" y2="${px(y(bound))}" stroke="${CHART_COLORS.removed}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      `<text x="${px(margin.left + 6)}" y="${px(y(bound) - 6)}" font-size="11" fill="${CHART_COLORS.removed}">bound: +${escapeXml(formatPercent(curve.bounds.maxPplIncrease as number))}</text>`,
    );
  }
  const line = (f: (i: number) => number, color: string, cls: string) =>
    `<polyline class="${cls}" fill="none" stroke="${color}" stroke-width="2" points="${pts.map((_, i) => `${px(x(i))},${px(f(i))}`).join(' ')}"/>`;
  out.push(line((i) => y(pts[i].perplexity), CHART_COLORS.kept, 'perplexity'), line((i) => ya(pts[i].top1Agreement), AGREE_COLOR, 'agreement'));
  pts.forEach((p, i) => {
    const tip = `${p.count} removed${p.layers.length ? ` (${p.layers.join(',')})` : ''}: perplexity ${p.perplexity.toFixed(4)} (${formatPercent(p.pplIncrease)}), KL ${p.kl.mean.toPrecision(3)}, top-1 ${formatPercent(p.top1Agreement)}${p.taskAcc !== undefined ? `, task acc ${p.taskAcc.toFixed(3)}` : ''}`;
    out.push(`<circle class="point${p.withinBound ? ' within' : ''}" data-count="${p.count}" cx="${px(x(i))}" cy="${px(y(p.perplexity))}" r="3.5" fill="${p.withinBound ? CHART_COLORS.kept : '#ffffff'}" stroke="${CHART_COLORS.kept}" stroke-width="1.5"><title>${escapeXml(tip)}</title></circle>`);
    out.push(`<circle cx="${px(x(i))}" cy="${px(ya(p.top1Agreement))}" r="2.5" fill="${AGREE_COLOR}"/>`);
  });
  const c = pts.findIndex((p) => p.count === curve.chosen);
  if (curve.chosen > 0 && c >= 0) {
    out.push(
      `<circle class="chosen" data-count="${curve.chosen}" cx="${px(x(c))}" cy="${px(y(pts[c].perplexity))}" r="8" fill="none" stroke="${CHART_COLORS.removed}" stroke-width="2"/>`,
      `<text x="${px(x(c))}" y="${px(y(pts[c].perplexity) - 13)}" font-size="11" text-anchor="middle" fill="${CHART_COLORS.removed}">chosen</text>`,
    );
  }
  const axisY = margin.top + plotH;
  out.push(
    `<line x1="${margin.left}" y1="${px(axisY)}" x2="${px(margin.left + plotW)}" y2="${px(axisY)}" stroke="${CHART_COLORS.axis}"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${px(axisY)}" stroke="${CHART_COLORS.axis}"/>`,
    `<g font-size="11" fill="${CHART_COLORS.muted}" text-anchor="middle">`,
    ...pts.map((p, i) => `<text x="${px(x(i))}" y="${px(axisY + 17)}">${p.count}</text>`),
    '</g>',
    `<text x="${px(margin.left + plotW / 2)}" y="${px(height - 14)}" font-size="12" text-anchor="middle" fill="${CHART_COLORS.text}">layers removed (in the strategy's order)</text>`,
    `<text transform="translate(18 ${px(margin.top + plotH / 2)}) rotate(-90)" font-size="12" text-anchor="middle" fill="${CHART_COLORS.text}">perplexity</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
