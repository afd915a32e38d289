/**
 * The golden values for stories260k (test/fixtures/golden): what the float64 reference
 * (test/reference/forward64.ts) computes on 24 TinyStories stories, and those token sequences.
 * `npm run golden` (scripts/gen-golden.ts) regenerates both files and compares them with
 * ../shared/golden, an independent float64 implementation's values, where that folder exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { goldenDir } from './paths';

export interface Golden {
  tokensCount: number;
  predictedCount: number;
  layers: { layer: number; bi: number; angular: number; relmag: number }[];
  perplexity: number;
  /** Keyed by the skipped layers, e.g. "1,3". */
  perplexitySkipping: Record<string, number>;
  logitsSum: number;
}

/**
 * How far the float32 engine may be from the float64 golden values. Measured on stories260k
 * (AVX-512, AVX2 and portable kernels): at most 5.5e-9 absolute for BI, angular distance and
 * relative magnitude, 4.6e-8 relative for perplexities, 2.7e-8 for the logits checksum. The
 * limits keep 2-4x of headroom and no more, so a small systematic change is caught: exp() in
 * the SiLU/attention kernels off by 1e-6 relative moves BI by 5.7e-8 and a perplexity by 1.9e-7.
 */
export const GOLDEN_SCORE_ABS_TOL = 2e-8;
export const GOLDEN_PERPLEXITY_REL_TOL = 1e-7;

export const goldenFile = path.join(goldenDir, 'stories260k.json');
/** 24 TinyStories stories, BOS added, each truncated to 256 tokens: a JSON array of id arrays. */
export const goldenTokensFile = path.join(goldenDir, 'stories260k-tokens.json');

export function loadGolden(): Golden {
  return JSON.parse(fs.readFileSync(goldenFile, 'utf8')) as Golden;
}

export function loadGoldenTokens(): number[][] {
  return JSON.parse(fs.readFileSync(goldenTokensFile, 'utf8')) as number[][];
}
