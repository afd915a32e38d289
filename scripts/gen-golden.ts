/**
 * Regenerates the golden fixtures the tests compare the engine with (test/fixtures/golden):
 *
 *   npm run golden [-- --shared DIR]
 *
 * - stories260k-tokens.json: 24 TinyStories stories from assets/data/tinystories-valid.txt, each
 *   encoded by the model's own tokenizer (BOS added) and truncated to 256 tokens. The file's
 *   first story is a fragment (" Spot. Spot saw ..."), so the set is documents 1..24.
 * - stories260k.json: what the float64 reference (test/reference/forward64.ts, no code shared
 *   with lib/ or native/) computes on them for assets/stories260k: per-layer BI, angular
 *   distance, relative magnitude, perplexity (also with layers skipped), a logits checksum.
 *
 * Where DIR (default ../shared/golden beside the repository) holds golden values from another
 * independent implementation, it prints the largest difference per field and whether the two
 * agree; exit 1 when they do not. The fixtures are written either way.
 *
 * It runs the TypeScript sources directly (test/prune/helpers/tsRequire.js, as `npm run golden`
 * does), because the reference lives under test/ and is not part of the compiled package.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { splitTextDocuments } from '../lib/data/textFile';
import { loadTokenizer } from '../lib/data/tokenizer';
import type { Golden } from '../test/helpers/golden';
import { compareGolden, computeGolden, GOLDEN_TOLERANCE } from '../test/reference/golden64';

const STORIES = 24;
const MAX_TOKENS = 256;

/** The repository root: the nearest folder above this file with a package.json (scripts/ or dist/scripts/). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

async function goldenSequences(modelDir: string, textFile: string): Promise<number[][]> {
  const tokenizer = await loadTokenizer(modelDir);
  const docs = splitTextDocuments(fs.readFileSync(textFile, 'utf8'), textFile);
  if (docs.length < 1 + STORIES) throw new Error(`${textFile} holds ${docs.length} documents; the golden set needs ${1 + STORIES}`);
  return docs.slice(1, 1 + STORIES).map((d) => {
    if (d.kind !== 'text') throw new Error(`${d.origin} is not text`);
    return tokenizer.encode(d.text).slice(0, MAX_TOKENS);
  });
}

function describe(tokens: number, predictions: number): string {
  return `Reference values for the real stories260k model (assets/stories260k) on ${STORIES} TinyStories validation stories `
    + `(assets/data/tinystories-valid.txt documents 1..${STORIES}, tokenized with the model's tokenizer.json, BOS added, each truncated `
    + `to ${MAX_TOKENS} tokens; ${tokens} tokens). Computed in float64 by test/reference/forward64.ts via scripts/gen-golden.ts. `
    + 'Each sequence runs on its own from position 0; means are pooled over every token of every sequence. '
    + 'bi = 1 - mean cos(h_i, h_i+1), h_0 = embedding output, h_i+1 = residual stream after layer i before the final norm; '
    + 'a NaN cosine counts as 0.5. angular = mean arccos(cos)/pi. relmag = mean ||h_i+1 - h_i|| / ||h_i+1||. '
    + `perplexity = exp(mean next-token NLL), each sequence of length T predicting T-1 tokens (${predictions} predictions). `
    + 'perplexitySkipping: the same with the named layers skipped (the residual passes through them). '
    + 'logitsSum: the sum of every final logit of every position, a checksum.';
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** Compare with another golden folder; true when everything agrees. */
function compareWithShared(dir: string, tokens: number[][], golden: Golden): boolean {
  let ok = true;
  const theirTokens = readJson<number[][]>(path.join(dir, 'stories260k-tokens.json'));
  const sameTokens = JSON.stringify(theirTokens) === JSON.stringify(tokens);
  ok &&= sameTokens;
  process.stdout.write(`  tokens                  ${sameTokens ? 'identical' : 'DIFFER'}\n`);
  for (const d of compareGolden(golden, readJson<Golden>(path.join(dir, 'stories260k.json')))) {
    ok &&= d.ok;
    const how = d.kind === 'exact' ? 'exact' : `${d.kind}, limit ${GOLDEN_TOLERANCE.toExponential(0)}`;
    process.stdout.write(`  ${d.field.padEnd(22)}  max diff ${d.maxDiff.toExponential(2)} (${how})  ${d.ok ? 'agree' : 'DISAGREE'}\n`);
  }
  return ok;
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { shared: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('Usage: npm run golden [-- --shared DIR]   (DIR: golden values to compare with; default ../shared/golden)\n');
    return 0;
  }
  const root = repoRoot();
  const modelDir = path.join(root, 'assets', 'stories260k');
  const outDir = path.join(root, 'test', 'fixtures', 'golden');
  const started = Date.now();
  const tokens = await goldenSequences(modelDir, path.join(root, 'assets', 'data', 'tinystories-valid.txt'));
  const golden = computeGolden(modelDir, tokens);
  const doc = { model: 'assets/stories260k', tokens: 'test/fixtures/golden/stories260k-tokens.json', about: describe(golden.tokensCount, golden.predictedCount), ...golden };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'stories260k-tokens.json'), `${JSON.stringify(tokens)}\n`);
  fs.writeFileSync(path.join(outDir, 'stories260k.json'), `${JSON.stringify(doc, null, 1)}\n`);
  process.stdout.write(`wrote ${path.relative(root, outDir)}/stories260k{,-tokens}.json: ${tokens.length} sequences, ${golden.tokensCount} tokens (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);

  const shared = path.resolve(values.shared ?? path.join(root, '..', 'shared', 'golden'));
  if (!fs.existsSync(path.join(shared, 'stories260k.json'))) {
    process.stdout.write(`no golden values at ${shared} to compare with${values.shared ? '' : ' (nothing beside the repository: fine)'}\n`);
    return values.shared ? 1 : 0;
  }
  process.stdout.write(`compared with ${shared}:\n`);
  const ok = compareWithShared(shared, tokens, golden);
  process.stdout.write(ok ? 'they agree\n' : 'they DISAGREE\n');
  return ok ? 0 : 1;
}

if (require.main === module) {
  run(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    process.stderr.write(`gen-golden: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
