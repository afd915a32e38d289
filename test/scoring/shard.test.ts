/**
 * The pieces of sharded scoring that need no model: --shard parsing (I/N and the schedulers'
 * environments), the window split, the block strategy's pair sums against block.ts's own
 * meanAngularDistance, and the merge's refusals of partials that do not belong together.
 */
import type { NativeLastTokenStates } from '../../binding';
import { ShortGptError, UsageError } from '../../lib/errors';
import { meanAngularDistance } from '../../lib/prune/strategies/block';
import { checkPartials, mergePartials, type NamedPartial } from '../../lib/scoring/merge';
import { blockSumsOf, PARTIAL_FORMAT, PARTIAL_VERSION, type PartialScores } from '../../lib/scoring/partial';
import type { ScoringProvenance } from '../../lib/scoring/partialProvenance';
import { parseShard, shardRange } from '../../lib/scoring/shard';
import { mulberry32 } from '../../lib/util/prng';

describe('--shard', () => {
  it('I/N: 0-based, I < N, N >= 1', () => {
    expect(parseShard('0/1')).toMatchObject({ index: 0, count: 1 });
    expect(parseShard('3/4')).toMatchObject({ index: 3, count: 4, source: '--shard 3/4' });
    for (const bad of ['4/4', '1/0', '-1/4', '1', '1/2/3', 'a/b', '', '1 /2']) expect(() => parseShard(bad)).toThrow(UsageError);
    expect(() => parseShard('1/4', {}, 5)).toThrow(/--shards says 5/);
  });

  it('auto: a Slurm job array, its index counted from SLURM_ARRAY_TASK_MIN', () => {
    const s = parseShard('auto', { SLURM_ARRAY_TASK_ID: '12', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_COUNT: '4' });
    expect(s).toMatchObject({ index: 2, count: 4 });
    expect(s.source).toMatch(/Slurm job array.*SLURM_ARRAY_TASK_ID=12/);
    // No MIN: the array starts at 0.
    expect(parseShard('auto', { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2' })).toMatchObject({ index: 1, count: 2 });
    // A stepped array (--array=0-6:2) has IDs beyond MIN+COUNT-1: refused, saying how to submit.
    expect(() => parseShard('auto', { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '4' })).toThrow(/without a step/);
    expect(() => parseShard('auto', { SLURM_ARRAY_TASK_ID: '1' })).toThrow(/SLURM_ARRAY_TASK_COUNT/);
  });

  it('auto: every task of a stepped or sparse Slurm array refuses, also those whose own ID fits in MIN..MIN+COUNT-1', () => {
    // --array=0-6:2: IDs 0, 2, 4, 6; COUNT 4. ID 2 alone looks like shard 2 of 4, but shard 1 and 3 never run.
    const stepped = { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '6', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' };
    expect(() => parseShard('auto', stepped)).toThrow(/not contiguous.*--array=0-3/);
    expect(() => parseShard('auto', { ...stepped, SLURM_ARRAY_TASK_STEP: undefined })).toThrow(/not contiguous/);
    // --array=1,5: MIN 1, MAX 5, COUNT 2; ID 1 fits on its own.
    expect(() => parseShard('auto', { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '5', SLURM_ARRAY_TASK_COUNT: '2' })).toThrow(/not contiguous/);
    // A contiguous array with Slurm's full set of variables is accepted.
    expect(parseShard('auto', { SLURM_ARRAY_TASK_ID: '11', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_MAX: '13', SLURM_ARRAY_TASK_STEP: '1', SLURM_ARRAY_TASK_COUNT: '4' })).toMatchObject({ index: 1, count: 4 });
  });

  it('auto: a Kubernetes Indexed Job, with the count from --shards or SHORTGPT_SHARDS', () => {
    expect(parseShard('auto', { JOB_COMPLETION_INDEX: '5' }, 8)).toMatchObject({ index: 5, count: 8 });
    const s = parseShard('auto', { JOB_COMPLETION_INDEX: '0', SHORTGPT_SHARDS: '3' });
    expect(s).toMatchObject({ index: 0, count: 3 });
    expect(s.source).toMatch(/Kubernetes Indexed Job/);
    expect(() => parseShard('auto', { JOB_COMPLETION_INDEX: '2' })).toThrow(/--shards N/);
    expect(() => parseShard('auto', { JOB_COMPLETION_INDEX: '8' }, 8)).toThrow(/not below/);
    expect(() => parseShard('auto', { JOB_COMPLETION_INDEX: '1', SHORTGPT_SHARDS: '3' }, 4)).toThrow(/disagree/);
  });

  it('auto with no scheduler names both variables it looked for', () => {
    expect(() => parseShard('auto', {})).toThrow(/SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX/);
  });
});

describe('shardRange', () => {
  it('splits W windows into N contiguous ranges that cover them once, sizes within 1', () => {
    for (const [w, n] of [[1, 1], [7, 3], [100, 7], [64, 64], [1000, 8]]) {
      let next = 0;
      const sizes: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = shardRange(w, i, n);
        expect(r.start).toBe(next);
        sizes.push(r.end - r.start);
        next = r.end;
      }
      expect(next).toBe(w);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
  });

  it('refuses more shards than windows', () => {
    expect(() => shardRange(3, 0, 4)).toThrow(expect.objectContaining({ code: 'ERR_SHARD_EMPTY' }));
  });
});

/** Random last-token states for `layers` layers (positions -1..layers-1), with one zero state. */
function randomStates(layers: number, sequences: number, hidden: number, seed: number): NativeLastTokenStates {
  const rand = mulberry32(seed);
  const data = new Float32Array((layers + 1) * sequences * hidden).map(() => rand() * 2 - 1);
  data.fill(0, 2 * sequences * hidden + hidden, 2 * sequences * hidden + 2 * hidden); // a zero-norm state: counts 0.5
  return { sequences, hiddenSize: hidden, layers: Array.from({ length: layers + 1 }, (_, i) => i - 1), data };
}

describe('blockSumsOf', () => {
  it('holds, for every pair of positions, the sum block.ts would average', () => {
    const L = 5;
    const S = 6;
    const H = 16;
    const st = randomStates(L, S, H, 7);
    const b = blockSumsOf(st, L);
    expect(b.sequences).toBe(S);
    const view = (p: number) => st.data.subarray(p * S * H, (p + 1) * S * H);
    for (let a = 0; a <= L; a++) {
      expect(b.sums[a]).toHaveLength(L - a);
      for (let c = a + 1; c <= L; c++) {
        // Same per-window arithmetic; only the final division differs.
        expect(b.sums[a][c - a - 1] / S).toBeCloseTo(meanAngularDistance(view(a), view(c), S, H), 14);
      }
    }
  });
});

function provenance(over: Partial<{ config: string; windows: number; seqLen: number; shards: number; precision: 'f32' | 'bf16' }> = {}): ScoringProvenance {
  return {
    model: { architecture: 'LlamaForCausalLM', numHiddenLayers: 2, hiddenSize: 4, configSha256: over.config ?? 'c'.repeat(64), tensorHeadersSha256: 'h'.repeat(64), files: [] },
    data: {
      sources: ['calib.txt'],
      tokenizerSha256: null,
      windowing: { seqLen: over.seqLen ?? 8, stride: 8, samples: null, seed: null, maxCalibTokens: null, textField: null, tokenDType: null },
      windows: over.windows ?? 4,
      tokens: 32,
      windowsSha256: 'w'.repeat(64),
      summary: { documents: 1, tokens: 32, windows: 4, windowsAvailable: 4, tokensUsed: 32, seqLen: 8, stride: 8, samples: null, seed: null },
    },
    engine: { device: 'cpu', precision: over.precision ?? 'f32' },
    shards: over.shards ?? 2,
  };
}

function partial(index: number, count: number, start: number, end: number, prov = provenance({ shards: count })): NamedPartial {
  const seqs = end - start;
  const p: PartialScores = {
    format: PARTIAL_FORMAT,
    version: PARTIAL_VERSION,
    tool: { name: 'shortgpt-native', version: 'test' },
    shard: { index, count, windowStart: start, windowEnd: end },
    provenance: prov,
    model: '/m',
    tokens: seqs * 8,
    sequences: seqs,
    layers: [0, 1].map((layer) => ({ layer, tokens: seqs * 8, sumCos: seqs * (7 - layer), sumAngular: seqs * 0.1, sumRelMag: seqs * 0.2, nanCount: 0 })),
    block: { sequences: seqs, sums: [[seqs * 0.1, seqs * 0.3], [seqs * 0.2], []] },
  };
  return { file: `shard-${index}.json`, partial: p };
}

describe('merge of partials', () => {
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return `${(e as ShortGptError).code}: ${(e as Error).message}`;
    }
    return 'no error';
  };

  it('adds the sums in shard order, whatever order the files come in', () => {
    const a = mergePartials([partial(1, 2, 2, 4), partial(0, 2, 0, 2)]);
    expect(a.tokens).toBe(32);
    expect(a.sequences).toBe(4);
    expect(a.sums.layers[0].sumCos).toBe(28);
    expect(a.layers[0].bi).toBeCloseTo(1 - 28 / 32, 15);
    expect(a.sums.block.sums[0][1]).toBeCloseTo(1.2, 14);
    expect(a.layers.map((l) => l.rank)).toEqual([1, 2]); // layer 0: BI 1/8, layer 1: 2/8
  });

  it('refuses a missing shard, a duplicated one, and partials of another N, model, data or engine, naming them', () => {
    expect(code(() => checkPartials([partial(0, 2, 0, 2)]))).toMatch(/^ERR_MERGE_MISMATCH: merge: missing shard 1 of 2/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(0, 2, 0, 2)]))).toMatch(/shard 0 of 2 given twice: shard-0.json and shard-0.json/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(1, 3, 2, 4, provenance({ shards: 3 }))]))).toMatch(/different shard count N: 2 in shard-0.json, 3 in shard-1.json/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(1, 2, 2, 4, provenance({ config: 'd'.repeat(64) }))]))).toMatch(/shard-1.json does not belong with shard-0.json: different model: config.json/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(1, 2, 2, 4, provenance({ seqLen: 16 }))]))).toMatch(/different windowing option seqLen: 8 in shard-0.json, 16 in shard-1.json/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(1, 2, 2, 4, provenance({ windows: 5 }))]))).toMatch(/different calibration data/);
    expect(code(() => checkPartials([partial(0, 2, 0, 2), partial(1, 2, 2, 4, provenance({ precision: 'bf16' }))]))).toMatch(/different engine: cpu\/f32 in shard-0.json, cpu\/bf16/);
    expect(code(() => checkPartials([partial(0, 2, 0, 1), partial(1, 2, 2, 4)]))).toMatch(/starts at window 2, expected 1/);
    expect(code(() => checkPartials([]))).toMatch(/no partial files/);
  });
});

describe('score --partial without --shard', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parseShardRequest, SHARD_OPTION_SPEC } = require('../../lib/cli/workersPartial') as typeof import('../../lib/cli/workersPartial');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parseCommandLine } = require('../../lib/cli/args') as typeof import('../../lib/cli/args');
  const parse = (argv: string[]) => parseCommandLine('score', argv, { ...SHARD_OPTION_SPEC, calib: { type: 'string', multiple: true } });

  it('is one shard of 1', () => {
    expect(parseShardRequest('score', parse(['m', '--calib', 'd.txt', '--partial', 'p.json']), {})).toMatchObject({ shard: { index: 0, count: 1 } });
  });

  it('with --shards N is a usage error, not shard 0 of N said to be "one shard of 1"', () => {
    expect(() => parseShardRequest('score', parse(['m', '--calib', 'd.txt', '--partial', 'p.json', '--shards', '4']), {})).toThrow(UsageError);
    expect(() => parseShardRequest('score', parse(['m', '--calib', 'd.txt', '--partial', 'p.json', '--shards', '4']), {})).toThrow(/--shards N only goes with --shard auto/);
  });
});
