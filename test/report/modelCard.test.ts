/**
 * The model card and mergekit.yaml as text: front matter kept byte for byte in the forms cards
 * really come in (CRLF, a BOM, a closing fence at the end of the file, keys already present),
 * and mergekit.yaml read back by a real YAML parser for paths that need quoting.
 */
import { mergekitDtype, mergekitFile } from '../../lib/report/cuts';
import { splitFrontMatter } from '../../lib/report/frontMatter';
import { hubIdOfPath, renderModelCard, type CardFacts } from '../../lib/report/modelCard';
import { frontMatterOf, parseYaml } from '../helpers/yaml';

const facts: CardFacts = {
  source: '/models/tiny',
  architecture: 'LlamaForCausalLM',
  sourceLayers: 4,
  removed: [2],
  kept: [0, 1, 3],
  tool: 'shortgpt-native 0.0.0',
};

describe('model card', () => {
  it('CRLF front matter: lines kept, new keys in CRLF, body kept', () => {
    const original = '---\r\nlicense: apache-2.0\r\n---\r\n# Title\r\n\r\nText.\r\n';
    const parts = splitFrontMatter(original)!;
    expect(parts.open + parts.yaml + parts.close + parts.body).toBe(original);
    const card = renderModelCard(original, facts);
    expect(card.startsWith('---\r\nlicense: apache-2.0\r\ntags:\r\n- shortgpt-native\r\n- pruned\r\n---\r\n')).toBe(true);
    expect(card.endsWith('# Title\r\n\r\nText.\r\n')).toBe(true);
    expect(card.replace(/\r\n/g, '')).not.toContain('\n');
    expect(parseYaml(frontMatterOf(card))).toEqual({ license: 'apache-2.0', tags: ['shortgpt-native', 'pruned'] });
  });

  it('a BOM stays first; a closing fence at the very end of the file; an empty front matter', () => {
    const bom = renderModelCard('\uFEFF---\nlicense: mit\n---', facts);
    expect(bom.startsWith('\uFEFF---\nlicense: mit\ntags:\n')).toBe(true);
    expect(bom).toMatch(/^# tiny, pruned: 4 → 3 layers$/m);
    const empty = renderModelCard('---\n---\nBody.\n', facts);
    expect(parseYaml(frontMatterOf(empty))).toEqual({ tags: ['shortgpt-native', 'pruned'] });
    expect(empty.endsWith('\n---\n\nBody.\n')).toBe(true);
  });

  it('keys already present are not touched, nested keys of the same name do not count', () => {
    const original = '---\nbase_model: org/base\nextra:\n  tags: [x]\n---\nBody.\n';
    const card = renderModelCard(original, { ...facts, source: '/cache/models--acme--tiny/snapshots/abc' });
    expect(frontMatterOf(card)).toBe('base_model: org/base\nextra:\n  tags: [x]\ntags:\n- shortgpt-native\n- pruned\n');
  });

  it('a "---" line that never closes is not front matter: the whole text is the old card', () => {
    expect(splitFrontMatter('---\nnot closed\n')).toBeNull();
    const card = renderModelCard('---\nnot closed\n', facts);
    expect(card.endsWith('---\nnot closed\n')).toBe(true);
    expect(parseYaml(frontMatterOf(card))).toEqual({ tags: ['shortgpt-native', 'pruned'] });
  });

  it('hub ids from Hugging Face cache snapshots only', () => {
    expect(hubIdOfPath('/h/hub/models--meta-llama--Llama-3.1-8B/snapshots/0a1b2c')).toBe('meta-llama/Llama-3.1-8B');
    expect(hubIdOfPath('/h/hub/models--gpt2/snapshots/0a1b2c/')).toBe('gpt2');
    expect(hubIdOfPath('/models/Llama-3.1-8B')).toBeUndefined();
    expect(hubIdOfPath('/h/models--a--b')).toBeUndefined();
  });
});

describe('mergekit.yaml', () => {
  it.each(['/plain/model', '/with space/and: colon', '/quote"d/#hash', '/lora+like@rev', 'true', '/ü/模型'])('reads back the source %j and the kept ranges', (source) => {
    const cfg = parseYaml(mergekitFile(source, 6, [1, 4], { dtype: 'bfloat16' })) as {
      slices: Array<{ sources: Array<{ model: string | { model: { path: string } }; layer_range: number[] }> }>;
      merge_method: string;
      dtype: string;
    };
    expect(cfg.merge_method).toBe('passthrough');
    expect(cfg.dtype).toBe('bfloat16');
    expect(cfg.slices.map((s) => s.sources[0].layer_range)).toEqual([[0, 1], [2, 4], [5, 6]]);
    for (const s of cfg.slices) {
      const m = s.sources[0].model;
      // mergekit reads '+' (LoRA) and '@' (revision) in a model string; such paths are given as {path}.
      expect(typeof m === 'string' ? m : m.model.path).toBe(source);
      expect(typeof m === 'string').toBe(!/[+@]/.test(source));
    }
  });

  it('dtype only when every floating-point tensor has the same one', () => {
    expect(mergekitDtype(['BF16', 'BF16', 'I64'])).toBe('bfloat16');
    expect(mergekitDtype(['F32'])).toBe('float32');
    expect(mergekitDtype(['F16'])).toBe('float16');
    expect(mergekitDtype(['BF16', 'F32'])).toBeUndefined();
    expect(mergekitDtype(['F8_E4M3'])).toBeUndefined();
  });
});
