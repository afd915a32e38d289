/**
 * Every way a user can get `prune --calib` (and `score --calib`, `eval --data`) wrong, through
 * the CLI: a clear message naming the culprit, a stable code, a non-zero exit, and nothing
 * written (the output directory and its parent hold nothing new).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';

let tmp: string;
let data: string;
let noTokenizer: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-cli-errors-'));
  data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'ok.txt'), 'Once upon a time there was a cat. The cat liked to play in the sun with a ball.\n');
  fs.writeFileSync(path.join(data, 'empty.txt'), '');
  fs.writeFileSync(path.join(data, 'bad.jsonl'), '{"text": "a fine line"}\n{"text": "broken\n');
  fs.writeFileSync(path.join(data, 'nofield.jsonl'), '{"text": "a fine line"}\n{"body": "no text field here"}\n');
  fs.writeFileSync(path.join(data, 'latin1.txt'), Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x20, 0xff, 0xfe]));
  noTokenizer = path.join(tmp, 'no-tokenizer');
  fs.mkdirSync(noTokenizer);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(stories260kDir, f), path.join(noTokenizer, f));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const io = capture();
  const status = await main(args, io);
  return { status, out: io.out(), err: io.err() };
}

const ok = () => path.join(data, 'ok.txt');

// Each case gets its own OUT (tmp/out-<case>/pruned): with one shared path, a case that wrote
// could make a later case fail instead, and the failure would name the wrong case.
const cases: Array<[string, (out: string) => string[], number, RegExp]> = [
  ['a missing data file', (out) => ['prune', stories260kDir, '--calib', path.join(data, 'missing.txt'), '--remove', '1', '--out', out], 1, /\[ERR_DATA_MISSING\].*missing\.txt does not exist/],
  ['a corrupt JSONL file', (out) => ['prune', stories260kDir, '--calib', path.join(data, 'bad.jsonl'), '--remove', '1', '--out', out], 1, /\[ERR_DATA_CORRUPT\].*bad\.jsonl:2/],
  ['a text file that is not UTF-8', (out) => ['prune', stories260kDir, '--calib', path.join(data, 'latin1.txt'), '--remove', '1', '--out', out], 1, /\[ERR_DATA_CORRUPT\].*latin1\.txt is not UTF-8/],
  ['an empty data set', (out) => ['prune', stories260kDir, '--calib', path.join(data, 'empty.txt'), '--remove', '1', '--out', out], 1, /\[ERR_DATA_EMPTY\].*empty\.txt/],
  ['a JSONL record without the text field', (out) => ['prune', stories260kDir, '--calib', path.join(data, 'nofield.jsonl'), '--remove', '1', '--out', out], 1, /\[ERR_DATA_FIELD\].*nofield\.jsonl:2.*text/],
  ['--seq-len above max_position_embeddings', (out) => ['prune', stories260kDir, '--calib', ok(), '--seq-len', '1024', '--remove', '1', '--out', out], 2, /\[ERR_SEQ_LEN\].*--seq-len 1024.*512/],
  ['--remove as many as the model has', (out) => ['prune', stories260kDir, '--calib', ok(), '--remove', '5', '--out', out], 2, /\[ERR_REMOVE_COUNT\].*cannot remove 5 layers.*5 layers/],
  ['--remove beyond what --keep-first/--keep-last allow', (out) => ['prune', stories260kDir, '--calib', ok(), '--remove', '3', '--keep-first', '2', '--keep-last', '1', '--out', out], 2, /\[ERR_KEEP_RANGE\].*--keep-first 2 and --keep-last 1/],
  ['an unknown metric', (out) => ['prune', stories260kDir, '--calib', ok(), '--remove', '1', '--metric', 'cosine', '--out', out], 2, /--metric.*'cosine'.*bi, angular, relmag/],
  ['an unknown strategy', (out) => ['prune', stories260kDir, '--calib', ok(), '--remove', '1', '--strategy', 'greedy', '--out', out], 2, /--strategy.*'greedy'.*one-shot, iterative, block/],
  ['--remove and --ratio together', (out) => ['prune', stories260kDir, '--calib', ok(), '--remove', '1', '--ratio', '0.2', '--out', out], 2, /either --remove N or --ratio R, not both/],
  ['neither --remove nor --ratio', (out) => ['prune', stories260kDir, '--calib', ok(), '--out', out], 2, /--remove N or --ratio R/],
  ['text for a model without a tokenizer', (out) => ['prune', noTokenizer, '--calib', ok(), '--remove', '1', '--out', out], 1, /\[ERR_NO_TOKENIZER\].*tokenizer/],
  ['score --calib with a missing file', () => ['score', stories260kDir, '--calib', path.join(data, 'missing.txt')], 1, /\[ERR_DATA_MISSING\].*missing\.txt/],
  ['eval --data with a --seq-len above the limit', () => ['eval', stories260kDir, '--data', ok(), '--seq-len', '600'], 2, /\[ERR_SEQ_LEN\].*600.*512/],
  ['eval --data for a model without a tokenizer', () => ['eval', noTokenizer, '--data', ok()], 1, /\[ERR_NO_TOKENIZER\]/],
];

const outFor = (name: string): string => path.join(tmp, `out-${name.replace(/[^A-Za-z0-9]+/g, '-')}`, 'pruned');

describe.each(cases)('%s', (name, args, status, message) => {
  it('fails with a clear message and writes nothing', async () => {
    const out = outFor(name);
    const before = fs.readdirSync(tmp).sort();
    const r = await run(args(out));
    expect(r.status).toBe(status);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).sort()).toEqual(before);
  });
});
