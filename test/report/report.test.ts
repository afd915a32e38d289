import { buildReport, rankLayers } from '../../lib/report/buildReport';
import { renderBlockInfluenceChart, CHART_COLORS } from '../../lib/report/chart';
import { formatLayerList, llamaCppPruneLayers, mergekitSlices } from '../../lib/report/cuts';
import { reportFiles } from '../../lib/report/files';
import { renderReportMarkdown } from '../../lib/report/markdown';
import { niceTicks } from '../../lib/report/svg';
import type { ReportInput } from '../../lib/report/types';
import type { CalibrationSummary } from '../../lib/data/windows';
import { parseXml } from './xml';
import { loadGolden } from '../helpers/golden';

const golden = loadGolden();
const summary: CalibrationSummary = { documents: 24, tokens: 6110, windows: 24, windowsAvailable: 24, tokensUsed: 6110, seqLen: 256, stride: 256, samples: null, seed: null };

function input(over: Partial<ReportInput> = {}): ReportInput {
  return {
    model: { source: '/models/stories260k', output: '/tmp/out', architecture: 'LlamaForCausalLM', numLayers: 5, parameters: { before: 260032, after: 212_000 }, bytes: { before: 1044984, after: 850000 } },
    metric: 'bi',
    strategy: 'one-shot',
    request: { remove: 1 },
    scores: golden.layers.map(({ bi, angular, relmag }) => ({ bi, angular, relmag })),
    removed: [2],
    calibration: { sources: ['tinystories-valid.txt'], summary },
    perplexity: { data: ['eval.txt'], predictions: 6086, before: golden.perplexity, after: golden.perplexitySkipping['2'] },
    timings: { score: 0.5, total: 1.25 },
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

describe('layer cuts', () => {
  it('mergekit slices are the contiguous kept runs, half-open', () => {
    expect(mergekitSlices(5, [2])).toEqual([{ layer_range: [0, 2] }, { layer_range: [3, 5] }]);
    expect(mergekitSlices(32, [21, 22, 23, 24, 25, 26, 27, 28, 29])).toEqual([{ layer_range: [0, 21] }, { layer_range: [30, 32] }]);
    expect(mergekitSlices(4, [0, 3])).toEqual([{ layer_range: [1, 3] }]);
    expect(mergekitSlices(4, [])).toEqual([{ layer_range: [0, 4] }]);
    expect(mergekitSlices(6, [4, 1, 1])).toEqual([{ layer_range: [0, 1] }, { layer_range: [2, 4] }, { layer_range: [5, 6] }]);
    expect(() => mergekitSlices(4, [4])).toThrow(expect.objectContaining({ code: 'ERR_LAYER_INDEX' }));
  });

  it('the slices cover exactly the kept layers (property)', () => {
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + (trial % 13);
      const removed = Array.from({ length: n }, (_, i) => i).filter((i) => (i * 7 + trial) % 3 === 0);
      const covered = mergekitSlices(n, removed).flatMap((s) => Array.from({ length: s.layer_range[1] - s.layer_range[0] }, (_, k) => s.layer_range[0] + k));
      expect(covered).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => !removed.includes(i)));
    }
  });

  it('llama.cpp indices are the removed layers, sorted and unique', () => {
    expect(llamaCppPruneLayers([29, 21, 22, 21])).toEqual([21, 22, 29]);
    expect(formatLayerList([21, 22, 23, 29, 5, 6])).toBe('5, 6, 21-23, 29');
  });
});

