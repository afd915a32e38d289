/** `shortgpt-native prune`: exit codes 0/1/2, what it prints, and Ctrl-C in a real process. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { capture } from '../helpers/io';
import { stories260kDir } from '../helpers/paths';
import { leftovers, readRawCheckpoint, snapshotTree, tempRoot } from './helpers/rawCheckpoint';

let root: string;
beforeAll(() => {
  root = tempRoot('sgpt-cli-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('prune on the real stories260k model', () => {
  it('removes layers 1 and 3, prints them and the mapping, and writes a valid 3-layer model', async () => {
    const out = path.join(root, 'stories-3');
    const before = snapshotTree(stories260kDir);
    const io = capture();
    expect(await main(['prune', stories260kDir, '--remove-layers', '1,3', '--out', out], io)).toBe(0);
    expect(io.out()).toContain('removed layers (0-based): 1, 3');
    expect(io.out()).toContain('layer mapping (old->new): 0->0, 2->1, 4->2');
    expect(snapshotTree(stories260kDir)).toEqual(before);

    const ck = await openCheckpoint(out);
    expect(ck.config.numHiddenLayers).toBe(3);
    expect(ck.config.tieWordEmbeddings).toBe(true);
    expect(ck.warnings).toEqual([]);
    const s = readRawCheckpoint(stories260kDir).tensors;
    const o = readRawCheckpoint(out).tensors;
    expect(o.size).toBe(2 + 3 * 9); // embeddings + final norm (lm_head is tied) + 9 per layer
    for (const [neu, old] of [[0, 0], [1, 2], [2, 4]]) {
      for (const [name, t] of s) {
        if (!name.startsWith(`model.layers.${old}.`)) continue;
        expect(o.get(name.replace(`model.layers.${old}.`, `model.layers.${neu}.`))!.bytes.equals(t.bytes)).toBe(true);
      }
    }
    for (const n of ['model.embed_tokens.weight', 'model.norm.weight']) expect(o.get(n)!.bytes.equals(s.get(n)!.bytes)).toBe(true);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'LICENSE']) {
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(stories260kDir, f)))).toBe(true);
    }
    // The model card is the source's with a section on the cut on top (test/prune/outputs.test.ts).
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8').endsWith(fs.readFileSync(path.join(stories260kDir, 'README.md'), 'utf8'))).toBe(true);
    expect(io.out()).toContain('wrote mergekit.yaml');
  });

  it('--json prints the result document', async () => {
    const io = capture();
    expect(await main(['prune', stories260kDir, '--remove-layers', '0-1', '--out', path.join(root, 'stories-json'), '--json'], io)).toBe(0);
    const r = JSON.parse(io.out());
    expect(r).toMatchObject({ removedLayers: [0, 1], keptLayers: [2, 3, 4], layerMapping: { 2: 0, 3: 1, 4: 2 }, numHiddenLayers: 3, sharded: false });
  });
});

describe('prune exit codes', () => {
  it('--help says the indices are 0-based and ranges are allowed', async () => {
    const io = capture();
    expect(await main(['prune', '--help'], io)).toBe(0);
    expect(io.out()).toMatch(/0-based, inclusive/);
    expect(io.out()).toMatch(/21-29/);
  });

  it.each([
    [['prune', stories260kDir, '--remove-layers', '1'], /--out OUT_DIR is required/],
    [['prune', stories260kDir, '--out', 'x'], /--remove-layers LIST is required/],
    [['prune', stories260kDir, '--remove-layers', '1,x', '--out', 'x'], /--remove-layers expects/],
    [['prune', stories260kDir, '--remove-layers', '7', '--out', 'x'], /--remove-layers: layer 7 is out of range.*0\.\.4/],
    [['prune', stories260kDir, '--remove-layers', '0-4', '--out', 'x'], /removing all 5 layers/],
    [['prune', stories260kDir, '--remove-layers', '1', '--out', path.join(stories260kDir, 'sub')], /--out: .*inside the source directory/],
    [['prune', '--remove-layers', '1', '--out', 'x'], /missing MODEL_DIR/],
  ])('exits 2 on %j', async (argv, message) => {
    const io = capture();
    const cwd = process.cwd();
    process.chdir(root);
    try {
      expect(await main(argv, io)).toBe(2);
    } finally {
      process.chdir(cwd);
    }
    expect(io.err()).toMatch(message);
    expect(fs.existsSync(path.join(root, 'x'))).toBe(false);
  });

  it('exits 1 naming the file for a corrupt checkpoint and for an existing output', async () => {
    const bad = path.join(root, 'bad');
    fs.cpSync(stories260kDir, bad, { recursive: true });
    fs.chmodSync(path.join(bad, 'model.safetensors'), 0o644);
    fs.truncateSync(path.join(bad, 'model.safetensors'), 100);
    let io = capture();
    expect(await main(['prune', bad, '--remove-layers', '1', '--out', path.join(root, 'bad-out')], io)).toBe(1);
    expect(io.err()).toMatch(/\[ERR_SAFETENSORS_[A-Z_]+\].*bad\/model\.safetensors/);
    expect(fs.existsSync(path.join(root, 'bad-out'))).toBe(false);

    const taken = path.join(root, 'taken');
    fs.mkdirSync(taken);
    fs.writeFileSync(path.join(taken, 'x'), '');
    io = capture();
    expect(await main(['prune', stories260kDir, '--remove-layers', '1', '--out', taken], io)).toBe(1);
    expect(io.err()).toMatch(/\[ERR_OUTPUT_EXISTS\].*--force/);
    expect(leftovers(root)).toEqual([]);
  });
});

describe('prune interrupted', () => {
  const helpers = path.join(__dirname, 'helpers');

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s mid-run exits %d and leaves neither OUT nor the temporary directory', async (sig, status) => {
    const src = path.join(root, `signal-src-${sig}`);
    await generateCheckpoint(src, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 6, shards: 6 });
    const before = snapshotTree(src);
    const parent = path.join(root, `signal-${sig}`);
    fs.mkdirSync(parent);
    const out = path.join(parent, 'out');
    const child = spawn(process.execPath, ['-r', path.join(helpers, 'slowWrites.js'), path.join(helpers, 'cli.js'), 'prune', src, '--remove-layers', '2', '--out', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let sent = false;
    let tempDirsWhenSent: string[] = [];
    child.stderr.on('data', (d: Buffer) => {
      stderr += String(d);
      if (!sent && stderr.includes('SLOW-WRITES-STARTED')) {
        sent = true;
        tempDirsWhenSent = leftovers(parent);
        child.kill(sig);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(sent).toBe(true);
    expect(tempDirsWhenSent).toHaveLength(1); // the run was under way
    expect(code).toBe(status);
    expect(stderr).toContain(`interrupted by ${sig}`);
    expect(fs.readdirSync(parent)).toEqual([]);
    expect(snapshotTree(src)).toEqual(before);
  });
});
