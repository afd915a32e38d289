/** The benchmark's human-readable table: one row per shape, then each shape's GEMMs and estimate. */
import type { BenchResult } from './runner';

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(0)}%`);
const num = (x: number | null, digits = 1): string => (x === null ? '-' : x.toFixed(digits));
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);

export function formatBenchResults(results: BenchResult[]): string {
  const lines: string[] = [];
  const r0 = results[0];
  if (r0) {
    const precision = r0.precision === 'bf16' ? '; precision bf16 (%peak is of the f32 FMA peak)' : '';
    lines.push(`cpu, ${r0.threads} thread(s), kernel ${r0.kernel}; synthetic ${r0.dtype} weights${precision}; statistics on; lm_head not run`);
  }
  lines.push(...table([
    ['shape', 'layers', 'tokens', 'tok/s', 'GFLOP/s', 'peak', '%peak', 'GEMM GFLOP/s', 'GEMM %peak', 'peak RSS MiB'],
    ...results.map((r) => [
      r.shape,
      r.layersRun < r.layers ? `${r.layersRun}/${r.layers}` : String(r.layers),
      `${r.sequences}x${r.seqLen}`,
      r.tokensPerSecond.toFixed(1),
      num(r.gflops),
      num(r.peakGflops),
      pct(r.fractionOfPeak),
      num(r.gemmGflops),
      pct(r.gemmFractionOfPeak),
      mib(r.peakRssBytes),
    ]),
  ]));
  for (const r of results) {
    lines.push('');
    lines.push(`${r.shape}: hidden ${r.hiddenSize}, intermediate ${r.intermediateSize}, heads ${r.numHeads}/${r.numKvHeads} x ${r.headDim}; `
      + `${(r.flops / r.tokens / 1e9).toFixed(3)} GFLOP/token (attention ${(100 * r.attentionFlops / r.flops).toFixed(1)}%); `
      + `median of ${r.runs} run(s): ${r.seconds.toFixed(3)} s${r.layersRun < r.layers ? ` (scaled from ${r.layersRun} layers)` : ''}`);
    if (r.gemm.length > 0) {
      lines.push(...table([
        ['  GEMM', 'M', 'N', 'K', 'GFLOP/s', '%peak'],
        ...r.gemm.map((g) => [`  ${g.ops}`, String(g.m), String(g.n), String(g.k), g.gflops.toFixed(1), pct(r.peakGflops === null ? null : g.gflops / r.peakGflops)]),
      ]));
    }
    if (r.estimate) {
      const e = r.estimate;
      const share = (s: number): string => `${s.toFixed(3)} s (${((100 * s) / r.seconds).toFixed(0)}%)`;
      lines.push(`  estimate: GEMMs at benchGemm speed ${share(e.gemmSeconds)}; everything else ${share(e.otherSeconds)} (attention, weight reading/packing, norms, statistics)`);
    }
  }
  return `${lines.join('\n')}\n`;
}
