/**
 * The rewrite on every architecture, dtype and layout, read back with an independent reader:
 * renamed tensors, byte-identical data, config, index, copied files, provenance, untouched input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { rewriteCheckpoint, type RewriteProgress } from '../../lib/prune/rewrite';
import { generateCheckpoint, SHORT_ARCH, type GenDType } from '../../scripts/generate-checkpoint';
import { leftovers, readRawCheckpoint, snapshotTree, tempRoot } from './helpers/rawCheckpoint';

let root: string;
beforeAll(() => {
  root = tempRoot('sgpt-rewrite-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The expected output name of a source tensor, worked out here independently of lib/prune. */
function expectedName(name: string, removed: number[]): string | null {
  const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
  if (!m) return name;
  const old = Number(m[1]);
  if (removed.includes(old)) return null;
  return `model.layers.${old - removed.filter((r) => r < old).length}.${m[2]}`;
}

const cases: Array<[string, GenDType, number]> = [];
for (const arch of Object.keys(SHORT_ARCH)) for (const dtype of ['F32', 'F16', 'BF16'] as GenDType[]) for (const shards of [1, 3]) cases.push([arch, dtype, shards]);

describe.each(cases)('rewrite %s %s shards=%d', (arch, dtype, shards) => {
  it('removes layers 1 and 3 of 5, renumbers the rest, and copies everything else byte for byte', async () => {
    const src = path.join(root, `${arch}-${dtype}-${shards}`);
    const out = path.join(root, `${arch}-${dtype}-${shards}-out`);
    await generateCheckpoint(src, { architecture: SHORT_ARCH[arch]!, dtype, shards, layers: 5, seed: 7 });
    fs.mkdirSync(path.join(src, 'extra'));
    fs.writeFileSync(path.join(src, 'extra', 'chat_template.jinja'), '{{ messages }}');
    const before = snapshotTree(src);
    const progress: RewriteProgress[] = [];

    const r = await rewriteCheckpoint(src, out, { removeLayers: [3, 1], onProgress: (p) => progress.push(p), extraMetadata: { 'shortgpt.note': 'test' } });

    expect(snapshotTree(src)).toEqual(before);
    expect(leftovers(root)).toEqual([]);
    expect(r.removedLayers).toEqual([1, 3]);
    expect(r.layerMapping).toEqual({ 0: 0, 2: 1, 4: 2 });

    // Tensors: every kept source tensor under its new name, same dtype, shape and bytes.
    const s = readRawCheckpoint(src);
    const o = readRawCheckpoint(out);
    const expected = new Map<string, string>();
    for (const name of s.tensors.keys()) {
      const neu = expectedName(name, [1, 3]);
      if (neu !== null) expected.set(neu, name);
    }
    expect([...o.tensors.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [neu, old] of expected) {
      const a = s.tensors.get(old)!;
      const b = o.tensors.get(neu)!;
      expect([b.dtype, b.shape]).toEqual([dtype, a.shape]);
      expect(b.bytes.equals(a.bytes)).toBe(true);
    }
    // Order within each file follows the source order.
    const sourceOrder = [...s.files.values()].flatMap((f) => f.order).map((n) => expectedName(n, [1, 3])).filter((n) => n !== null);
    const outOrder = [...o.files.values()].flatMap((f) => f.order);
    expect(outOrder).toEqual(sourceOrder);
    for (const f of o.files.values()) {
      expect(f.metadata).toEqual({ format: 'pt', 'shortgpt.removed_layers': '1,3', 'shortgpt.source_layers': '5', 'shortgpt.note': 'test' });
    }

    // Layout and index.
    if (shards === 1) {
      expect(fs.existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(false);
      expect(r.files).toEqual(['model.safetensors']);
    } else {
      const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
      const n = r.files.length;
      expect(r.files).toEqual(Array.from({ length: n }, (_, k) => `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`));
      expect(index.metadata.total_size).toBe([...o.tensors.values()].reduce((a, t) => a + t.bytes.length, 0));
      for (const [name, file] of Object.entries(index.weight_map)) expect(o.files.get(file as string)!.tensors.has(name)).toBe(true);
      expect(Object.keys(index.weight_map).length).toBe(o.tensors.size);
      const maxSource = Math.max(...[...s.files.values()].map((f) => [...f.tensors.values()].reduce((a, t) => a + t.bytes.length, 0)));
      for (const f of o.files.values()) {
        const bytes = [...f.tensors.values()].reduce((a, t) => a + t.bytes.length, 0);
        expect(bytes <= maxSource || f.tensors.size === 1).toBe(true);
      }
    }

    // config.json: layer count and per-layer lists follow, the rest is unchanged.
    const srcConfig = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
    const outConfig = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    const expectedConfig = { ...srcConfig, num_hidden_layers: 3 };
    if (Array.isArray(srcConfig.layer_types)) expectedConfig.layer_types = [0, 2, 4].map((i) => srcConfig.layer_types[i]);
    expect(outConfig).toEqual(expectedConfig);
    expect(r.configFieldsSliced).toEqual(Array.isArray(srcConfig.layer_types) ? ['layer_types'] : []);

    // Other files copied, weights and index not.
    for (const f of ['generation_config.json', 'tokenizer_config.json', 'extra/chat_template.jinja']) {
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(src, f)))).toBe(true);
    }
    // README.md: the source's card below a section on the cut; mergekit.yaml beside it.
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8').endsWith(fs.readFileSync(path.join(src, 'README.md'), 'utf8'))).toBe(true);
    expect(r.generatedFiles).toEqual(['mergekit.yaml', 'README.md']);
    expect(r.copiedFiles).not.toContain('README.md');
    const prov = JSON.parse(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8'));
    expect(prov).toMatchObject({ source: { dir: src, numHiddenLayers: 5 }, removedLayers: [1, 3], keptLayers: [0, 2, 4], layerMapping: { 0: 0, 2: 1, 4: 2 }, numHiddenLayers: 3 });

    // The library's own reader accepts it, and progress reached the total.
    const ck = await openCheckpoint(out);
    expect(ck.config.numHiddenLayers).toBe(3);
    expect(ck.warnings).toEqual([]);
    const last = progress.filter((p) => p.phase === 'tensors').pop()!;
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.bytesTotal).toBe(r.tensorBytes);
  });
});

