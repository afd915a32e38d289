/**
 * `score --shard I/N --partial OUT.json` (and --shard auto, --shards N): score one shard of the
 * calibration windows and write its partial sums for `merge`. Every shard reads and windows all
 * the data (cheap next to scoring), so the split and the data's hash need nothing but the data
 * and N; it then runs only its own windows through the model.
 */
import type { Checkpoint } from '../checkpoint/types';
import { describeCalibration } from '../data/windows';
import type { EngineOptions } from '../engine/engineOptions';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError, UsageError } from '../errors';
import { loadWindows } from '../prune/calibration';
import { scoreShard, type PartialScores } from '../scoring/partial';
import { dataIdentity, scoringProvenance, windowsSha256 } from '../scoring/partialProvenance';
import { batchWindows } from '../data/batches';
import { DEFAULT_BATCH_TOKENS } from '../prune/calibration';
import { perplexityBatches } from '../prune/strategies/passes';
import { writeJsonAtomic } from '../scoring/mergeFiles';
import { parseShard, shardRange, type ShardSpec } from '../scoring/shard';
import { plural } from '../util/format';
import { flag, intOption, stringOption, type OptionSpec, type Parsed } from './args';
import { listOption, parseCalibOptions } from './calibOptions';
import type { CliIO } from './command';
import { progressLine } from './progress';
import { exitWithLauncher } from './workers';

export const SHARD_OPTION_SPEC: OptionSpec = {
  shard: { type: 'string' },
  shards: { type: 'string' },
  eval: { type: 'string', multiple: true },
  partial: { type: 'string' },
  workers: { type: 'string' },
};

export const SHARD_OPTION_HELP = `Scaling out (README "Scaling out"; examples/slurm, examples/k8s):
  --shard I/N            score only shard I (0-based) of N: of the W calibration windows, those
                         from floor(I*W/N) up to floor((I+1)*W/N); needs --partial. auto: I and N
                         from the scheduler, said on stderr: a Slurm job array
                         (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or
                         a Kubernetes Indexed Job (JOB_COMPLETION_INDEX of --shards N or
                         SHORTGPT_SHARDS)
  --shards N             the shard count for --shard auto under Kubernetes (spec.completions)
  --partial FILE         write the shard's sums and provenance to FILE for
                         \`shortgpt-native merge\` (nothing on stdout but --json's summary)
  --eval DATA            with --partial: also the perplexity sums of this shard's share of the
                         windows of DATA (windowed as --calib, without --samples)
  --workers K            K processes on this machine, each scoring one shard with threads/K
                         threads, merged in memory: the same output as one process (to
                         rounding); K = the NUMA node count pins one worker per node (taskset).
                         --device cuda:0,1,2,3 or cuda:all runs one worker per GPU`;

export interface ShardRequest {
  shard: ShardSpec;
  partial: string;
}

