/**
 * Issue 10, items 2 and 6, through the CLI: sizes read from input (num_hidden_layers, layer
 * ranges, bench shapes) are checked before anything is allocated or written for them, and a
 * config.json that declares fewer layers than the checkpoint holds is refused by every command
 * that computes or writes (inspect describes it and exits 1). Each run is a child process with a
 * capped V8 heap and a peak-RSS watchdog: the old behaviour (gigabytes, then a V8 abort) fails
 * these tests rather than passing slowly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tinyStoriesText } from '../helpers/paths';
import { listTree, modelCopy, runCli, withExtraTensors } from './helpers/cliProcess';

/** Peak resident set allowed for a refusal: the CLI's own baseline is ~100 MB (swc-transpiled sources). */
const REFUSAL_RSS = 350 * 1024 * 1024;

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-hostile-bounds-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('num_hidden_layers far beyond the tensors present', () => {
  it.each(['inspect', 'prune'])('%s refuses 1e7 declared layers at once, naming both counts, in bounded memory', async (command) => {
    const model = modelCopy(path.join(tmp, `huge-layers-${command}`), { num_hidden_layers: 10_000_000 });
    const outParent = path.join(tmp, `huge-layers-${command}-out`);
    const args = command === 'inspect' ? ['inspect', model] : ['prune', model, '--remove-layers', '1', '--out', path.join(outParent, 'o')];
    const r = await runCli(args, { heapMiB: 192 });
    expect(r.stderr).toMatch(/\[ERR_TENSOR_MISSING\].*num_hidden_layers = 10000000, but the safetensors files hold tensors of 5 layers, up to layer 4: tensor 'model\.layers\.5\.input_layernorm\.weight'/);
    expect(r.status).toBe(1);
    expect(r.peakRssBytes).toBeLessThan(REFUSAL_RSS);
    expect(listTree(outParent)).toEqual([]);
  });
});

describe('a huge num_hidden_layers matched by one stray tensor of that layer', () => {
  it('inspect refuses without building ten million layers of specs', async () => {
    const model = modelCopy(path.join(tmp, 'stray-layer'), { num_hidden_layers: 10_000_000 });
    withExtraTensors(model, [{ name: 'model.layers.9999999.input_layernorm.weight', shape: [64], bytes: 256 }]);
    const r = await runCli(['inspect', model], { heapMiB: 192 });
    expect(r.stderr).toMatch(/\[ERR_TENSOR_MISSING\].*num_hidden_layers = 10000000, but the safetensors files hold tensors of 6 layers, up to layer 9999999: tensor 'model\.layers\.5\.input_layernorm\.weight'/);
    expect(r.status).toBe(1);
    expect(r.peakRssBytes).toBeLessThan(REFUSAL_RSS);
  });
});

describe('layer ranges beyond any model', () => {
  it.each([
    ['prune', '--remove-layers'],
    ['eval', '--skip-layers'],
  ])('%s %s 1-1000000000 is a usage error before the range is expanded', async (command, option) => {
    const outParent = path.join(tmp, `range-${command}`);
    const args = command === 'prune'
      ? ['prune', modelCopy(path.join(tmp, 'range-model')), option, '1-1000000000', '--out', path.join(outParent, 'o')]
      : ['eval', modelCopy(path.join(tmp, 'range-model')), '--data', tinyStoriesText, option, '1-1000000000'];
    const r = await runCli(args, { heapMiB: 128 });
    expect(r.stderr).toMatch(new RegExp(`${option}: layer 1000000000 is beyond any model`));
    expect(r.status).toBe(2);
    expect(r.peakRssBytes).toBeLessThan(REFUSAL_RSS);
    expect(listTree(outParent)).toEqual([]);
  });
});

