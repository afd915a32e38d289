/**
 * Reading and writing partial and SCORES files. A file is checked for the fields the merge and
 * prune use (types, lengths), so a truncated, hand-edited or foreign file is an error naming it,
 * not a NaN later. Writes go to a temporary name beside the target and are renamed into place,
 * so a shard killed mid-write leaves no partial that looks complete.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { MiB, readTextLimitedSync } from '../util/readLimited';
import { PARTIAL_FORMAT, PARTIAL_VERSION, PER_WINDOW_FIELDS, type BlockSums, type LayerSums, type PartialScores } from './partial';
import type { ScoringProvenance } from './partialProvenance';
import { SCORES_FORMAT, type MergedScores } from './merge';
import { MAX_SHARDS } from './shard';

/** Partials hold O(layers^2) numbers: 80 layers is ~100 KB; this bounds a wrong file, not a real one. */
const MAX_SCORES_FILE_BYTES = 256 * MiB;

function invalid(file: string, what: string): never {
  throw new ShortGptError('ERR_SCORES_INVALID', `${file}: ${what}`);
}

function parseJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readTextLimitedSync(file, what, MAX_SCORES_FILE_BYTES);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    throw new ShortGptError('ERR_SCORES_READ', `${file}: cannot read ${what}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return invalid(file, `not JSON (${(e as Error).message}); expected ${what}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) invalid(file, `expected ${what} (a JSON object)`);
  return doc as Record<string, unknown>;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** Every shard scores at least one window (shardRange), so every layer and the block sums count at least one: 0 would divide to NaN. */
const isPositiveCount = (v: unknown): v is number => isCount(v) && v >= 1;

function checkLayers(file: string, layers: unknown, numLayers: number): LayerSums[] {
  if (!Array.isArray(layers) || layers.length !== numLayers) invalid(file, `expected ${numLayers} entries in the layer sums`);
  (layers as unknown[]).forEach((l, i) => {
    const o = l as Record<string, unknown>;
    if (o === null || typeof o !== 'object' || o.layer !== i || !isPositiveCount(o.tokens) || !isNum(o.sumCos) || !isNum(o.sumAngular) || !isNum(o.sumRelMag) || !isCount(o.nanCount) || o.nanCount > o.tokens) {
      invalid(file, `layer sums entry ${i} is not {layer: ${i}, tokens (>= 1), sumCos, sumAngular, sumRelMag, nanCount (<= tokens)}`);
    }
    const w = o.perWindow as Record<string, unknown> | undefined;
    if (w !== undefined) {
      const n = Array.isArray(w?.tokens) ? (w.tokens as unknown[]).length : -1;
      if (w === null || typeof w !== 'object' || !PER_WINDOW_FIELDS.every((k) => Array.isArray(w[k]) && (w[k] as unknown[]).length === n && (w[k] as unknown[]).every(isNum))) {
        invalid(file, `layer sums entry ${i}: perWindow must hold arrays ${PER_WINDOW_FIELDS.join(', ')} of equal length`);
      }
    }
  });
  return layers as LayerSums[];
}

function checkBlock(file: string, block: unknown, numLayers: number): BlockSums {
  const b = block as Record<string, unknown> | null;
  if (b === null || typeof b !== 'object' || !isPositiveCount(b.sequences) || !Array.isArray(b.sums) || b.sums.length !== numLayers + 1) invalid(file, `block sums must be {sequences (>= 1), sums: ${numLayers + 1} rows}`);
  (b!.sums as unknown[]).forEach((row, a) => {
    if (!Array.isArray(row) || row.length !== numLayers - a || !row.every(isNum)) invalid(file, `block sums row ${a} must hold ${numLayers - a} numbers`);
  });
  return b as unknown as BlockSums;
}

