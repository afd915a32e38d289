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

export const goldenFile = path.join(goldenDir, 'stories260k.json');
/** 24 TinyStories stories, BOS added, each truncated to 256 tokens: a JSON array of id arrays. */
export const goldenTokensFile = path.join(goldenDir, 'stories260k-tokens.json');

export function loadGolden(): Golden {
  return JSON.parse(fs.readFileSync(goldenFile, 'utf8')) as Golden;
}

export function loadGoldenTokens(): number[][] {
  return JSON.parse(fs.readFileSync(goldenTokensFile, 'utf8')) as number[][];
}
