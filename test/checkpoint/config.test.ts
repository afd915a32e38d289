/** config.json resolution: every default, every architecture's quirks, every error naming its field. */
import { resolveConfig } from '../../lib/checkpoint/config';
import { ShortGptError } from '../../lib/errors';
import { generatedConfigJson, SHORT_ARCH } from '../../scripts/generate-checkpoint';

const FILE = '/models/x/config.json';

const minimal = (arch: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  architectures: [arch], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 8, vocab_size: 100, ...extra,
});

function errorOf(raw: unknown): ShortGptError {
  try {
    resolveConfig(raw, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ShortGptError);
    expect((e as Error).message).toContain(FILE);
    return e as ShortGptError;
  }
  throw new Error('expected resolveConfig to throw');
}

describe('defaults, applied in one place', () => {
  it.each([
    ['LlamaForCausalLM', 2048, null, false],
    ['MistralForCausalLM', 131072, 4096, false],
    ['Qwen2ForCausalLM', 32768, null, true],
    ['Qwen3ForCausalLM', 32768, null, false],
  ])('%s: kv heads = heads, head_dim = hidden/heads (Qwen3: 128, as Qwen3Config), theta 10000, eps 1e-6, untied', (arch, maxPos, window, bias) => {
    const c = resolveConfig(minimal(arch), FILE);
    expect(c).toMatchObject({
      architecture: arch, numHiddenLayers: 3, hiddenSize: 64, intermediateSize: 128, numAttentionHeads: 8, numKeyValueHeads: 8,
      headDim: arch === 'Qwen3ForCausalLM' ? 128 : 8, vocabSize: 100, rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: { type: 'none' }, maxPositionEmbeddings: maxPos,
      tieWordEmbeddings: false, attentionBias: bias, qkNorm: arch === 'Qwen3ForCausalLM', fusedQkv: false, slidingWindow: window,
      bosTokenId: null, eosTokenId: null, normalizedLmHead: false,
    });
  });

  it('Baichuan 7B: fused W_pack, kv heads = heads, never tied, no sliding window', () => {
    const c = resolveConfig(minimal('BaichuanForCausalLM', { model_type: 'baichuan', max_position_embeddings: 4096, model_max_length: 4096, tie_word_embeddings: true }), FILE);
    expect(c).toMatchObject({ fusedQkv: true, numKeyValueHeads: 8, headDim: 8, tieWordEmbeddings: false, slidingWindow: null, attentionBias: false, qkNorm: false, normalizedLmHead: true });
  });

  it('Baichuan 1 spelling BaiChuanForCausalLM and a config without architectures (model_type) resolve', () => {
    // Baichuan 1: same layout, but a plain linear lm_head (no NormHead)
    expect(resolveConfig(minimal('BaiChuanForCausalLM', { max_position_embeddings: 4096 }), FILE)).toMatchObject({ architecture: 'BaichuanForCausalLM', normalizedLmHead: false });
    const { architectures: _drop, ...noArch } = minimal('x', { model_type: 'qwen3' });
    expect(resolveConfig(noArch, FILE).architecture).toBe('Qwen3ForCausalLM');
  });

  it('reads explicit values: kv heads, head_dim, eps, theta, tie, token ids', () => {
    const c = resolveConfig(minimal('LlamaForCausalLM', {
      num_key_value_heads: 2, head_dim: 16, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: [2, 7],
      max_position_embeddings: 512, attention_bias: true,
    }), FILE);
    expect(c).toMatchObject({ numKeyValueHeads: 2, headDim: 16, rmsNormEps: 1e-5, ropeTheta: 500000, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [2, 7], maxPositionEmbeddings: 512, attentionBias: true });
  });

  it('Qwen3 honours attention_bias; head_dim null falls back to hidden/heads', () => {
    expect(resolveConfig(minimal('Qwen3ForCausalLM', { attention_bias: true, head_dim: 32 }), FILE)).toMatchObject({ attentionBias: true, headDim: 32 });
    expect(resolveConfig(minimal('MistralForCausalLM', { head_dim: null }), FILE).headDim).toBe(8);
  });
});

