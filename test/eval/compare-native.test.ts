/**
 * The engine's per-token primitives behind eval --compare and multiple-choice scoring:
 * tokenLogprobs (log p(next token), argmax) and divergence (KL(reference || this), both
 * logprobs and argmaxes), checked against the float64 reference (test/reference/compare64.ts)
 * on stories260k and on generated checkpoints whose vocabulary spans several lm_head chunks
 * (4096 rows each), so the streamed log-sum-exp rescaling is exercised.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/checkpoint/checkpoint';
import type { Checkpoint } from '../../lib/checkpoint/types';
import { embeddingRef, finalNormRef, layerTensorRefs, lmHeadRef, nativeModelSpec } from '../../lib/engine/modelSpec';
import { EngineSession } from '../../lib/engine/session';
import { generateCheckpoint } from '../../scripts/generate-checkpoint';
import { loadGoldenTokens } from '../helpers/golden';
import { stories260kDir } from '../helpers/paths';
import { referenceComparison } from '../reference/compare64';
import { randomSequences } from '../reference/sequences';
import { codeOf } from '../helpers/rejection';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-compare-native-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A session run through every layer but `skip`, left open (the caller disposes it). */
async function runSession(ckpt: Checkpoint, sequences: number[][], skip: number[] = [], threads = 2): Promise<EngineSession> {
  const s = EngineSession.create(nativeModelSpec(ckpt.config), sequences, { threads });
  await s.embed(embeddingRef(ckpt));
  for (let l = 0; l < ckpt.config.numHiddenLayers; l++) if (!skip.includes(l)) await s.forwardLayer(l, layerTensorRefs(ckpt, l));
  return s;
}

function referenceHead(ckpt: Checkpoint, residual: Float32Array) {
  return {
    residual, finalNorm: finalNormRef(ckpt), lmHead: lmHeadRef(ckpt), rmsNormEps: ckpt.config.rmsNormEps,
    normalizedLmHead: nativeModelSpec(ckpt.config).normalizedLmHead,
  };
}

const golden = loadGoldenTokens().slice(0, 6);

interface Case { name: string; dir: () => Promise<string>; sequences: number[][] }
const cases: Case[] = [
  { name: 'stories260k', dir: async () => stories260kDir, sequences: golden },
  {
    // 3 lm_head chunks (4096 + 4096 + 808 rows), F16 weights.
    name: 'generated Llama F16, vocabulary 9000',
    dir: async () => {
      const d = path.join(root, 'llama-9000');
      await generateCheckpoint(d, { architecture: 'LlamaForCausalLM', dtype: 'F16', layers: 3, vocabSize: 9000, hiddenSize: 16, intermediateSize: 24, seed: 5 });
      return d;
    },
    sequences: randomSequences([1, 7, 40, 300], 9000, 3),
  },
  {
    // Baichuan 2's NormHead (rows normalised while packing), two chunks.
    name: 'generated Baichuan 2 F32, vocabulary 5000',
    dir: async () => {
      const d = path.join(root, 'baichuan-5000');
      await generateCheckpoint(d, { architecture: 'BaichuanForCausalLM', dtype: 'F32', layers: 3, vocabSize: 5000, hiddenSize: 16, intermediateSize: 24, seed: 9 });
      return d;
    },
    sequences: randomSequences([2, 33, 90], 5000, 4),
  },
];

