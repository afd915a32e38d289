/**
 * report.md: the run in one page: summary, the chart (chart.svg beside it), every layer's
 * scores, why the chosen layers went, and the same cut for mergekit and llama.cpp users.
 */
import { formatScore } from './buildReport';
import { formatLayerList, mergekitYaml } from './cuts';
import { bootstrapMarkdown, bootstrapWarnings } from './bootstrapSection';
import { healMarkdown } from './healSection';
import { boundChoiceText, comparisonLine, qualityCurveMarkdown } from './qualitySection';
import { healedText } from './healedText';
import { METRIC_NAMES, type PruneReport, type Strategy } from './types';
import { formatBytes, formatCount } from '../util/format';

/** report.json, the report for tools (file names of the report inside the output directory). */
export const REPORT_JSON = 'report.json';
/** report.md, the report for people. */
export const REPORT_MD = 'report.md';
/** chart.svg, the per-layer score chart. */
export const CHART_SVG = 'chart.svg';

const STRATEGY_TEXT: Record<Strategy, string> = {
  'one-shot': 'one-shot (ShortGPT: remove the lowest-scored layers at once)',
  iterative: 'iterative (remove the lowest-scored layer, re-score the shortened model, repeat)',
  block: 'block (remove the contiguous block whose input and output are closest, Gromov et al. 2024)',
};

const int = formatCount;
const bytes = formatBytes;
const pct = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`;
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
/** Table cells may not hold a raw '|'. */
const cell = (s: string): string => s.replace(/\|/g, '\\|');

function change(before: number, after: number, fmt: (n: number) => string): string {
  return `${fmt(before)} → ${fmt(after)} (${pct(after / before - 1)})`;
}

/** report.md: the run for people: summary, chart, every layer's scores, why the chosen layers went, the cut for mergekit and llama.cpp. */
export function renderReportMarkdown(report: PruneReport, opts: { chartFile?: string } = {}): string {
  const m = report.model;
  const metricName = METRIC_NAMES[report.metric];
  const removed = report.removedLayers;
  const out: string[] = [];
  out.push('# ShortGPT pruning report', '');
  if (report.dryRun) out.push('> Dry run: layers chosen, nothing written.', '');

  out.push(
    `- **Model:** ${code(m.source)} (${m.architecture}, ${m.numLayers} layers) → ${m.output === null ? 'not written' : code(m.output)} (${m.numLayersAfter} layers)`,
    `- **Removed:** ${removed.length} of ${m.numLayers} layers (${((removed.length / m.numLayers) * 100).toFixed(1)}%): ${removed.length ? formatLayerList(removed) : 'none'}`,
    `- **Chosen by:** ${metricName}, strategy ${STRATEGY_TEXT[report.strategy]}` +
      (report.request.keepFirst || report.request.keepLast ? `; first ${report.request.keepFirst} and last ${report.request.keepLast} layers protected` : '') +
      boundChoiceText(report),
    `- **Calibration:** ${report.calibration.description} from ${report.calibration.sources.map(code).join(', ')}`,
    ...(report.calibration.warnings ?? []).map((w) => `- **Warning:** ${w}`),
    ...bootstrapWarnings(report).map((w) => `- **Warning:** ${w}`),
  );
  if (report.perplexity) {
    const p = report.perplexity;
    out.push(`- **Perplexity** on ${p.data.map(code).join(', ')} (${int(p.predictions)} predictions): ${p.before.toFixed(3)} → ${p.after.toFixed(3)} (${pct(p.rise)}${healedText(report.heal?.perplexity, 3)})`);
    if (p.kl && p.top1Agreement !== undefined) out.push(comparisonLine(p));
    out.push(...(p.warnings ?? []).map((w) => `- **Warning:** ${w}`));
  }
  if (m.parameters) out.push(`- **Parameters:** ${change(m.parameters.before, m.parameters.after, int)}`);
  if (m.bytes) out.push(`- **Size:** ${change(m.bytes.before, m.bytes.after, bytes)}`);
  out.push('', `![Block Influence per layer; removed layers in red](${opts.chartFile ?? CHART_SVG})`, '');

  out.push('## Layers', '');
  out.push(`Scores are means over every calibration token; rank 1 is the least influential by ${metricName}.`, '');
  out.push('| layer | Block Influence | angular distance | relative magnitude | rank | | new index |');
  out.push('| ---: | ---: | ---: | ---: | ---: | :--- | ---: |');
  for (const l of report.layers) {
    out.push(
      `| ${l.layer} | ${formatScore(l.bi)} | ${formatScore(l.angular)} | ${formatScore(l.relmag)} | ${l.rank} | ${l.removed ? '**removed**' : 'kept'} | ${l.newIndex ?? '—'} |`,
    );
  }
  out.push('');
  // The authors' rule (an undefined cosine counts as 0.5) applies to zero-norm states only;
  // say how often it did, so a score resting on it is not mistaken for a measured one.
  const zero = report.layers.filter((l) => (l.zeroNormTokens ?? 0) > 0);
  out.push(
    zero.length === 0
      ? 'Zero-norm hidden states (cosine undefined, counted as 0.5): none.'
      : `Zero-norm hidden states (cosine undefined, counted as 0.5): ${zero.map((l) => `layer ${l.layer}: ${l.zeroNormTokens} token${l.zeroNormTokens === 1 ? '' : 's'}`).join(', ')}.`,
    '',
  );

  if (removed.length) {
    out.push('## Why these layers', '');
    for (const l of report.layers) if (l.removed) out.push(`- layer ${l.layer}: ${cell(l.reason ?? '')}`);
    out.push('');
  }
  if (report.iterations && report.iterations.length) {
    out.push('## Iterations', '', `| step | removed | ${metricName} at that step | layers left |`, '| ---: | ---: | ---: | ---: |');
    for (const s of report.iterations) out.push(`| ${s.step} | ${s.removed} | ${formatScore(s.score)} | ${Object.keys(s.scores).length} |`);
    out.push('');
  }
  if (report.block) {
    const b = report.block;
    out.push('## Block', '', `Layers ${b.start}..${b.end - 1} (${b.end - b.start} layers), angular distance ${formatScore(b.distance)} between the block's input and output on the last token.`, '');
  }

  out.push(...healMarkdown(report));
  out.push(...qualityCurveMarkdown(report));
  out.push(...bootstrapMarkdown(report));
  out.push('## The same cut in other tools', '');
  if (removed.length) {
    const file = m.output === null ? '' : '; written beside the weights as `mergekit.yaml`: `mergekit-yaml mergekit.yaml OUTPUT_DIR` rebuilds this model';
    out.push(`mergekit (\`merge_method: passthrough\`; \`layer_range\` is half-open, [start, end)${file}):`, '', '```yaml', mergekitYaml(m.source, report.cut.mergekit, { dtype: report.cut.mergekitDtype }), '```', '');
    out.push(
      `llama.cpp (GGUF): ${code(`llama-quantize --prune-layers ${report.cut.llamaCppPruneLayers.join(',')} model.gguf model-pruned.gguf TYPE`)}`,
      '',
    );
  } else {
    out.push('No layers removed.', '');
  }
  const mapping = report.keptLayers.map((old) => `${old}→${report.layerMapping[String(old)]}`).join(', ');
  out.push(`Layer mapping, source → pruned: ${mapping}.`, '');

  out.push('## Run', '');
  const timings = Object.entries(report.timings);
  if (timings.length) out.push(`Timings: ${timings.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}.`, '');
  out.push(`Versions: ${Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join(', ')}. Created ${report.createdAt}.`, '');
  return out.join('\n');
}