describe('rope scaling', () => {
  it('null, absent and default mean none', () => {
    for (const rs of [null, undefined, { rope_type: 'default' }, { type: 'default' }]) {
      expect(resolveConfig(minimal('LlamaForCausalLM', { rope_scaling: rs }), FILE).ropeScaling).toEqual({ type: 'none' });
    }
  });

  it('linear under `type` or `rope_type`', () => {
    expect(resolveConfig(minimal('LlamaForCausalLM', { rope_scaling: { type: 'linear', factor: 2 } }), FILE).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(resolveConfig(minimal('Qwen2ForCausalLM', { rope_scaling: { rope_type: 'linear', factor: 4 } }), FILE).ropeScaling).toEqual({ type: 'linear', factor: 4 });
  });

  it('llama3 with its four parameters (Llama 3.1 config)', () => {
    const c = resolveConfig(minimal('LlamaForCausalLM', {
      rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    }), FILE);
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  });

  it('newer rope_parameters carry rope_theta and the kind', () => {
    const c = resolveConfig(minimal('LlamaForCausalLM', { rope_parameters: { rope_type: 'default', rope_theta: 123456 } }), FILE);
    expect(c).toMatchObject({ ropeTheta: 123456, ropeScaling: { type: 'none' } });
  });

  it('yarn is refused naming the field; a linear factor of 0 is a config error', () => {
    const e = errorOf(minimal('LlamaForCausalLM', { rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    expect(e.code).toBe('ERR_UNSUPPORTED_ROPE_SCALING');
    expect(e.message).toMatch(/rope_scaling\.rope_type.*yarn/);
    const e2 = errorOf(minimal('LlamaForCausalLM', { rope_scaling: { type: 'linear', factor: 0 } }));
    expect(e2.code).toBe('ERR_CONFIG');
    expect(e2.message).toMatch(/rope_scaling\.factor/);
  });
});

describe('sliding window', () => {
  it('Mistral: explicit value, null = none, absent = 4096', () => {
    expect(resolveConfig(minimal('MistralForCausalLM', { sliding_window: 8 }), FILE).slidingWindow).toBe(8);
    expect(resolveConfig(minimal('MistralForCausalLM', { sliding_window: null }), FILE).slidingWindow).toBeNull();
    expect(resolveConfig(minimal('MistralForCausalLM'), FILE).slidingWindow).toBe(4096);
  });

  it('Qwen2/Qwen3: only with use_sliding_window true', () => {
    expect(resolveConfig(minimal('Qwen2ForCausalLM', { sliding_window: 64, use_sliding_window: false }), FILE).slidingWindow).toBeNull();
    expect(resolveConfig(minimal('Qwen3ForCausalLM', { sliding_window: 64, use_sliding_window: true, max_window_layers: 0 }), FILE).slidingWindow).toBe(64);
    expect(resolveConfig(minimal('Qwen2ForCausalLM', { sliding_window: 64, use_sliding_window: true, layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention'] }), FILE).slidingWindow).toBe(64);
    // max_window_layers >= layers: no layer slides
    expect(resolveConfig(minimal('Qwen2ForCausalLM', { sliding_window: 64, use_sliding_window: true, max_window_layers: 28 }), FILE).slidingWindow).toBeNull();
  });

  it('Qwen2: a window on only some layers is refused; a bad layer_types is a config error', () => {
    const e = errorOf(minimal('Qwen2ForCausalLM', { sliding_window: 64, use_sliding_window: true, max_window_layers: 1 }));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCHITECTURE');
    expect(e.message).toMatch(/some layers \(2 of 3\)/);
    const e2 = errorOf(minimal('Qwen2ForCausalLM', { use_sliding_window: true, layer_types: ['full_attention'] }));
    expect(e2).toMatchObject({ code: 'ERR_CONFIG' });
    expect(e2.message).toMatch(/layer_types/);
  });
});

describe('errors', () => {
  it('an unsupported architecture lists the supported ones', () => {
    const e = errorOf(minimal('GPT2LMHeadModel'));
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCHITECTURE');
    expect(e.message).toMatch(/GPT2LMHeadModel.*LlamaForCausalLM.*BaichuanForCausalLM/);
  });

  it('Baichuan 13B (ALiBi) is refused saying why', () => {
    const e = errorOf({ architectures: ['BaichuanForCausalLM'], model_type: 'baichuan', hidden_size: 5120, intermediate_size: 13696, num_hidden_layers: 40, num_attention_heads: 40, vocab_size: 125696, model_max_length: 4096 });
    expect(e.code).toBe('ERR_UNSUPPORTED_ARCHITECTURE');
    expect(e.message).toMatch(/ALiBi/);
    expect(e.message).toMatch(/7B/);
  });

  it.each([
    ['num_hidden_layers', undefined, /is required/],
    ['hidden_size', 0, /positive integer/],
    ['intermediate_size', '128', /positive integer/],
    ['num_attention_heads', 2.5, /positive integer/],
    ['vocab_size', -1, /positive integer/],
    ['num_key_value_heads', 3, /must divide num_attention_heads/],
    ['rms_norm_eps', 'small', /positive number/],
    ['rope_theta', -5, /positive number/],
    ['tie_word_embeddings', 'yes', /true or false/],
    ['eos_token_id', [2, 'x'], /token id/],
    ['max_position_embeddings', 0, /positive integer/],
    ['architectures', [], /non-empty list/],
  ])('field %s = %p is an ERR_CONFIG naming it', (field, value, pattern) => {
    const e = errorOf(minimal('LlamaForCausalLM', { [field]: value }));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toContain(`'${field}'`);
    expect(e.message).toMatch(pattern);
  });

  it('hidden size not divisible by heads without head_dim; odd head_dim', () => {
    expect(errorOf(minimal('LlamaForCausalLM', { hidden_size: 60, num_attention_heads: 8 })).message).toMatch(/'hidden_size'.*multiple/);
    expect(errorOf(minimal('LlamaForCausalLM', { head_dim: 7 })).message).toMatch(/'head_dim'.*even/);
  });

  it('a non-silu activation and MLP biases are refused naming the field', () => {
    expect(errorOf(minimal('LlamaForCausalLM', { hidden_act: 'gelu' }))).toMatchObject({ code: 'ERR_UNSUPPORTED_ARCHITECTURE', message: expect.stringMatching(/hidden_act/) });
    expect(errorOf(minimal('LlamaForCausalLM', { mlp_bias: true }))).toMatchObject({ code: 'ERR_UNSUPPORTED_ARCHITECTURE', message: expect.stringMatching(/mlp_bias/) });
  });

  it('a config that is not an object', () => {
    expect(errorOf([1, 2]).code).toBe('ERR_CONFIG');
    expect(errorOf({ architectures: ['LlamaForCausalLM'] }).message).toMatch(/'num_hidden_layers' is required/);
  });
});

describe('the generator\'s configs resolve as intended', () => {
  it.each(Object.keys(SHORT_ARCH))('%s', (arch) => {
    const c = resolveConfig(generatedConfigJson({ architecture: SHORT_ARCH[arch]!, dtype: 'F32' }), FILE);
    expect(c.architecture).toBe(SHORT_ARCH[arch]);
    expect(c.headDim).toBe(arch === 'qwen3' ? 16 : 8);
    expect(c.slidingWindow).toBe(arch === 'mistral' ? 8 : null);
    const slid = resolveConfig(generatedConfigJson({ architecture: SHORT_ARCH[arch]!, dtype: 'F32', slidingWindow: 5, ropeScaling: arch === 'baichuan' ? 'none' : 'llama3' }), FILE);
    expect(slid.slidingWindow).toBe(arch === 'llama' || arch === 'baichuan' ? null : 5);
    if (arch !== 'baichuan') expect(slid.ropeScaling).toMatchObject({ type: 'llama3', factor: 4, originalMaxPositionEmbeddings: 32 });
  });
});
