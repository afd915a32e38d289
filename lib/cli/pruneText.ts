/** What `prune --calib` and `demo` print for people: the scores, the choice, the plan, the result. */
import { formatLayerList, mergekitYaml } from '../report/cuts';
import { METRIC_NAMES } from '../report/types';
import type { PrunePlan, PruneResult } from '../prune/prune';
import { formatBytes, formatCount } from '../util/format';
import { bootstrapLines } from './bootstrapOption';
import { curveLines } from './qualityBoundOption';
import { healedText } from '../report/healedText';

const int = formatCount;
const bytes = formatBytes;

const pct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '0%');

export function scoreTable(r: PruneResult): string[] {
  const rows = r.report.layers;
  const lines = [`${'layer'.padStart(5)}  ${'BI'.padStart(9)}  ${'angular'.padStart(9)}  ${'relmag'.padStart(9)}  ${'rank'.padStart(4)}`];
  for (const l of rows) {
    lines.push(`${String(l.layer).padStart(5)}  ${l.bi.toFixed(6).padStart(9)}  ${l.angular.toFixed(6).padStart(9)}  ${l.relmag.toFixed(6).padStart(9)}  ${String(l.rank).padStart(4)}${l.removed ? '  removed' : ''}`);
  }
  return lines;
}

export function planLines(plan: PrunePlan, source: string): string[] {
  return [
    `remove layers (0-based): ${formatLayerList(plan.removed)}  (${plan.numLayers} -> ${plan.numLayersAfter} layers)`,
    `parameters: ${int(plan.parameters.before)} -> ${int(plan.parameters.after)} (${int(plan.parameters.saved)} saved, ${pct(plan.parameters.saved, plan.parameters.before)})`,
    `bytes: ${bytes(plan.bytes.before)} -> ${bytes(plan.bytes.after)} (${bytes(plan.bytes.saved)} saved)`,
    `mergekit layer_range slices: ${plan.mergekit.map((s) => `[${s.layer_range[0]}, ${s.layer_range[1]}]`).join(', ')}`,
    ...mergekitYaml(source, plan.mergekit, { dtype: plan.mergekitDtype }).split('\n').map((l) => `    ${l}`),
    `llama.cpp: llama-quantize --prune-layers ${plan.llamaCppPruneLayers.join(',')}`,
  ];
}

export function resultText(r: PruneResult): string {
  const rep = r.report;
  const lines = [
    `${rep.model.source}: ${rep.model.numLayers} layers scored by ${METRIC_NAMES[rep.metric]} on ${rep.calibration.description}`,
    ...scoreTable(r),
    `strategy ${rep.strategy}:`,
    ...rep.layers.filter((l) => l.removed).map((l) => `  layer ${l.layer}: ${l.reason}`),
    ...(rep.qualityCurve ? curveLines(rep.qualityCurve) : []),
    ...(rep.qualityCurve && rep.heal ? ['  (the curve is of plain deletion, layers skipped; the written model is then healed)'] : []),
    ...planLines(r.plan, rep.model.source),
  ];
  if (r.perplexity) {
    const p = r.perplexity;
    lines.push(`perplexity on ${rep.perplexity?.data.join(', ')} (${int(p.before.predictions)} predictions): ${p.before.perplexity.toFixed(4)} -> ${p.after.perplexity.toFixed(4)} (${p.rise >= 0 ? 'rose' : 'fell'} by ${(Math.abs(p.rise) * 100).toFixed(1)}%${healedText(rep.heal?.perplexity, 4)})`);
    const q = rep.perplexity;
    if (q?.kl && q.top1Agreement !== undefined) lines.push(`KL(original || pruned): mean ${q.kl.mean.toPrecision(4)} nats, p95 ${q.kl.p95.toPrecision(4)} nats; top-1 agreement ${(100 * q.top1Agreement).toFixed(2)}%${q.klOf ? ' (of the plain cut, before healing)' : ''}`);
  }
  if (rep.bootstrap) {
    lines.push(...bootstrapLines(rep.bootstrap));
    if (rep.bootstrap.note) lines.push(`  ${rep.bootstrap.note}`);
  }
  if (r.outDir) lines.push(`wrote ${r.outDir} (with ${[...(r.rewrite?.extraFiles ?? []), ...(r.rewrite?.generatedFiles ?? [])].join(', ')})`);
  else lines.push('dry run: nothing written');
  for (const w of r.rewrite?.warnings ?? []) lines.push(`warning: ${w}`);
  return `${lines.join('\n')}\n`;
}
