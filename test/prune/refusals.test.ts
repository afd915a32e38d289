/** Every refusal names what is wrong, writes nothing, and leaves no temporary directory behind. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { leftovers, snapshotTree, tempRoot } from './helpers/rawCheckpoint';

let root: string;
let single: string;
let sharded: string;
beforeAll(async () => {
  root = tempRoot('sgpt-refuse-');
  single = path.join(root, 'single');
  sharded = path.join(root, 'sharded');
  await generateCheckpoint(single, { architecture: 'LlamaForCausalLM', dtype: 'F16', layers: 5 });
  await generateCheckpoint(sharded, { architecture: 'MistralForCausalLM', dtype: 'BF16', layers: 5, shards: 3 });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh copy of `dir` to break. */
function copyOf(dir: string, name: string): string {
  const to = path.join(root, name);
  fs.cpSync(dir, to, { recursive: true });
  return to;
}

async function expectRefusal(src: string, out: string, opts: Parameters<typeof rewriteCheckpoint>[2], code: string, message: RegExp): Promise<void> {
  const srcBefore = snapshotTree(src);
  const outBefore = fs.existsSync(out) ? snapshotTree(out) : null;
  await expect(rewriteCheckpoint(src, out, opts)).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
  expect(snapshotTree(src)).toEqual(srcBefore);
  if (outBefore) expect(snapshotTree(out)).toEqual(outBefore);
  else expect(fs.existsSync(out)).toBe(false);
  expect(leftovers(path.dirname(out))).toEqual([]);
}

describe('rewrite refusals', () => {
  it('refuses a non-empty output without force, and an output that is a file', async () => {
    const out = path.join(root, 'taken');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    await expectRefusal(single, out, { removeLayers: [1] }, 'ERR_OUTPUT_EXISTS', /taken.*not empty.*--force/);
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, 'x');
    await expectRefusal(single, file, { removeLayers: [1], force: true }, 'ERR_OUTPUT_EXISTS', /a-file exists and is not a directory/);
  });

  it.each([
    [[5], 'ERR_LAYER_INDEX', /layer 5 is out of range.*0\.\.4/],
    [[0, 1, 2, 3, 4], 'ERR_REMOVE_ALL_LAYERS', /all 5 layers/],
    [[], 'ERR_NO_LAYERS_GIVEN', /empty/],
  ])('refuses removeLayers %j', async (layers, code, message) => {
    await expectRefusal(single, path.join(root, 'out-bad-index'), { removeLayers: layers }, code, message);
  });

  it('refuses an output that is, is inside, or contains the source', async () => {
    await expect(rewriteCheckpoint(single, single, { removeLayers: [1], force: true })).rejects.toMatchObject({ code: 'ERR_OUTPUT_IN_SOURCE' });
    await expectRefusal(single, path.join(single, 'sub'), { removeLayers: [1] }, 'ERR_OUTPUT_IN_SOURCE', /inside the source directory/);
    await expect(rewriteCheckpoint(single, root, { removeLayers: [1], force: true })).rejects.toMatchObject({ code: 'ERR_OUTPUT_CONTAINS_SOURCE' });
    expect(fs.existsSync(path.join(single, 'config.json'))).toBe(true);
  });

  it('reports a truncated safetensors file by name', async () => {
    const src = copyOf(single, 'truncated');
    const f = path.join(src, 'model.safetensors');
    fs.truncateSync(f, fs.statSync(f).size - 2);
    await expectRefusal(src, path.join(root, 'out-truncated'), { removeLayers: [1] }, 'ERR_SAFETENSORS_FILE_LENGTH', /truncated\/model\.safetensors/);
  });

  it('reports a broken header by file', async () => {
    const src = copyOf(single, 'badjson');
    const f = path.join(src, 'model.safetensors');
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.from('[[[[[['), 0, 6, 8);
    fs.closeSync(fd);
    await expectRefusal(src, path.join(root, 'out-badjson'), { removeLayers: [1] }, 'ERR_SAFETENSORS_HEADER_JSON', /badjson\/model\.safetensors/);
  });

  it('reports a missing shard by name', async () => {
    const src = copyOf(sharded, 'missing-shard');
    fs.rmSync(path.join(src, 'model-00002-of-00003.safetensors'));
    await expectRefusal(src, path.join(root, 'out-missing'), { removeLayers: [1] }, 'ERR_SHARD_MISSING', /model-00002-of-00003\.safetensors/);
  });

  it('refuses a tensor whose layer lies beyond num_hidden_layers, naming the tensor', async () => {
    const src = copyOf(single, 'extra-layer');
    const cfgFile = path.join(src, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), num_hidden_layers: 4 }));
    await expectRefusal(src, path.join(root, 'out-extra'), { removeLayers: [1] }, 'ERR_TENSOR_LAYER', /model\.layers\.4\..*num_hidden_layers = 4/);
  });

  it('reports a tensor whose shape disagrees with config.json, naming file and tensor', async () => {
    const src = copyOf(single, 'wrong-shape');
    const cfgFile = path.join(src, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size + 8 }));
    await expectRefusal(src, path.join(root, 'out-shape'), { removeLayers: [1] }, 'ERR_TENSOR_SHAPE', /wrong-shape\/model\.safetensors: tensor 'model\.layers\.0\.mlp\./);
  });

  it('an abort mid-run removes the temporary directory and the parents it created', async () => {
    const ac = new AbortController();
    const out = path.join(root, 'new-parent', 'deeper', 'out');
    let sawTemp = false;
    const run = rewriteCheckpoint(single, out, {
      removeLayers: [1],
      chunkBytes: 64,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.bytesDone > 0 && !ac.signal.aborted) {
          sawTemp = leftovers(path.dirname(out)).length === 1;
          ac.abort(new Error('test abort'));
        }
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'ERR_ABORTED', message: expect.stringMatching(/test abort/) });
    expect(sawTemp).toBe(true);
    expect(fs.existsSync(path.join(root, 'new-parent'))).toBe(false);
  });
});
