import { attentionFlops, causalPairs, gemmFlops, layerFlops, layerGemms } from '../../lib/bench/flops';
import { llamaShape, presetShape, PRESETS } from '../../lib/bench/shapes';

// hidden 8, 2 heads of 4, 1 kv head, intermediate 16.
const tiny = llamaShape('tiny', { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1, intermediateSize: 16 }).config;

describe('FLOP counting', () => {
  test('matches a hand count for a small shape', () => {
    // Multiply-adds per token: q 8x8=64, k 4x8=32, v 32, o 64, gate 16x8=128, up 128, down 128
    // = 576, so 1152 FLOPs per token; 3 + 5 = 8 tokens -> 9216.
    // Attention: causal pairs 3*4/2 = 6 and 5*6/2 = 15, 21 pairs; per pair per head 2*4 (QK^T)
    // + 2*4 (PV) = 16 FLOPs, 2 heads -> 32 per pair -> 672.
    expect(gemmFlops(tiny, 8)).toBe(9216);
    expect(attentionFlops(tiny, 3) + attentionFlops(tiny, 5)).toBe(672);
    expect(layerFlops(tiny, [3, 5])).toEqual({ gemm: 9216, attention: 672, total: 9888 });
  });

  test('groups projections by distinct (n, k)', () => {
    expect(layerGemms(tiny)).toEqual([
      { ops: 'q,o', n: 8, k: 8, count: 2 },
      { ops: 'k,v', n: 4, k: 8, count: 2 },
      { ops: 'gate,up', n: 16, k: 8, count: 2 },
      { ops: 'down', n: 8, k: 16, count: 1 },
    ]);
  });

  test('causal pairs equal a brute-force count, with and without a sliding window', () => {
    for (const T of [1, 2, 7, 64, 65]) {
      for (const window of [0, 1, 4, 64, 100]) {
        let pairs = 0;
        for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) if (window === 0 || i - j < window) pairs++;
        expect(causalPairs(T, window)).toBe(pairs);
      }
    }
  });

  test('agrees with torch_peer.py flops_per_token up to its T^2 approximation of the triangle', () => {
    // torch_peer.py: layers * (2 * params_per_layer + 4 * seq * hidden / 2) per token, i.e.
    // 2*T^2*hidden of attention per sequence where the exact triangle gives 2*hidden*T*(T+1).
    for (const name of ['S', 'M'] as const) {
      const p = PRESETS[name];
      const h = p.hiddenSize;
      const i = p.intermediateSize;
      const kv = (p.numKeyValueHeads! * h) / p.numAttentionHeads;
      const T = 512;
      const pLayer = h * h * 2 + h * kv * 2 + 3 * h * i;
      const peer = p.numHiddenLayers * (2 * pLayer + (4 * T * h) / 2) * T;
      const ours = layerFlops(presetShape(name).config, [T]).total * p.numHiddenLayers;
      expect(ours - peer).toBe(p.numHiddenLayers * 2 * h * T);
    }
  });
});