describe('bench shapes that do not fit', () => {
  const tempDir = (name: string): string => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };

  it('a --config of hidden and intermediate 1048576 is refused for disk space, with the numbers, and writes nothing', async () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(modelCopy(path.join(tmp, 'bench-cfg')), 'config.json'), 'utf8'));
    const cfgFile = path.join(tmp, 'bench-huge.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, hidden_size: 1048576, intermediate_size: 1048576, num_attention_heads: 8, num_key_value_heads: 8, head_dim: 131072 }));
    const t = tempDir('bench-tmp-disk');
    const r = await runCli(['bench', '--config', cfgFile], { env: { TMPDIR: t } });
    // 4 * 1048576^2 attention + 3 * 1048576^2 MLP f32 weights: 28 TiB.
    expect(r.stderr).toMatch(/\[ERR_BENCH_TOO_LARGE\].*needs a 28\.0 TiB synthetic layer file, but .* has [\d.]+ [KMGT]?i?B free/);
    expect(r.status).toBe(1);
    expect(listTree(t)).toEqual([]);
  });

  it('a shape whose activations exceed the available memory is refused before writing', async () => {
    const t = tempDir('bench-tmp-mem');
    const r = await runCli(['bench', '--shape', 'custom', '--hidden', '64', '--layers', '2', '--heads', '4', '--intermediate', '128',
      '--seq-len', String(1 << 20), '--sequences', String(1 << 20)], { env: { TMPDIR: t } });
    expect(r.stderr).toMatch(/\[ERR_BENCH_TOO_LARGE\].*needs at least [\d.]+ TiB of memory \(activations plus one layer\), but [\d.]+ [KMGT]?i?B is available/);
    expect(r.status).toBe(1);
    expect(listTree(t)).toEqual([]);
  });

  it('SIGTERM while the synthetic layer is written (or run) removes it and exits 143', async () => {
    const t = tempDir('bench-tmp-term');
    let pid = 0;
    const running = runCli(['bench', '--shape', 'custom', '--hidden', '1024', '--layers', '400', '--heads', '8', '--intermediate', '4096', '--seq-len', '16', '--gemm-iterations', '0'],
      { env: { TMPDIR: t }, onSpawn: (p) => { pid = p; } });
    // Wait for the synthetic file to appear, then stop the run.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !listTree(t).some((f) => f.endsWith('.safetensors'))) await new Promise((r) => setTimeout(r, 10));
    expect(listTree(t).some((f) => f.endsWith('.safetensors'))).toBe(true);
    process.kill(pid, 'SIGTERM');
    const r = await running;
    expect(r.stderr).toMatch(/interrupted; temporary files removed/);
    expect(r.status).toBe(143);
    expect(listTree(t)).toEqual([]);
  });
});

describe('config.json declaring fewer layers than the checkpoint holds', () => {
  const refusal = /\[ERR_TENSOR_LAYER\].*'model\.layers\.4\.[a-z_.]+' belongs to layer 4, but config\.json has num_hidden_layers = 3 while the checkpoint holds 5 layers \(0\.\.4\)/;

  it.each([
    ['score', (m: string) => ['score', m, '--calib', tinyStoriesText, '--samples', '2']],
    ['eval', (m: string) => ['eval', m, '--data', tinyStoriesText, '--samples', '2']],
    ['prune --remove-layers', (m: string, out: string) => ['prune', m, '--remove-layers', '1', '--out', out]],
    ['prune --calib', (m: string, out: string) => ['prune', m, '--calib', tinyStoriesText, '--samples', '2', '--remove', '1', '--out', out]],
  ])('%s refuses, naming both counts, and writes nothing', async (name, args) => {
    const model = modelCopy(path.join(tmp, `few-${name.replace(/\W+/g, '-')}`), { num_hidden_layers: 3 });
    const outParent = path.join(tmp, `few-out-${name.replace(/\W+/g, '-')}`);
    const r = await runCli(args(model, path.join(outParent, 'o')));
    expect(r.stderr).toMatch(refusal);
    expect(r.status).toBe(1);
    expect(r.stdout).not.toMatch(/perplexity|layer\s+bi/i);
    expect(listTree(outParent)).toEqual([]);
  });

  it('inspect describes the checkpoint, lists the refusal as an error and exits 1 (text and --json)', async () => {
    const model = modelCopy(path.join(tmp, 'few-inspect'), { num_hidden_layers: 3 });
    const text = await runCli(['inspect', model]);
    expect(text.stdout).toMatch(/^layers\s+3$/m);
    expect(text.stdout).toMatch(/^ERRORS\s+1 \(score, eval and prune refuse this checkpoint\)$/m);
    expect(text.stderr).toMatch(refusal);
    expect(text.status).toBe(1);
    const json = await runCli(['inspect', model, '--json']);
    const report = JSON.parse(json.stdout) as { layers: number; errors: string[] };
    expect(report.layers).toBe(3);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatch(/^ERR_TENSOR_LAYER: .*num_hidden_layers = 3 while the checkpoint holds 5 layers/);
    expect(json.status).toBe(1);
  });
});
