/**
 * The per-layer Block Influence bar chart (chart.svg), removed layers in a second colour with a
 * legend. Self-contained so it renders the same in a browser, on GitHub (which shows SVG through
 * <img>: no scripts, no external fonts or links) and in rsvg: explicit width/height/viewBox,
 * white background, system font stack.
 */
import * as path from 'node:path';
import { formatScore } from './buildReport';
import { formatLayerList } from './cuts';
import { escapeXml, labelEvery, niceTicks, px, tickLabel } from './svg';
import { METRIC_NAMES, type Metric, type PruneReport } from './types';

export const CHART_COLORS = { kept: '#4c78a8', removed: '#e45756', axis: '#333333', grid: '#e3e3e3', text: '#222222', muted: '#666666' };

const FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif";

/**
 * The opening of a chart's SVG: the root element (aria-label "title: summary"), its <title>, a
 * white background, and the title and subtitle lines at x = left.
 */
export function chartOpening(width: number, height: number, left: number, title: string, summary: string, subtitle: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${px(height)}" viewBox="0 0 ${px(width)} ${px(height)}" font-family="${escapeXml(FONT)}" role="img" aria-label="${escapeXml(`${title}: ${summary}`)}">`,
    `<title>${escapeXml(`${title} — ${subtitle}`)}</title>`,
    `<rect x="0" y="0" width="${px(width)}" height="${px(height)}" fill="#ffffff"/>`,
    `<text x="${left}" y="28" font-size="18" font-weight="600" fill="${CHART_COLORS.text}">${escapeXml(title)}</text>`,
    `<text x="${left}" y="50" font-size="12" fill="${CHART_COLORS.muted}">${escapeXml(subtitle)}</text>`,
  ];
}

/** Options of renderBlockInfluenceChart. */
export interface ChartOptions {
  /** Which score the bars show; default 'bi' (the paper's Block Influence). */
  metric?: Metric;
}

/** chart.svg: each layer's score as a bar, removed layers in a second colour; a self-contained SVG string. */
export function renderBlockInfluenceChart(report: PruneReport, opts: ChartOptions = {}): string {
  const metric = opts.metric ?? 'bi';
  const layers = report.layers;
  const n = layers.length;
  const values = layers.map((l) => l[metric]);
  const finite = values.filter((v) => Number.isFinite(v));
  const { step, top, ticks } = niceTicks(Math.max(0, ...finite));

  // Geometry: bars get 56 px each up to ~16 layers, then share 960 px (80 layers: 12 px each).
  const margin = { left: 72, right: 24, top: 84, bottom: 56 };
  const plotW = Math.min(960, Math.max(440, n * 56));
  const plotH = 260;
  const width = margin.left + plotW + margin.right;
  const height = margin.top + plotH + margin.bottom;
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.72);
  const y = (v: number): number => margin.top + plotH - (Math.max(0, v) / top) * plotH;
  const showValues = n <= 16;
  const every = labelEvery(n, Math.floor(plotW / 28));

  const name = METRIC_NAMES[metric];
  const removedCount = report.removedLayers.length;
  const title = `${name.charAt(0).toUpperCase()}${name.slice(1)} per layer`;
  const removedText = removedCount === 0 ? 'no layers removed' : `removed ${removedCount} of ${n}: ${formatLayerList(report.removedLayers)}`;
  const chosenBy = report.metric === metric ? '' : ` (chosen by ${METRIC_NAMES[report.metric]})`;
  const subtitle = `${path.basename(report.model.source)} · ${report.strategy} · ${removedText}${chosenBy}`;

  const out: string[] = [];
  out.push(...chartOpening(width, height, margin.left, title, removedText, subtitle));

  // Legend, top right.
  const lx = margin.left + plotW - 170;
  out.push(
    `<g font-size="12" fill="${CHART_COLORS.text}">`,
    `<rect x="${px(lx)}" y="60" width="12" height="12" fill="${CHART_COLORS.kept}"/><text x="${px(lx + 18)}" y="70.5">kept</text>`,
    `<rect x="${px(lx + 70)}" y="60" width="12" height="12" fill="${CHART_COLORS.removed}"/><text x="${px(lx + 88)}" y="70.5">removed</text>`,
    '</g>',
  );

  // Grid and y axis.
  out.push(`<g font-size="11" fill="${CHART_COLORS.muted}" text-anchor="end">`);
  for (const t of ticks) {
    const ty = y(t);
    out.push(`<line x1="${margin.left}" y1="${px(ty)}" x2="${px(margin.left + plotW)}" y2="${px(ty)}" stroke="${CHART_COLORS.grid}" stroke-width="1"/>`);
    out.push(`<text x="${margin.left - 8}" y="${px(ty + 4)}">${tickLabel(t, step)}</text>`);
  }
  out.push('</g>');

  // Bars.
  out.push('<g>');
  layers.forEach((l, i) => {
    const v = values[i];
    const x = margin.left + i * slot + (slot - barW) / 2;
    const by = Number.isFinite(v) ? y(v) : y(0);
    const cls = l.removed ? 'bar removed' : 'bar kept';
    const fill = l.removed ? CHART_COLORS.removed : CHART_COLORS.kept;
    const tip = `layer ${l.layer}: ${name} ${formatScore(v)}${l.removed ? ' (removed)' : ''}`;
    out.push(
      `<rect class="${cls}" data-layer="${l.layer}" x="${px(x)}" y="${px(by)}" width="${px(barW)}" height="${px(y(0) - by)}" fill="${fill}"><title>${escapeXml(tip)}</title></rect>`,
    );
    if (showValues) {
      const label = Number.isFinite(v) ? v.toFixed(3) : 'n/a';
      out.push(`<text x="${px(x + barW / 2)}" y="${px(by - 5)}" font-size="11" text-anchor="middle" fill="${CHART_COLORS.text}">${label}</text>`);
    }
  });
  out.push('</g>');

  // x axis, ticks and labels.
  const axisY = y(0);
  out.push(`<line x1="${margin.left}" y1="${px(axisY)}" x2="${px(margin.left + plotW)}" y2="${px(axisY)}" stroke="${CHART_COLORS.axis}" stroke-width="1"/>`);
  out.push(`<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${px(axisY)}" stroke="${CHART_COLORS.axis}" stroke-width="1"/>`);
  out.push(`<g font-size="11" fill="${CHART_COLORS.muted}" text-anchor="middle">`);
  for (let i = 0; i < n; i += every) {
    const cx = margin.left + (i + 0.5) * slot;
    out.push(`<line x1="${px(cx)}" y1="${px(axisY)}" x2="${px(cx)}" y2="${px(axisY + 4)}" stroke="${CHART_COLORS.axis}"/>`);
    out.push(`<text x="${px(cx)}" y="${px(axisY + 17)}">${layers[i].layer}</text>`);
  }
  out.push('</g>');

  // Axis titles.
  const yTitle = metric === 'bi' ? 'Block Influence (1 − mean cos)' : name;
  out.push(
    `<text x="${px(margin.left + plotW / 2)}" y="${px(height - 14)}" font-size="12" text-anchor="middle" fill="${CHART_COLORS.text}">layer (0-based)</text>`,
    `<text transform="translate(18 ${px(margin.top + plotH / 2)}) rotate(-90)" font-size="12" text-anchor="middle" fill="${CHART_COLORS.text}">${escapeXml(yTitle)}</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