/** --shard/--shards/--partial: undefined when none is given; usage errors for half a request. */
export function parseShardRequest(command: string, parsed: Parsed, env: NodeJS.ProcessEnv = process.env): ShardRequest | undefined {
  const shardText = stringOption(parsed, 'shard');
  const partial = stringOption(parsed, 'partial');
  const shards = intOption(command, parsed, 'shards', { min: 1 });
  if (shardText === undefined && partial === undefined) {
    if (parsed.values.eval !== undefined) throw new UsageError(`${command}: --eval DATA goes with --partial (use eval --data DATA for perplexity in one process)`);
    if (shards !== undefined) throw new UsageError(`${command}: --shards N only goes with --shard auto`);
    return undefined;
  }
  if (partial === undefined || partial === '') throw new UsageError(`${command}: --shard needs --partial FILE (where the shard's sums go)`);
  if (parsed.values.calib === undefined) throw new UsageError(`${command}: --partial scores calibration windows: give --calib DATA (--tokens is not sharded)`);
  if (parsed.values.workers !== undefined) throw new UsageError(`${command}: --workers runs its own shards; it cannot be combined with --shard/--partial`);
  // --shards N alone would silently score shard 0 of N: it only says the count for --shard auto.
  if (shardText === undefined && shards !== undefined) throw new UsageError(`${command}: --shards N only goes with --shard auto (for shard I of N give --shard I/N)`);
  if (shardText === undefined) return { shard: { index: 0, count: 1, source: 'no --shard: one shard of 1' }, partial };
  try {
    return { shard: parseShard(shardText, env, shards), partial };
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${command}: ${e.message}`);
    throw e;
  }
}

/** --partial FILE's folder must exist and take writes: found now, not after hours of scoring. */
export function checkPartialDestination(file: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new ShortGptError('ERR_OUTPUT_NOT_WRITABLE', `--partial ${file}: cannot write into ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); create it or choose another path`);
  }
  if (fs.existsSync(file) && !fs.statSync(file).isFile()) throw new ShortGptError('ERR_OUTPUT_NOT_WRITABLE', `--partial ${file} exists and is not a regular file`);
}

/** Loads all windows, scores this shard's, and returns the partial (not yet written). */
export async function scorePartial(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions, shard: ShardSpec): Promise<PartialScores> {
  const quiet = flag(parsed, 'quiet');
  const calibOptions = { ...parseCalibOptions(command, parsed), onNote: (m: string) => { if (!quiet) io.stderr.write(`${m}\n`); } };
  const sources = listOption(parsed, 'calib') as string[];
  const progress = progressLine(io, quiet);
  const loaded = await loadWindows(ckpt, sources, calibOptions, 'calibration data');
  const { start, end } = shardRange(loaded.windows.length, shard.index, shard.count);
  progress.note(`shard ${shard.index} of ${shard.count} (${shard.source}): windows ${start}..${end - 1} of ${describeCalibration(loaded.summary)}`);
  const provenance = scoringProvenance(ckpt, dataIdentity(ckpt, sources, loaded.windows, loaded.summary, calibOptions), engine, shard.count);
  const evalSources = listOption(parsed, 'eval');
  // Held-out data is read (and refused) before the long scoring pass, like prune's --eval.
  const held = evalSources && await loadWindows(ckpt, evalSources, { ...calibOptions, samples: undefined, seed: undefined }, '--eval data');
  // Too few --eval windows for N shards is refused here too, not after the scoring pass.
  const evalRange = held ? shardRange(held.windows.length, shard.index, shard.count, '--eval') : undefined;
  try {
    const result = await scoreShard(ckpt, loaded, shard, provenance, { engine, onProgress: progress.update, batchTokens: calibOptions.batchTokens });
    if (held && evalSources && evalRange) {
      const r = evalRange;
      const batches = batchWindows(held.windows.slice(r.start, r.end), calibOptions.batchTokens ?? DEFAULT_BATCH_TOKENS).map((b) => b.map((w) => w.ids));
      const ppl = await perplexityBatches(ckpt, batches, 'eval', { engine, onProgress: progress.update });
      result.perplexity = {
        sumNll: ppl.meanNll * ppl.predictions,
        predictions: ppl.predictions,
        tokens: ppl.tokens,
        sequences: r.end - r.start,
        data: { sources: [...evalSources], windows: held.windows.length, windowsSha256: windowsSha256(held.windows) },
      };
    }
    return result;
  } finally {
    progress.clear();
  }
}

/** `score --shard I/N --partial FILE`: score, write FILE, say what was written. */
export async function runShardScore(command: string, ckpt: Checkpoint, parsed: Parsed, io: CliIO, engine: EngineOptions, req: ShardRequest): Promise<number> {
  exitWithLauncher();
  checkPartialDestination(req.partial);
  const partial = await scorePartial(command, ckpt, parsed, io, engine, req.shard);
  writeJsonAtomic(req.partial, partial);
  const summary = { partial: req.partial, shard: partial.shard, tokens: partial.tokens, sequences: partial.sequences };
  if (flag(parsed, 'json')) io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else if (!flag(parsed, 'quiet')) io.stderr.write(`wrote ${req.partial}: shard ${partial.shard.index} of ${partial.shard.count}, ${plural(partial.sequences, 'window')}, ${plural(partial.tokens, 'token')}\n`);
  return 0;
}
