/**
 * What a pruned checkpoint says about itself, through the CLI: mergekit.yaml (read by a real YAML
 * parser, its slices expanded back into source layers) and the model card README.md (the
 * source's card kept, its front matter first and intact, a section on the cut on top; or a new
 * card where the source had none), for --remove-layers and for prune by score.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../lib/cli/main';
import { rewriteCheckpoint } from '../../lib/prune/rewrite';
import type { PruneReport } from '../../lib/report/types';
import { capture } from '../helpers/io';
import { stories260kDir, tinyStoriesText } from '../helpers/paths';
import { frontMatterOf, parseYaml } from '../helpers/yaml';

interface MergekitConfig {
  slices: Array<{ sources: Array<{ model: string; layer_range: [number, number] }> }>;
  merge_method: string;
  dtype?: string;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-outputs-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function prune(argv: string[]): Promise<void> {
  const io = capture();
  const status = await main(['prune', ...argv, '--quiet'], io);
  expect({ status, err: io.err() }).toEqual({ status: 0, err: io.err() });
}

/** The source layers a mergekit passthrough config takes, in output order. */
function mergekitLayers(file: string, source: string): number[] {
  const cfg = parseYaml(fs.readFileSync(file, 'utf8')) as MergekitConfig;
  expect(cfg.merge_method).toBe('passthrough');
  return cfg.slices.flatMap((s) => {
    expect(s.sources).toHaveLength(1);
    const [{ model, layer_range: [start, end] }] = s.sources;
    expect(path.isAbsolute(model)).toBe(true);
    expect(fs.realpathSync(model)).toBe(fs.realpathSync(source));
    return Array.from({ length: end - start }, (_, k) => start + k);
  });
}

/** A copy of the bundled model with `readme` as its card (null: no card). */
function sourceWithCard(dir: string, readme: string | null): string {
  fs.cpSync(stories260kDir, dir, { recursive: true });
  fs.rmSync(path.join(dir, 'README.md'));
  if (readme !== null) fs.writeFileSync(path.join(dir, 'README.md'), readme);
  return dir;
}

describe('prune --remove-layers', () => {
  it('writes mergekit.yaml that takes exactly the kept layers of the source, in its dtype', async () => {
    const out = path.join(tmp, 'named');
    await prune([stories260kDir, '--remove-layers', '1,3', '--out', out]);
    expect(mergekitLayers(path.join(out, 'mergekit.yaml'), stories260kDir)).toEqual([0, 2, 4]);
    const cfg = parseYaml(fs.readFileSync(path.join(out, 'mergekit.yaml'), 'utf8')) as MergekitConfig;
    expect(cfg.dtype).toBe(JSON.parse(fs.readFileSync(path.join(stories260kDir, 'config.json'), 'utf8')).torch_dtype);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'shortgpt.json'), 'utf8')).keptLayers).toEqual([0, 2, 4]);
  });

  it('keeps a card without front matter below a new section, and gives it front matter with tags', async () => {
    const out = path.join(tmp, 'named');
    const original = fs.readFileSync(path.join(stories260kDir, 'README.md'), 'utf8');
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(parseYaml(frontMatterOf(card))).toEqual({ tags: ['shortgpt-native', 'pruned'] });
    expect(card.endsWith(original)).toBe(true);
    const section = card.slice(0, card.length - original.length);
    expect(section).toMatch(/^# stories260k, pruned: 5 → 3 layers$/m);
    expect(section).toContain('**Removed:** layers 1, 3 (0-based; 2 of 5, 40.0%)');
    expect(section).toContain('**Chosen by:** named explicitly (not scored)');
    expect(section).toContain('**Perplexity:** not measured');
    expect(section).toContain('**Layer mapping** (source → this model): 0→0, 2→1, 4→2');
    expect(section).toContain(path.resolve(stories260kDir));
    expect(section).toContain("source's model card follows, unchanged");
    // The source's card is untouched.
    expect(fs.readFileSync(path.join(stories260kDir, 'README.md'), 'utf8')).toBe(original);
  });

  it('keeps front matter first and byte for byte, adding base_model (a hub snapshot) but not tags already there', async () => {
    const front = '---\nlicense: mit\nlanguage:\n- en\ntags: [llama, tiny]   # flow style, kept\nmodel-index:\n  - name: tiny\n---\n';
    const body = '\n# Tiny llama\n\nFive layers, 260K parameters.\n';
    // Where the Hugging Face cache keeps a snapshot: the card can then name the hub repository.
    const src = sourceWithCard(path.join(tmp, 'hub', 'models--acme--tiny-llama', 'snapshots', '0123abcd'), front + body);
    const out = path.join(tmp, 'front-matter-out');
    await prune([src, '--remove-layers', '4', '--out', out]);
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    const originalYaml = front.slice(4, front.length - 4);
    // Every original line, in order, first; only the new key after them.
    expect(card.startsWith(`---\n${originalYaml}base_model: acme/tiny-llama\n---\n`)).toBe(true);
    expect(parseYaml(frontMatterOf(card))).toEqual({ ...(parseYaml(originalYaml) as object), base_model: 'acme/tiny-llama' });
    expect(card.endsWith(body.replace(/^\n+/, ''))).toBe(true);
    expect(card).toContain('This model is [acme/tiny-llama](https://huggingface.co/acme/tiny-llama) with 1 of its 5 decoder layers removed');
    expect(card).toContain('**Removed:** layer 4 (0-based; 1 of 5, 20.0%)');
    expect(mergekitLayers(path.join(out, 'mergekit.yaml'), src)).toEqual([0, 1, 2, 3]);
  });

  it('writes a new card where the source has none', async () => {
    const src = sourceWithCard(path.join(tmp, 'no-card'), null);
    const out = path.join(tmp, 'no-card-out');
    await prune([src, '--remove-layers', '0', '--out', out]);
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(parseYaml(frontMatterOf(card))).toEqual({ tags: ['shortgpt-native', 'pruned'] });
    expect(card).toMatch(/^# no-card, pruned: 5 → 4 layers$/m);
    expect(card).toContain('The source had no model card.');
    expect(card).not.toContain('model card follows');
    expect(fs.existsSync(path.join(src, 'README.md'))).toBe(false);
  });
});