describe('buildReport', () => {
  it('fills every schema field from the golden scores', () => {
    const r = buildReport(input());
    expect(Object.keys(r).sort()).toEqual(
      ['block', 'calibration', 'createdAt', 'cut', 'dryRun', 'iterations', 'keptLayers', 'layerMapping', 'layers', 'metric', 'model', 'perplexity', 'removedLayers', 'request', 'schema', 'schemaVersion', 'strategy', 'timings', 'versions'].sort(),
    );
    expect(r.layers).toHaveLength(5);
    for (const l of r.layers) expect(Object.keys(l).sort()).toEqual(['angular', 'bi', 'layer', 'newIndex', 'rank', 'reason', 'relmag', 'removed', 'zeroNormTokens']);
    for (const l of r.layers) expect(l.zeroNormTokens).toBe(0);
    expect(r.layers.map((l) => l.rank)).toEqual([5, 3, 1, 2, 4]);
    expect(r.removedLayers).toEqual([2]);
    expect(r.keptLayers).toEqual([0, 1, 3, 4]);
    expect(r.layerMapping).toEqual({ 0: 0, 1: 1, 3: 2, 4: 3 });
    expect(r.layers.map((l) => l.newIndex)).toEqual([0, 1, null, 2, 3]);
    expect(r.layers[2].reason).toBe('Block Influence 0.1159, rank 1 of 5 (lowest = least influential)');
    expect(r.model.numLayersAfter).toBe(4);
    expect(r.perplexity?.rise).toBeCloseTo(golden.perplexitySkipping['2'] / golden.perplexity - 1, 12);
    expect(r.calibration).toMatchObject({ ...summary, sources: ['tinystories-valid.txt'], description: '24 documents, 6,110 tokens -> 24 windows of <= 256 tokens' });
    expect(r.cut).toEqual({ mergekit: [{ layer_range: [0, 2] }, { layer_range: [3, 5] }], llamaCppPruneLayers: [2] });
    expect(r.versions['shortgpt-native']).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.versions.node).toBe(process.versions.node);
    // Round-trips through JSON unchanged (report.json is this object).
    expect(JSON.parse(reportFiles(r)['report.json'])).toEqual(r);
  });

  it('explains iterative and block choices, and keeps chooser reasons', () => {
    const it = buildReport(input({
      strategy: 'iterative', removed: [2, 3],
      iterations: [
        { step: 1, removed: 2, score: 0.1159, scores: { 0: 0.23, 1: 0.14, 2: 0.1159, 3: 0.12, 4: 0.16 } },
        { step: 2, removed: 3, score: 0.13, scores: { 0: 0.23, 1: 0.14, 3: 0.13, 4: 0.16 } },
      ],
    }));
    expect(it.layers[3].reason).toContain('among the 4 layers left at step 2');
    const bl = buildReport(input({ strategy: 'block', removed: [2, 3], block: { start: 2, end: 4, distance: 0.21 } }));
    expect(bl.layers[2].reason).toContain('block of layers 2..3');
    expect(buildReport(input({ reasons: { 2: 'because' } })).layers[2].reason).toBe('because');
  });

  it('ranks NaN last and ties by index', () => {
    expect(rankLayers([0.3, NaN, 0.1, 0.1])).toEqual([3, 4, 1, 2]);
  });

  it('rejects inconsistent input', () => {
    expect(() => buildReport(input({ removed: [0, 1, 2, 3, 4] }))).toThrow(expect.objectContaining({ code: 'ERR_REPORT_INPUT' }));
    expect(() => buildReport(input({ removed: [7] }))).toThrow(expect.objectContaining({ code: 'ERR_LAYER_INDEX' }));
    expect(() => buildReport(input({ scores: [] }))).toThrow(expect.objectContaining({ code: 'ERR_REPORT_INPUT' }));
  });
});

describe('report.md', () => {
  it('has the summary, the chart, a row per layer and the cut in mergekit and llama.cpp terms', () => {
    const md = renderReportMarkdown(buildReport(input()));
    expect(md).toContain('![Block Influence per layer; removed layers in red](chart.svg)');
    expect(md).toMatch(/Perplexity.*3\.294 → 6\.622 \(\+101\.1%\)/);
    expect(md).toContain('| 2 | 0.1159 | 0.1467 | 0.4741 | 1 | **removed** | — |');
    expect(md).toContain('| 3 | 0.1205 | 0.1520 | 0.4837 | 2 | kept | 2 |');
    expect(md).toContain('        layer_range: [0, 2]\n');
    expect(md).toContain('merge_method: passthrough');
    expect(md).toContain('`llama-quantize --prune-layers 2 model.gguf model-pruned.gguf TYPE`');
    expect(md).toContain('Layer mapping, source → pruned: 0→0, 1→1, 3→2, 4→3.');
    expect(md).toContain('- **Parameters:** 260,032 → 212,000 (−18.5%)');
    const dry = renderReportMarkdown(buildReport(input({ dryRun: true, perplexity: undefined, model: { ...input().model, output: null } })));
    expect(dry).toContain('Dry run');
    expect(dry).not.toContain('Perplexity');
  });
});