describe('rewrite details', () => {
  it('slices layer_types with sliding layers, keeps a prior shortgpt.json as the chain of removals, writes extra files', async () => {
    const src = path.join(root, 'qwen2-sliding');
    await generateCheckpoint(src, { architecture: 'Qwen2ForCausalLM', dtype: 'BF16', layers: 6, slidingWindow: 4 });
    const once = path.join(root, 'qwen2-once');
    const twice = path.join(root, 'qwen2-twice');
    await rewriteCheckpoint(src, once, { removeLayers: [0, 5] });
    fs.writeFileSync(path.join(once, 'report.json'), 'old report');
    const r = await rewriteCheckpoint(once, twice, { removeLayers: [1], extraFiles: { 'report.json': 'new report', 'chart.svg': Buffer.from('<svg/>') } });
    expect(r.numHiddenLayers).toBe(3);
    expect(r.extraFiles).toEqual(['report.json', 'chart.svg']);
    expect(fs.readFileSync(path.join(twice, 'report.json'), 'utf8')).toBe('new report');
    expect(fs.readFileSync(path.join(twice, 'chart.svg'), 'utf8')).toBe('<svg/>');
    await expect(rewriteCheckpoint(once, path.join(root, 'never'), { removeLayers: [1], extraFiles: { 'config.json': '{}' } })).rejects.toMatchObject({ code: 'ERR_EXTRA_FILE' });
    await expect(rewriteCheckpoint(once, path.join(root, 'never'), { removeLayers: [1], extraFiles: { '../x': '' } })).rejects.toMatchObject({ code: 'ERR_EXTRA_FILE' });
    expect(fs.existsSync(path.join(root, 'never'))).toBe(false);
    const prov = JSON.parse(fs.readFileSync(path.join(twice, 'shortgpt.json'), 'utf8'));
    expect(prov.source.provenance).toMatchObject({ removedLayers: [0, 5], source: { numHiddenLayers: 6 } });
    expect(JSON.parse(fs.readFileSync(path.join(twice, 'config.json'), 'utf8')).layer_types).toHaveLength(3);
  });

  it('replaces a non-empty output with force, writes into an empty one, and leaves other weight files out', async () => {
    const src = path.join(root, 'llama-force');
    await generateCheckpoint(src, { architecture: 'LlamaForCausalLM', dtype: 'F16', layers: 3 });
    fs.writeFileSync(path.join(src, 'pytorch_model.bin'), 'stale weights');
    fs.mkdirSync(path.join(src, '.cache', 'huggingface'), { recursive: true });
    fs.writeFileSync(path.join(src, '.gitattributes'), '*.safetensors filter=lfs');
    const out = path.join(root, 'force-out');
    fs.mkdirSync(out);
    let r = await rewriteCheckpoint(src, out, { removeLayers: [0] });
    expect(r.skippedFiles.map((f) => f.path)).toEqual(['.cache', 'pytorch_model.bin']);
    expect(r.copiedFiles).toContain('.gitattributes');
    expect(r.warnings.some((w) => w.includes('pytorch_model.bin'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'pytorch_model.bin'))).toBe(false);
    fs.writeFileSync(path.join(out, 'marker'), 'old');
    r = await rewriteCheckpoint(src, out, { removeLayers: [2], force: true });
    expect(fs.existsSync(path.join(out, 'marker'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8')).removedLayers).toEqual([2]);
    expect(leftovers(root)).toEqual([]);
  });
});