describe('prune by score', () => {
  it('the card says by what score and the perplexity before and after, as report.json does', async () => {
    // A few held-out stories keep the perplexity passes short.
    const stories = fs.readFileSync(tinyStoriesText, 'utf8').split('<|endoftext|>\n');
    const held = path.join(tmp, 'held-out.txt');
    fs.writeFileSync(held, stories.slice(-5).join('<|endoftext|>\n'));
    const out = path.join(tmp, 'scored');
    await prune([stories260kDir, '--calib', tinyStoriesText, '--samples', '16', '--remove', '1', '--eval', held, '--out', out]);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as PruneReport;
    const [removed] = report.removedLayers;
    expect(mergekitLayers(path.join(out, 'mergekit.yaml'), stories260kDir)).toEqual([0, 1, 2, 3, 4].filter((l) => l !== removed));

    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    const p = report.perplexity!;
    expect(card).toContain(`**Chosen by:** Block Influence, strategy one-shot`);
    expect(card).toContain(`  - layer ${removed}: ${report.layers[removed].reason}`);
    expect(card).toContain(`${p.before.toFixed(3)} before → ${p.after.toFixed(3)} after (+${(p.rise * 100).toFixed(1)}%)`);
    expect(card).toContain('`report.md`');
    expect(card.endsWith(fs.readFileSync(path.join(stories260kDir, 'README.md'), 'utf8'))).toBe(true);
    // report.md points to the file too.
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toContain('`mergekit-yaml mergekit.yaml OUTPUT_DIR`');
  });
});

describe('the library rewrite', () => {
  it('re-pruning replaces the source\'s mergekit.yaml and stacks the card sections; a caller\'s README.md wins', async () => {
    const once = path.join(tmp, 'named'); // 5 -> 3 layers (kept 0, 2, 4), from the first test
    const twice = path.join(tmp, 'twice');
    const r = await rewriteCheckpoint(once, twice, { removeLayers: [0] });
    expect(r.generatedFiles).toEqual(['mergekit.yaml', 'README.md']);
    // mergekit.yaml names the directory this rewrite read, whose layers 1 and 2 are kept.
    expect(mergekitLayers(path.join(twice, 'mergekit.yaml'), once)).toEqual([1, 2]);
    const card = fs.readFileSync(path.join(twice, 'README.md'), 'utf8');
    expect(card).toMatch(/^# named, pruned: 3 → 2 layers$/m);
    expect(card.endsWith(fs.readFileSync(path.join(once, 'README.md'), 'utf8').replace(/^---\n[\s\S]*?\n---\n\n/, ''))).toBe(true);
    expect(parseYaml(frontMatterOf(card))).toEqual({ tags: ['shortgpt-native', 'pruned'] });

    const mine = await rewriteCheckpoint(once, path.join(tmp, 'mine'), { removeLayers: [0], extraFiles: { 'README.md': '# my card\n' } });
    expect(mine.generatedFiles).toEqual(['mergekit.yaml']);
    expect(fs.readFileSync(path.join(tmp, 'mine', 'README.md'), 'utf8')).toBe('# my card\n');
  });
});
