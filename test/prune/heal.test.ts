/**
 * --heal lstsq (issue 13) end to end: the identity case (removed layers that change nothing give
 * T = I and healed == plain deletion), the rewrite that replaces one tensor's bytes (healed model
 * as written == healed model as evaluated), the rounding to 16-bit dtypes, the CLI, and refusals.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import { bf16BitsToF32, f16BitsToF32 } from '../../lib/checkpoint/halfFloat';
import { decodeToF32, readTensorBytes } from '../../lib/checkpoint/tensorData';
import { main } from '../../lib/cli/main';
import { perplexity } from '../../lib/eval/perplexity';
import { encodeDtype, healCut, removedBlocks, withPatchedTensors } from '../../lib/prune/heal';
import { prune } from '../../lib/prune/prune';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { randomSequences } from '../reference/sequences';

const VOCAB = 96;
const seqs = randomSequences([40, 90, 130, 77], VOCAB, 9).map((s) => Int32Array.from(s));
let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-heal-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Overwrites tensors of a generated checkpoint with zeros (in place; a fresh directory). */
async function zeroTensors(dir: string, names: string[]): Promise<void> {
  const ckpt = await openCheckpoint(dir);
  for (const name of names) {
    const t = ckpt.tensors.get(name)!;
    const fd = fs.openSync(t.file, 'r+');
    fs.writeSync(fd, Buffer.alloc(t.byteLength), 0, t.byteLength, t.dataOffset);
    fs.closeSync(fd);
  }
}