function checkProvenance(file: string, p: unknown): ScoringProvenance {
  const o = p as ScoringProvenance | null;
  if (o === null || typeof o !== 'object' || typeof o.model !== 'object' || typeof o.data !== 'object' || typeof o.engine !== 'object' || !isCount(o.shards)
    || typeof o.model.configSha256 !== 'string' || typeof o.model.tensorHeadersSha256 !== 'string' || !isCount(o.model.numHiddenLayers)
    || !Array.isArray(o.data.sources) || typeof o.data.windowsSha256 !== 'string' || !isCount(o.data.windows) || typeof o.data.windowing !== 'object') {
    invalid(file, 'provenance is missing or incomplete (model hashes, data identity, engine, shards)');
  }
  // The shard count sizes merge's bookkeeping (one entry per shard): bounded as --shard bounds it.
  if (o.shards < 1 || o.shards > MAX_SHARDS) invalid(file, `provenance.shards must be between 1 and ${MAX_SHARDS}, got ${o.shards}`);
  // prune --scores reports the calibration from this summary (describeCalibration reads these).
  const s = o.data.summary as unknown as Record<string, unknown> | null;
  if (s === null || typeof s !== 'object' || !['documents', 'tokens', 'windows', 'windowsAvailable', 'tokensUsed', 'seqLen', 'stride'].every((k) => isCount(s[k]))) {
    invalid(file, 'provenance.data.summary must be the calibration summary {documents, tokens, windows, windowsAvailable, tokensUsed, seqLen, stride, samples, seed}');
  }
  return o as ScoringProvenance;
}

/** Reads and checks one shard's partial scores. */
export function readPartialFile(file: string): PartialScores {
  const doc = parseJson(file, 'partial scores (written by score --shard I/N --partial FILE)');
  if (doc.format !== PARTIAL_FORMAT) invalid(file, `not a partial scores file (format '${String(doc.format)}', expected '${PARTIAL_FORMAT}')`);
  if (doc.version !== PARTIAL_VERSION) invalid(file, `partial scores version ${String(doc.version)}; this shortgpt-native reads version ${PARTIAL_VERSION}`);
  const provenance = checkProvenance(file, doc.provenance);
  const shard = doc.shard as PartialScores['shard'] | null;
  if (shard === null || typeof shard !== 'object' || !isCount(shard.index) || !isCount(shard.count) || shard.count !== provenance.shards || shard.index >= shard.count || !isCount(shard.windowStart) || !isCount(shard.windowEnd) || shard.windowEnd < shard.windowStart) {
    invalid(file, 'shard must be {index, count, windowStart, windowEnd} with index < count and count = provenance.shards');
  }
  if (!isCount(doc.tokens) || !isCount(doc.sequences)) invalid(file, 'tokens and sequences must be counts');
  const L = provenance.model.numHiddenLayers;
  checkLayers(file, doc.layers, L);
  checkBlock(file, doc.block, L);
  const ppl = doc.perplexity as Record<string, unknown> | undefined;
  if (ppl !== undefined) {
    const d = ppl?.data as Record<string, unknown> | undefined;
    if (ppl === null || typeof ppl !== 'object' || !isNum(ppl.sumNll) || !isCount(ppl.predictions) || !isCount(ppl.tokens) || !isCount(ppl.sequences)
      || d === null || d === undefined || typeof d !== 'object' || !Array.isArray(d.sources) || !isCount(d.windows) || typeof d.windowsSha256 !== 'string') {
      invalid(file, 'perplexity must be {sumNll, predictions, tokens, sequences, data: {sources, windows, windowsSha256}}');
    }
  }
  return doc as unknown as PartialScores;
}

/** Reads and checks SCORES.json (merge --out, or score --json with provenance). */
export function readScoresFile(file: string): MergedScores {
  const doc = parseJson(file, 'merged scores (written by shortgpt-native merge --out FILE)');
  if (doc.format !== SCORES_FORMAT) invalid(file, `not a merged scores file (format '${String(doc.format)}', expected '${SCORES_FORMAT}' as written by merge --out)`);
  const provenance = checkProvenance(file, doc.provenance);
  const sums = doc.sums as MergedScores['sums'] | null;
  if (sums === null || typeof sums !== 'object') invalid(file, 'sums are missing');
  const L = provenance.model.numHiddenLayers;
  checkLayers(file, sums!.layers, L);
  checkBlock(file, sums!.block, L);
  return doc as unknown as MergedScores;
}

/** Writes `doc` as JSON to `file` through a temporary name in the same folder. */
export function writeJsonAtomic(file: string, doc: unknown): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ShortGptError('ERR_WRITE', `cannot write ${file}: ${(e as Error).message}`);
  }
}
