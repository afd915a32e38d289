/**
 * NaN/Inf in a checkpoint must stop the run, never become a silent wrong cut (issue 10, item 1).
 * Copies of the bundled stories260k model get NaN, Inf or overflowing (3e38) values in one
 * tensor; `score`, `prune --calib` (every --metric) and `eval` run as real processes and must
 * exit 1 with a stable code and a message naming the layer, the tensor and the first bad
 * position, write nothing, and leave the input unchanged. Positions are checked against where
 * the test itself wrote the bad bytes. The zero-norm rule (an undefined cosine counts as 0.5)
 * stays, and its per-layer count is checked against token sequences built so that the count is
 * known in advance.
 */
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stories260kDir, repoRoot } from '../helpers/paths';
import { poisonedCopy, type Poison } from './helpers/poison';

const cli = path.join(repoRoot, 'test', 'prune', 'helpers', 'cli.js');
const H = 64;
const I = 172;

interface Run {
  status: number | null;
  out: string;
  err: string;
}

function runCli(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, out, err }));
  });
}

function digest(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(dir).sort()) h.update(f).update(fs.readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

let tmp: string;
let calib: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-nonfinite-'));
  // A few KB of the bundled text: 15 windows, enough to run every layer on real tokens.
  calib = path.join(tmp, 'calib.txt');
  fs.writeFileSync(calib, fs.readFileSync(path.join(repoRoot, 'assets', 'data', 'tinystories-valid.txt')).subarray(0, 6000));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Variant {
  name: string;
  edits: Poison[];
  /** What every command's stderr must say. */
  message: RegExp;
}

const variants: Variant[] = [
  {
    name: 'q_proj all NaN',
    edits: [{ tensor: 'model.layers.2.self_attn.q_proj.weight', elements: 'all', value: NaN }],
    message: /\[ERR_NONFINITE_WEIGHT\]: layer 2: tensor 'model\.layers\.2\.self_attn\.q_proj\.weight' .* \(NaN\) at element 0 = position \[0, 0\]/,
  },
  {
    name: 'one NaN in down_proj',
    edits: [{ tensor: 'model.layers.3.mlp.down_proj.weight', elements: [5 * I + 17, 40 * I + 2], value: NaN }],
    message: new RegExp(`\\[ERR_NONFINITE_WEIGHT\\]: layer 3: tensor 'model\\.layers\\.3\\.mlp\\.down_proj\\.weight' .* \\(NaN\\) at element ${5 * I + 17} = position \\[5, 17\\]`),
  },
  {
    name: '-Inf in a norm weight',
    edits: [{ tensor: 'model.layers.1.input_layernorm.weight', elements: [7], value: -Infinity }],
    message: /\[ERR_NONFINITE_WEIGHT\]: layer 1: tensor 'model\.layers\.1\.input_layernorm\.weight' .* \(-Inf\) at element 7 = position \[7\]/,
  },
  {
    name: 'Inf in up_proj (the last layer)',
    edits: [{ tensor: 'model.layers.4.mlp.up_proj.weight', elements: [10 * H + 3], value: Infinity }],
    message: new RegExp(`\\[ERR_NONFINITE_WEIGHT\\]: layer 4: tensor 'model\\.layers\\.4\\.mlp\\.up_proj\\.weight' .* \\(\\+Inf\\) at element ${10 * H + 3} = position \\[10, 3\\]`),
  },
  {
    // Finite weights whose products overflow float32: found in the layer's output.
    name: '3e38 in up_proj (overflows in f32 math)',
    edits: [{ tensor: 'model.layers.2.mlp.up_proj.weight', elements: 'all', value: 3e38 }],
    message: /\[ERR_NONFINITE_ACTIVATION\]: layer 2: the layer's output .* non-finite \((NaN|[+-]Inf)\) at window \d+, position \d+, hidden index \d+/,
  },
];

const commands: Array<[string, (model: string, out: string) => string[]]> = [
  ['score --calib', (m) => ['score', m, '--calib', calib, '--quiet', '--threads', '1']],
  ['prune --metric bi', (m, o) => ['prune', m, '--calib', calib, '--remove', '1', '--metric', 'bi', '--out', o, '--quiet', '--threads', '1']],
  ['prune --metric angular', (m, o) => ['prune', m, '--calib', calib, '--remove', '1', '--metric', 'angular', '--out', o, '--quiet', '--threads', '1']],
  ['prune --metric relmag', (m, o) => ['prune', m, '--calib', calib, '--remove', '1', '--metric', 'relmag', '--out', o, '--quiet', '--threads', '1']],
  ['eval --data', (m) => ['eval', m, '--data', calib, '--quiet', '--threads', '1']],
];

describe.each(variants)('$name', ({ name, edits, message }) => {
  let model: string;
  let before: string;
  beforeAll(() => {
    model = poisonedCopy(stories260kDir, path.join(tmp, name.replace(/\W+/g, '-')), edits);
    before = digest(model);
  });

  it.each(commands)('%s: exit 1 naming layer, tensor and position; nothing written', async (_cmd, argv) => {
    const parent = fs.mkdtempSync(path.join(tmp, 'out-'));
    const out = path.join(parent, 'pruned');
    const r = await runCli(argv(model, out));
    expect(r.err).toMatch(message);
    expect(r.status).toBe(1);
    expect(r.out).toBe('');
    expect(fs.readdirSync(parent)).toEqual([]);
    expect(digest(model)).toBe(before);
  }, 60_000);
});

it('logits that overflow make eval fail (ERR_NONFINITE_LOGITS) instead of printing NaN; score is unaffected', async () => {
  // Token 3 never occurs in the text, so its (tied) embedding row is only used as an lm_head row:
  // 3e38 there is finite, but its logit overflows.
  const model = poisonedCopy(stories260kDir, path.join(tmp, 'head-overflow'), [
    { tensor: 'model.embed_tokens.weight', elements: Array.from({ length: H }, (_, i) => 3 * H + i), value: 3e38 },
  ]);
  const ev = await runCli(['eval', model, '--data', calib, '--quiet', '--threads', '1']);
  expect(ev.err).toMatch(/\[ERR_NONFINITE_LOGITS\]: .*lm_head 'model\.embed_tokens\.weight'.* at window 0, position 0, vocabulary index 3\b/);
  expect(ev.status).toBe(1);
  expect(ev.out).toBe('');
  const sc = await runCli(['score', model, '--calib', calib, '--quiet', '--json', '--threads', '1']);
  expect(sc.status).toBe(0);
}, 60_000);

it('counts zero-norm tokens (the 0.5 rule) per layer in score --json, report.json and report.md', async () => {
  // Token 7's embedding is zero. At position 0 a zero state stays zero through every layer
  // (RMSNorm(0) = 0, attention of a lone zero token is 0, SwiGLU(0) = 0); later in a sequence
  // attention to earlier tokens makes it non-zero after layer 0. So three sequences with token 7
  // at positions 0, 1 and 2 have 3 zero-norm inputs in layer 0 and 1 in every later layer.
  const model = poisonedCopy(stories260kDir, path.join(tmp, 'zero-token'), [
    { tensor: 'model.embed_tokens.weight', elements: Array.from({ length: H }, (_, i) => 7 * H + i), value: 0 },
    // And the BOS token's (1), which starts every document of the text: non-zero counts in the report.
    { tensor: 'model.embed_tokens.weight', elements: Array.from({ length: H }, (_, i) => 1 * H + i), value: 0 },
  ]);
  const tokens = path.join(tmp, 'zero-tokens.json');
  fs.writeFileSync(tokens, JSON.stringify([[7, 40, 41, 42], [40, 7, 43, 44], [45, 46, 7, 47]]));
  const sc = await runCli(['score', model, '--tokens', tokens, '--json', '--quiet', '--threads', '1']);
  expect(sc.status).toBe(0);
  const doc = JSON.parse(sc.out) as { layers: Array<{ zeroNormTokens: number; bi: number }> };
  expect(doc.layers.map((l) => l.zeroNormTokens)).toEqual([3, 1, 1, 1, 1]);
  for (const l of doc.layers) expect(Number.isFinite(l.bi)).toBe(true);
  const text = await runCli(['score', model, '--tokens', tokens, '--quiet', '--threads', '1']);
  expect(text.out).toMatch(/zero-norm hidden states \(cosine undefined, counted as 0\.5\): layer 0: 3 tokens, layer 1: 1 token/);

  // The same count reaches report.json and report.md of a prune run on text.
  const score = await runCli(['score', model, '--calib', calib, '--json', '--quiet', '--threads', '1']);
  const expected = (JSON.parse(score.out) as { layers: Array<{ zeroNormTokens: number }> }).layers.map((l) => l.zeroNormTokens);
  const out = path.join(tmp, 'zero-out');
  const pr = await runCli(['prune', model, '--calib', calib, '--remove', '1', '--out', out, '--quiet', '--threads', '1']);
  expect(pr.status).toBe(0);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { layers: Array<{ zeroNormTokens: number }> };
  expect(report.layers.map((l) => l.zeroNormTokens)).toEqual(expected);
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  expect(expected.every((n) => n > 0)).toBe(true);
  expect(md).toContain(`Zero-norm hidden states (cosine undefined, counted as 0.5): ${expected.map((n, l) => `layer ${l}: ${n} token${n === 1 ? '' : 's'}`).join(', ')}.`);
}, 120_000);
