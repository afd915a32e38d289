/** report.md's section on --heal (lib/prune/heal.ts): what was patched, how well it fits, and what it bought. */
import type { PruneReport } from './types';

const code = (s: string): string => '`' + s.replace(/`/g, "'") + '`';

export function healMarkdown(report: PruneReport): string[] {
  const h = report.heal;
  if (!h) return [];
  const out = ['## Healing', ''];
  out.push(
    `Least-squares patch (ReplaceMe, arXiv 2505.02819) folded into the down_proj of the layer before each cut: ` +
      `T = (MᵀM + αI)⁻¹ Mᵀ(h_e − h_s + M) over the calibration tokens, down_proj := Tᵀ·down_proj; α = ${h.alpha}.`,
    '',
    '| removed layers | patched layer | tensor | tokens | relative residual (healed) | relative residual (plain) |',
    '| :--- | ---: | :--- | ---: | ---: | ---: |',
  );
  for (const b of h.blocks) {
    const r = (v: number | null): string => (v === null ? '—' : v.toPrecision(4));
    out.push(`| ${b.removed[0]}..${b.removed[1] - 1} | ${b.patchedLayer ?? '— (starts at layer 0: left plain)'} | ${b.tensor ? code(b.tensor) : '—'} | ${b.tokens} | ${r(b.relativeResidual)} | ${r(b.plainResidual)} |`);
  }
  out.push('');
  if (h.perplexity) {
    const p = h.perplexity;
    out.push(`Perplexity on the --eval data: original ${p.original.toFixed(3)}, plain deletion ${p.plain.toFixed(3)}, healed (the written model) ${p.healed.toFixed(3)}.`, '');
  }
  return out;
}