describe('chart.svg', () => {
  function bars(svg: string) {
    return parseXml(svg).filter((e) => e.name === 'rect' && (e.attrs.class ?? '').startsWith('bar'));
  }

  it('is well-formed, self-contained, with one bar per layer and removed bars marked', () => {
    const svg = renderBlockInfluenceChart(buildReport(input({ removed: [2, 3] })));
    const els = parseXml(svg);
    const root = els[0];
    expect(root.name).toBe('svg');
    expect(root.attrs).toMatchObject({ xmlns: 'http://www.w3.org/2000/svg' });
    expect(root.attrs.viewBox).toBe(`0 0 ${root.attrs.width} ${root.attrs.height}`);
    expect(svg).not.toMatch(/<script|href=|@import|url\(/);
    expect(els[2]).toMatchObject({ name: 'rect', attrs: { fill: '#ffffff', width: root.attrs.width } });
    const b = bars(svg);
    expect(b.map((e) => e.attrs['data-layer'])).toEqual(['0', '1', '2', '3', '4']);
    expect(b.filter((e) => e.attrs.class === 'bar removed').map((e) => e.attrs['data-layer'])).toEqual(['2', '3']);
    for (const e of b) expect(e.attrs.fill).toBe(e.attrs.class === 'bar removed' ? CHART_COLORS.removed : CHART_COLORS.kept);
    // legend: a swatch in each colour with its label
    expect(svg).toMatch(new RegExp(`fill="${CHART_COLORS.removed}"/><text[^>]*>removed</text>`));
    expect(svg).toMatch(new RegExp(`fill="${CHART_COLORS.kept}"/><text[^>]*>kept</text>`));
    expect(svg).toContain('>Block Influence per layer</text>');
    expect(svg).toContain('>layer (0-based)</text>');
    // bar heights are proportional to BI
    const h = b.map((e) => Number(e.attrs.height));
    golden.layers.forEach((l, i) => expect(h[i] / h[0]).toBeCloseTo(l.bi / golden.layers[0].bi, 2));
  });

  it('stays readable with 80 layers: 80 bars, thinned x labels, fixed width', () => {
    const scores = Array.from({ length: 80 }, (_, i) => ({ bi: 0.05 + 0.3 * Math.exp(-i / 5), angular: 0.1, relmag: 0.3 }));
    const removed = Array.from({ length: 20 }, (_, i) => 50 + i);
    const r = buildReport(input({ model: { source: 'big & "model"', output: null, architecture: 'LlamaForCausalLM', numLayers: 80 }, scores, removed, perplexity: undefined }));
    const svg = renderBlockInfluenceChart(r);
    const b = bars(svg);
    expect(b).toHaveLength(80);
    expect(b.filter((e) => e.attrs.class === 'bar removed')).toHaveLength(20);
    expect(Number(parseXml(svg)[0].attrs.width)).toBeLessThanOrEqual(1100);
    expect(svg).toContain('big &amp; &quot;model&quot;');
    expect(svg).toContain('removed 20 of 80: 50-69');
  });

  it('nice ticks cover the data', () => {
    expect(niceTicks(0.234)).toMatchObject({ step: 0.05, top: 0.25 });
    expect(niceTicks(0.46).top).toBe(0.5);
    expect(niceTicks(0).top).toBe(1);
  });
});

describe('the XML checker itself', () => {
  it('rejects what a browser would reject', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg a=1/>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow();
    expect(() => parseXml('<svg/><svg/>')).toThrow();
    expect(() => parseXml('<svg x="1" x="2"/>')).toThrow();
    expect(parseXml('<svg><g a="&amp;"/></svg>').map((e) => e.name)).toEqual(['svg', 'g']);
  });
});
