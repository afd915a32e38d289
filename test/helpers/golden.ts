/**
 * ../shared/golden: reference values for stories260k from an independent float64 implementation
 * (see its README), and the token sequences they were computed on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sharedDir } from './paths';

export interface Golden {
  tokensCount: number;
  predictedCount: number;
  layers: { layer: number; bi: number; angular: number; relmag: number }[];
  perplexity: number;
  /** Keyed by the skipped layers, e.g. "1,3". */
  perplexitySkipping: Record<string, number>;
  logitsSum: number;
}

export const goldenFile = path.join(sharedDir, 'golden', 'stories260k.json');
/** 24 TinyStories stories, BOS added, each truncated to 256 tokens: a JSON array of id arrays. */
export const goldenTokensFile = path.join(sharedDir, 'golden', 'stories260k-tokens.json');

export function loadGolden(): Golden {
  return JSON.parse(fs.readFileSync(goldenFile, 'utf8')) as Golden;
}

export function loadGoldenTokens(): number[][] {
  return JSON.parse(fs.readFileSync(goldenTokensFile, 'utf8')) as number[][];
}
