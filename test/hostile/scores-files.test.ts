/**
 * Partial and merged score files are user input (copied between machines, hand-edited,
 * truncated): values that parse as JSON but cannot be real (a zero count that divides to NaN, a
 * shard count that sizes merge's bookkeeping, a missing calibration summary) must be refused
 * naming the file, not crash or write NaN scores.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mergePartials } from '../../lib/scoring/merge';
import { readPartialFile, readScoresFile } from '../../lib/scoring/mergeFiles';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { runCli } from './helpers/cliProcess';

// scoreShard, wrapped so a test can see whether the scoring pass ran (the real one runs).
jest.mock('../../lib/scoring/partial', () => {
  const actual = jest.requireActual('../../lib/scoring/partial');
  return { ...actual, scoreShard: jest.fn(actual.scoreShard) };
});
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scoreShardSpy = (require('../../lib/scoring/partial') as typeof import('../../lib/scoring/partial')).scoreShard;

let tmp: string;
let partial: Record<string, any>;
let scores: Record<string, any>;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-scores-files-'));
  const p = path.join(tmp, 'p0.json');
  const r = await runCli(['score', stories260kDir, '--calib', tinyStoriesText, '--samples', '8', '--seq-len', '32', '--threads', '1', '--shard', '0/1', '--partial', p, '--quiet']);
  if (r.status !== 0) throw new Error(r.stderr);
  partial = JSON.parse(fs.readFileSync(p, 'utf8'));
  scores = mergePartials([{ file: p, partial: readPartialFile(p) }]) as unknown as Record<string, any>;
}, 60_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `doc` edited by `edit`, written to a new file. */
function edited(doc: Record<string, any>, name: string, edit: (d: Record<string, any>) => void): string {
  const d = JSON.parse(JSON.stringify(doc));
  edit(d);
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify(d));
  return file;
}

describe('partial scores files', () => {
  it('the unedited partial reads and merges to finite scores', () => {
    const file = edited(partial, 'ok.json', () => {});
    const merged = mergePartials([{ file, partial: readPartialFile(file) }]);
    expect(merged.layers.every((l) => Number.isFinite(l.bi) && Number.isFinite(l.angular))).toBe(true);
  });

  it('refuses a layer with zero tokens (its means would be NaN)', () => {
    const file = edited(partial, 'zero-tokens.json', (d) => { d.layers[0].tokens = 0; });
    expect(() => readPartialFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining(`${file}: layer sums entry 0`) }));
  });

  it('refuses more zero-norm tokens than tokens', () => {
    const file = edited(partial, 'nan-count.json', (d) => { d.layers[1].nanCount = d.layers[1].tokens + 1; });
    expect(() => readPartialFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('layer sums entry 1') }));
  });

  it('refuses block sums over zero windows', () => {
    const file = edited(partial, 'zero-seq.json', (d) => { d.block.sequences = 0; });
    expect(() => readPartialFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('block sums') }));
  });

  it('refuses a huge shard count cleanly (it sized an array: RangeError before)', () => {
    const file = edited(partial, 'huge-n.json', (d) => { d.shard.count = 1e15; d.provenance.shards = 1e15; });
    expect(() => readPartialFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('provenance.shards must be between 1 and') }));
  });

  it('refuses a shard count that disagrees with its provenance', () => {
    const file = edited(partial, 'n-mismatch.json', (d) => { d.shard.count = 2; });
    expect(() => readPartialFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('count = provenance.shards') }));
  });
});

describe('merged scores files (prune --scores)', () => {
  it('refuses a file without the calibration summary instead of a TypeError, and writes nothing', async () => {
    const file = edited(scores, 'no-summary.json', (d) => { delete d.provenance.data.summary; });
    expect(() => readScoresFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('provenance.data.summary') }));
    const out = path.join(tmp, 'out-no-summary');
    const r = await runCli(['prune', stories260kDir, '--scores', file, '--remove', '1', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ERR_SCORES_INVALID');
    expect(r.stderr).toContain(file);
    expect(fs.existsSync(out)).toBe(false);
  }, 30_000);

  it('refuses zero block windows instead of choosing a block from NaN scores', () => {
    const file = edited(scores, 'zero-block.json', (d) => { d.sums.block.sequences = 0; });
    expect(() => readScoresFile(file)).toThrow(expect.objectContaining({ code: 'ERR_SCORES_INVALID', message: expect.stringContaining('block sums') }));
  });
});

describe('score --shard --partial --eval', () => {
  it('refuses --eval data with fewer windows than shards before the scoring pass, naming --eval', async () => {
    const spy = scoreShardSpy as jest.Mock;
    spy.mockClear();
    {
      const { main } = await import('../../lib/cli/main');
      const { capture } = await import('../helpers/io');
      const evalFile = path.join(tmp, 'one-window.txt');
      fs.writeFileSync(evalFile, 'Once upon a time there was a cat.\n');
      const out = path.join(tmp, 'eval-few.json');
      const io = capture();
      const code = await main(['score', stories260kDir, '--calib', tinyStoriesText, '--samples', '8', '--seq-len', '32', '--threads', '1',
        '--shard', '1/2', '--partial', out, '--eval', evalFile, '--quiet'], io);
      expect(code).toBe(1);
      expect(io.err()).toContain('ERR_SHARD_EMPTY');
      expect(io.err()).toContain('2 shards need at least 2 --eval windows');
      expect(spy).not.toHaveBeenCalled();
      expect(fs.existsSync(out)).toBe(false);
    }
  }, 30_000);
});

describe('prune --scores with an edited layer count', () => {
  it('refuses sums for fewer layers than the model has, though the hashes match', async () => {
    const file = edited(scores, 'fewer-layers.json', (d) => {
      d.provenance.model.numHiddenLayers -= 1;
      d.sums.layers.pop();
      d.sums.block.sums.pop();
      d.sums.block.sums = d.sums.block.sums.map((row: number[]) => row.slice(0, row.length - 1));
    });
    expect(() => readScoresFile(file)).not.toThrow();
    const out = path.join(tmp, 'out-fewer');
    const r = await runCli(['prune', stories260kDir, '--scores', file, '--remove', '1', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ERR_SCORES_MODEL');
    expect(r.stderr).toMatch(/hold sums for \d+ layers/);
    expect(fs.existsSync(out)).toBe(false);
  }, 30_000);
});