describe.each(cases)('$name', ({ dir: makeDir, sequences }) => {
  let dir: string;
  let ckpt: Checkpoint;
  beforeAll(async () => {
    dir = await makeDir();
    ckpt = await openCheckpoint(dir);
  });

  test('tokenLogprobs: -sum(logprob) equals nll().sumNll bit for bit, and matches the float64 reference', async () => {
    const s = await runSession(ckpt, sequences);
    try {
      const nll = await s.nll(finalNormRef(ckpt), lmHeadRef(ckpt));
      const t = await s.tokenLogprobs(finalNormRef(ckpt), lmHeadRef(ckpt));
      expect(t.sumNll).toBe(nll.sumNll);
      expect(t.logitsSum).toBe(nll.logitsSum);
      expect(t.predictions).toBe(nll.predictions);
      let sum = 0;
      for (const lp of t.logprob) if (!Number.isNaN(lp)) sum -= lp;
      expect(sum).toBe(nll.sumNll);

      const ref = referenceComparison(dir, dir, sequences);
      let row = 0;
      let worst = 0;
      for (const seq of sequences) {
        for (let p = 0; p < seq.length; p++, row++) {
          const last = p === seq.length - 1;
          expect(Number.isNaN(t.logprob[row])).toBe(last);
          if (!last) worst = Math.max(worst, Math.abs(t.logprob[row] - ref.logprob[row]));
          // argmax is compared only where f32 rounding cannot flip it.
          if (ref.topGap[row] > 1e-3) expect(t.argmax[row]).toBe(ref.argmax[row]);
          expect(t.targetIsArgmax[row]).toBe(!last && t.argmax[row] === seq[p + 1] ? 1 : 0);
        }
      }
      expect(worst).toBeLessThan(2e-4);
    } finally {
      await s.dispose();
    }
  });

  test('divergence of a model with itself: KL exactly 0, the same argmax and logprobs as tokenLogprobs', async () => {
    const a = await runSession(ckpt, sequences);
    const b = await runSession(ckpt, sequences);
    try {
      const d = await b.divergence(referenceHead(ckpt, a.snapshot()), finalNormRef(ckpt), lmHeadRef(ckpt));
      const t = await b.tokenLogprobs(finalNormRef(ckpt), lmHeadRef(ckpt));
      for (let r = 0; r < d.kl.length; r++) {
        expect(d.kl[r]).toBe(0);
        expect(d.argmax[r]).toBe(d.referenceArgmax[r]);
        expect(d.argmax[r]).toBe(t.argmax[r]);
        expect(Object.is(d.logprob[r], t.logprob[r]) && Object.is(d.referenceLogprob[r], t.logprob[r])).toBe(true);
      }
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  test('divergence between the dense model and the model without its middle layer matches the reference (either side skipped)', async () => {
    for (const [refSkip, candSkip] of [[[], [1]], [[1], []], [[0], [2]]] as number[][][]) {
      const a = await runSession(ckpt, sequences, refSkip);
      const b = await runSession(ckpt, sequences, candSkip, 1);
      try {
        const d = await b.divergence(referenceHead(ckpt, a.snapshot()), finalNormRef(ckpt), lmHeadRef(ckpt));
        const ref = referenceComparison(dir, dir, sequences, refSkip, candSkip);
        let worstKl = 0;
        let worstLp = 0;
        for (let r = 0; r < d.kl.length; r++) {
          expect(d.kl[r]).toBeGreaterThanOrEqual(0);
          worstKl = Math.max(worstKl, Math.abs(d.kl[r] - ref.kl[r]) / (1e-4 + ref.kl[r]));
          if (!Number.isNaN(ref.logprob[r])) {
            worstLp = Math.max(worstLp, Math.abs(d.logprob[r] - ref.logprob[r]), Math.abs(d.referenceLogprob[r] - ref.referenceLogprob[r]));
          } else {
            expect(Number.isNaN(d.logprob[r]) && Number.isNaN(d.referenceLogprob[r])).toBe(true);
          }
          if (ref.topGap[r] > 1e-3) expect(d.argmax[r]).toBe(ref.argmax[r]);
          if (ref.referenceTopGap[r] > 1e-3) expect(d.referenceArgmax[r]).toBe(ref.referenceArgmax[r]);
        }
        expect(worstKl).toBeLessThan(2e-3);
        expect(worstLp).toBeLessThan(2e-4);
      } finally {
        await a.dispose();
        await b.dispose();
      }
    }
  });
});

describe('divergence refuses mismatched inputs', () => {
  let ckpt: Checkpoint;
  beforeAll(async () => {
    ckpt = await openCheckpoint(stories260kDir);
  });

  test('a residual of the wrong length (other sequences) is ERR_SHAPE; a reference lm_head of another vocabulary is ERR_SHAPE', async () => {
    const s = await runSession(ckpt, golden.slice(0, 2));
    try {
      const wrong = new Float32Array(s.totalTokens * ckpt.config.hiddenSize - 64);
      await expect(s.divergence(referenceHead(ckpt, wrong), finalNormRef(ckpt), lmHeadRef(ckpt))).rejects.toMatchObject({
        code: 'ERR_SHAPE', message: expect.stringContaining('reference residual stream'),
      });
      const head = { ...lmHeadRef(ckpt), shape: [511, ckpt.config.hiddenSize] };
      const ref = { ...referenceHead(ckpt, s.snapshot()), lmHead: head };
      expect(await codeOf(s.divergence(ref, finalNormRef(ckpt), lmHeadRef(ckpt)))).toBe('ERR_SHAPE');
      // The session is still usable after refused calls.
      const d = await s.divergence(referenceHead(ckpt, s.snapshot()), finalNormRef(ckpt), lmHeadRef(ckpt));
      expect(d.kl.every((k) => k === 0)).toBe(true);
    } finally {
      await s.dispose();
    }
  });

  test('non-finite reference logits are ERR_NONFINITE_LOGITS naming the reference side and the position', async () => {
    const s = await runSession(ckpt, golden.slice(0, 2));
    try {
      const ref = s.snapshot();
      const H = ckpt.config.hiddenSize;
      ref[(golden[0].length + 3) * H + 5] = Number.NaN;  // sequence 1, position 3
      await expect(s.divergence(referenceHead(ckpt, ref), finalNormRef(ckpt), lmHeadRef(ckpt))).rejects.toMatchObject({
        code: 'ERR_NONFINITE_LOGITS', message: expect.stringMatching(/^the reference model's logits .* at sequence 1, position 3,/),
      });
    } finally {
      await s.dispose();
    }
  });

  test('results do not depend on the thread count', async () => {
    const a = await runSession(ckpt, golden.slice(0, 3), [2], 1);
    const ref = a.snapshot();
    const outs = [];
    for (const threads of [1, 2, 3]) {
      const b = await runSession(ckpt, golden.slice(0, 3), [], threads);
      outs.push(await b.divergence(referenceHead(ckpt, ref), finalNormRef(ckpt), lmHeadRef(ckpt)));
      await b.dispose();
    }
    await a.dispose();
    for (const o of outs.slice(1)) {
      expect(Buffer.from(o.kl.buffer).equals(Buffer.from(outs[0].kl.buffer))).toBe(true);
      expect(Buffer.from(o.logprob.buffer).equals(Buffer.from(outs[0].logprob.buffer))).toBe(true);
    }
  });
});