describe('heal lstsq', () => {
  test('removed blocks: contiguous runs; a block at layer 0 has nothing to patch', () => {
    expect(removedBlocks([5, 0, 3, 4, 1])).toEqual([
      { start: 0, end: 2, patchedLayer: null },
      { start: 3, end: 6, patchedLayer: 2 },
    ]);
  });

  test('identity case: removed layers with zero o_proj and down_proj give T = I and healed == plain deletion', async () => {
    const dir = path.join(root, 'identity');
    await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 5, vocabSize: VOCAB, maxPositionEmbeddings: 256 });
    await zeroTensors(dir, [2, 3].flatMap((l) => [`model.layers.${l}.self_attn.o_proj.weight`, `model.layers.${l}.mlp.down_proj.weight`]));
    const ckpt = await openCheckpoint(dir);
    const healed = await healCut(ckpt, [seqs.slice(0, 2), seqs.slice(2)], [2, 3], 0, { engine: { threads: 2 } });
    expect(healed.fits).toHaveLength(1);
    const { T } = healed.fits[0];
    const H = ckpt.config.hiddenSize;
    let worst = 0;
    for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) worst = Math.max(worst, Math.abs(T[i * H + j] - (i === j ? 1 : 0)));
    expect(worst).toBeLessThan(1e-9);
    expect(healed.fits[0].relativeResidual).toBeLessThan(1e-6);
    expect(healed.fits[0].plainResidual).toBeLessThan(1e-6);
    expect(healed.report.blocks[0]).toMatchObject({ removed: [2, 4], patchedLayer: 1, tensor: 'model.layers.1.mlp.down_proj.weight', tokens: 337 });
    const view = await withPatchedTensors(ckpt, healed.patched);
    try {
      const plain = await perplexity(ckpt, seqs, { skipLayers: [2, 3], threads: 2 });
      const fixed = await perplexity(view.ckpt, seqs, { skipLayers: [2, 3], threads: 2 });
      expect(fixed.meanNll).toBeCloseTo(plain.meanNll, 9);
    } finally {
      await view.cleanup();
    }
  });

  test('the rewrite replaces only the patched down_proj (bf16, sharded); the written model equals the evaluated one', async () => {
    const dir = path.join(root, 'bf16');
    await generateCheckpoint(dir, { architecture: 'Qwen3ForCausalLM', dtype: 'BF16', layers: 5, shards: 3, vocabSize: VOCAB, maxPositionEmbeddings: 256 });
    const ckpt = await openCheckpoint(dir);
    const removed = [1, 3, 4];
    const healed = await healCut(ckpt, [seqs], removed, 1e-6, { engine: { threads: 2 } });
    expect(healed.report.blocks.map((b) => b.patchedLayer)).toEqual([0, 2]);
    for (const f of healed.fits) expect(f.relativeResidual).toBeLessThan(f.plainResidual);
    const out = path.join(root, 'bf16-out');
    await rewriteCheckpoint(dir, out, { removeLayers: removed, replaceTensors: healed.replace });
    const written = await openCheckpoint(out);
    // Source layer 0 -> new 0, 2 -> new 1.
    const renamed: Record<string, string> = { 'model.layers.0.mlp.down_proj.weight': 'model.layers.0.mlp.down_proj.weight', 'model.layers.2.mlp.down_proj.weight': 'model.layers.1.mlp.down_proj.weight' };
    for (const [src, bytes] of healed.replace) {
      const got = await readTensorBytes(written.tensors.get(renamed[src])!);
      expect(got.equals(bytes)).toBe(true);
      expect(got.equals(await readTensorBytes(ckpt.tensors.get(src)!))).toBe(false);
    }
    // Every other kept tensor is byte for byte the source's.
    const srcUp = await readTensorBytes(ckpt.tensors.get('model.layers.2.mlp.up_proj.weight')!);
    expect((await readTensorBytes(written.tensors.get('model.layers.1.mlp.up_proj.weight')!)).equals(srcUp)).toBe(true);
    const view = await withPatchedTensors(ckpt, healed.patched);
    try {
      const asEvaluated = await perplexity(view.ckpt, seqs, { skipLayers: removed, threads: 2 });
      const asWritten = await perplexity(written, seqs, { threads: 2 });
      expect(asWritten.meanNll).toBe(asEvaluated.meanNll);
      expect(asWritten.logitsSum).toBe(asEvaluated.logitsSum);
    } finally {
      await view.cleanup();
    }
  });

  test('16-bit rounding is from double, to nearest even (no double rounding through f32)', () => {
    // Just above the midpoint between 1 and the next bf16 (1 + 2^-7): rounding via f32 would land
    // exactly on the midpoint and tie down to 1.
    const bf = encodeDtype(Float64Array.of(1 + 2 ** -8 + 2 ** -40, 1 + 2 ** -8, -(1 + 2 ** -8 + 2 ** -40), 3.3), 'BF16', 't');
    expect([0, 1, 2].map((i) => bf.readUInt16LE(i * 2))).toEqual([0x3f81, 0x3f80, 0xbf81]);
    expect(bf16BitsToF32(bf.readUInt16LE(6))).toBe(3.296875);
    const h = encodeDtype(Float64Array.of(1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -11, 1 + 3 * 2 ** -11), 'F16', 't');
    expect([0, 1, 2].map((i) => h.readUInt16LE(i * 2))).toEqual([0x3c01, 0x3c00, 0x3c02]);
    expect(f16BitsToF32(0x3c01)).toBe(1 + 2 ** -10);
    const f = encodeDtype(Float64Array.of(0.1), 'F32', 't');
    expect(decodeToF32({ name: 't', dtype: 'F32' }, f)[0]).toBe(Math.fround(0.1));
    expect(() => encodeDtype(Float64Array.of(1), 'I8', 'x.weight')).toThrow(/x\.weight.*I8/);
  });

  test('too few calibration tokens for alpha 0: a clear error suggesting --heal-ridge; a ridge solves it', async () => {
    const dir = path.join(root, 'short');
    await generateCheckpoint(dir, { architecture: 'LlamaForCausalLM', dtype: 'F32', layers: 4, vocabSize: VOCAB, maxPositionEmbeddings: 256 });
    const ckpt = await openCheckpoint(dir);
    const few = [Int32Array.of(1, 2, 3, 4, 5)];
    await expect(healCut(ckpt, [few], [2], 0, { engine: { threads: 1 } })).rejects.toMatchObject({
      code: 'ERR_HEAL_SINGULAR', message: expect.stringMatching(/layers 2\.\.2.*layer 1's MLP output over 5 calibration tokens.*--heal-ridge/),
    });
    const ok = await healCut(ckpt, [few], [2], 1e-3, { engine: { threads: 1 } });
    expect(ok.fits[0].relativeResidual).toBeLessThan(ok.fits[0].plainResidual);
  });

  test('library: --heal on cuda and bad values are refused before any work', async () => {
    await expect(prune(stories260kDir, { calib: tinyStoriesText, remove: 1, heal: 'lstsq', device: 'cuda', out: path.join(root, 'never') }))
      .rejects.toMatchObject({ code: 'ERR_HEAL_OPTIONS', message: expect.stringMatching(/--heal lstsq needs --device cpu/) });
    await expect(prune(stories260kDir, { calib: tinyStoriesText, remove: 1, heal: 'svd' as 'lstsq', out: path.join(root, 'never') }))
      .rejects.toMatchObject({ code: 'ERR_HEAL_OPTIONS' });
    await expect(prune(stories260kDir, { calib: tinyStoriesText, remove: 1, heal: 'lstsq', healRidge: -1, out: path.join(root, 'never') }))
      .rejects.toMatchObject({ code: 'ERR_HEAL_OPTIONS' });
    expect(fs.existsSync(path.join(root, 'never'))).toBe(false);
  });

  test('CLI: usage errors exit 2 naming the option, nothing written', async () => {
    const out = path.join(root, 'cli-never');
    const cases: Array<[string[], RegExp]> = [
      [['--heal', 'magic'], /--heal must be 'lstsq'/],
      [['--heal', 'lstsq', '--heal-ridge', 'x'], /--heal-ridge must be a finite number >= 0/],
      [['--heal-ridge', '0.1'], /--heal-ridge needs --heal lstsq/],
      [['--heal', 'lstsq', '--device', 'cuda'], /--heal lstsq needs --device cpu/],
    ];
    for (const [extra, message] of cases) {
      const io = capture();
      expect(await main(['prune', stories260kDir, '--calib', tinyStoriesText, '--remove', '1', '--out', out, ...extra], io)).toBe(2);
      expect(io.err()).toMatch(message);
    }
    expect(fs.existsSync(out)).toBe(false);
  });

  test('CLI on stories260k: held-out perplexity healed < plain deletion; report.json, report.md and metadata record it', async () => {
    // Calibrate on the first half of the bundled text's documents, evaluate on the second.
    const docs = fs.readFileSync(tinyStoriesText, 'utf8').split('<|endoftext|>\n');
    const half = Math.floor(docs.length / 2);
    const calib = path.join(root, 'calib.txt');
    const held = path.join(root, 'eval.txt');
    fs.writeFileSync(calib, docs.slice(0, half).join('<|endoftext|>\n'));
    fs.writeFileSync(held, docs.slice(half).join('<|endoftext|>\n'));
    const out = path.join(root, 'stories-healed');
    const io = capture();
    expect(await main(['prune', stories260kDir, '--calib', calib, '--eval', held, '--remove', '1', '--heal', 'lstsq', '--threads', '2', '--device', 'cpu', '--json', '--out', out], io)).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.heal).toMatchObject({ method: 'lstsq', alpha: 0 });
    const block = report.heal.blocks[0];
    expect(block.relativeResidual).toBeLessThan(block.plainResidual);
    const p = report.heal.perplexity;
    expect(p.healed).toBeLessThan(p.plain);
    expect(report.perplexity.after).toBe(p.healed);
    expect(report.perplexity.before).toBe(p.original);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/## Healing[\s\S]*down_proj[\s\S]*healed \(the written model\)/);
    // The written model's perplexity is the report's healed value.
    const written = await openCheckpoint(out);
    const st = JSON.parse(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8'));
    expect(st.metadata['shortgpt.heal']).toMatch(/^lstsq alpha=0 patched=\d+$/);
    expect(written.config.numHiddenLayers).toBe(4);
    // The card and mergekit.yaml do not claim the weights are the source's.
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toMatch(/Healed without training: `model\.layers\.\d+\.mlp\.down_proj\.weight`/);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).not.toMatch(/No weight was changed/);
    expect(fs.readFileSync(path.join(out, 'mergekit.yaml'), 'utf8')).toMatch(/^# Plain deletion: the healed down_proj/);

    // The same cut named with --remove-layers and healed on the same data writes the same patch.
    const named = path.join(root, 'stories-named');
    const io2 = capture();
    const removed = report.removedLayers as number[];
    expect(await main(['prune', stories260kDir, '--remove-layers', removed.join(','), '--heal', 'lstsq', '--calib', calib, '--threads', '1', '--device', 'cpu', '--quiet', '--out', named], io2)).toBe(0);
    const heal = JSON.parse(fs.readFileSync(path.join(named, 'heal.json'), 'utf8'));
    expect(heal.blocks).toEqual(report.heal.blocks);
    const tensor = `model.layers.${block.patchedLayer}.mlp.down_proj.weight`;
    const a = await readTensorBytes((await openCheckpoint(named)).tensors.get(tensor)!);
    expect(a.equals(await readTensorBytes(written.tensors.get(tensor)!))).toBe(true);
    expect(a.equals(await readTensorBytes((await openCheckpoint(stories260kDir)).tensors.get(tensor)!))).toBe(false);
    // --heal with --remove-layers needs --calib; other scoring options stay refused.
    for (const [extra, message] of [[[], /--heal lstsq needs --calib DATA/], [['--calib', calib, '--eval', held], /cannot be combined with --eval/]] as Array<[string[], RegExp]>) {
      const io3 = capture();
      expect(await main(['prune', stories260kDir, '--remove-layers', '2', '--heal', 'lstsq', '--out', path.join(root, 'never2'), ...extra], io3)).toBe(2);
      expect(io3.err()).toMatch(message);
    }
  });
});
