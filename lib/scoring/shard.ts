/**
 * Which calibration windows a shard scores. The split depends only on the window count W and
 * the shard count N: shard I (0-based) gets the contiguous range [floor(I*W/N), floor((I+1)*W/N)).
 * Contiguous ranges, merged in shard order, add the windows' sums in the same window order as a
 * single process does, so a merge differs from it only by where the additions are grouped
 * (rounding, ~1e-16 relative), never by which windows count.
 *
 * `--shard auto` takes I and N from the scheduler that launched the process: a Slurm job array
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed
 * Job (JOB_COMPLETION_INDEX of --shards N, or SHORTGPT_SHARDS when the manifest sets it).
 */
import { ShortGptError, UsageError } from '../errors';

/** One shard of a run: which of how many, and where that was read from. */
export interface ShardSpec {
  /** 0-based shard index. */
  index: number;
  /** Shards in all. */
  count: number;
  /** Where I and N came from, said on stderr: "--shard 1/4", "Slurm array (SLURM_ARRAY_TASK_ID=...)". */
  source: string;
}

/** Most shards a run may be split into (a bound on partial files, not on the engine). */
export const MAX_SHARDS = 100_000;

function nonNegativeInt(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,9}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

/**
 * Parses --shard: "I/N" (0 <= I < N) or "auto" (the scheduler's environment). `shards` is
 * --shards N, the count a Kubernetes Indexed Job does not put in the environment.
 */
export function parseShard(value: string, env: NodeJS.ProcessEnv = process.env, shards?: number): ShardSpec {
  if (value === 'auto') return shardFromEnvironment(env, shards);
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(value);
  if (!m) throw new UsageError(`--shard must be I/N (shard I of N, 0-based, e.g. 0/4) or auto, got '${value}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) throw new UsageError(`--shard ${value}: N must be between 1 and ${MAX_SHARDS}`);
  if (index >= count) throw new UsageError(`--shard ${value}: I must be less than N (shards are numbered 0 to ${count - 1})`);
  if (shards !== undefined && shards !== count) throw new UsageError(`--shard ${value} says ${count} shards but --shards says ${shards}`);
  return { index, count, source: `--shard ${value}` };
}

/** `--shard auto`: Slurm job arrays first, then Kubernetes Indexed Jobs; neither is an error naming both. */
export function shardFromEnvironment(env: NodeJS.ProcessEnv, shards?: number): ShardSpec {
  const slurmId = env.SLURM_ARRAY_TASK_ID;
  if (slurmId !== undefined) {
    const id = nonNegativeInt(slurmId);
    const count = nonNegativeInt(env.SLURM_ARRAY_TASK_COUNT);
    const min = env.SLURM_ARRAY_TASK_MIN === undefined ? 0 : nonNegativeInt(env.SLURM_ARRAY_TASK_MIN);
    if (id === undefined || count === undefined || count < 1 || min === undefined) {
      throw new UsageError(`--shard auto: SLURM_ARRAY_TASK_ID=${slurmId} needs SLURM_ARRAY_TASK_COUNT (a positive integer) and SLURM_ARRAY_TASK_MIN; got SLURM_ARRAY_TASK_COUNT=${env.SLURM_ARRAY_TASK_COUNT ?? '(unset)'}, SLURM_ARRAY_TASK_MIN=${env.SLURM_ARRAY_TASK_MIN ?? '(unset)'}`);
    }
    const index = id - min;
    // A stepped or sparse array (--array=0-8:2, --array=1,5) has IDs that are not MIN..MIN+COUNT-1.
    // Slurm's STEP and MAX say so in every task, so even the tasks whose own ID would fit refuse
    // (scoring shards that can never be merged); without them, the ID range check below.
    const max = env.SLURM_ARRAY_TASK_MAX === undefined ? undefined : nonNegativeInt(env.SLURM_ARRAY_TASK_MAX);
    const step = env.SLURM_ARRAY_TASK_STEP === undefined ? undefined : nonNegativeInt(env.SLURM_ARRAY_TASK_STEP);
    if ((step !== undefined && step !== 1) || (max !== undefined && max - min + 1 !== count)) {
      throw new UsageError(`--shard auto: the Slurm array is not contiguous (SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_MAX=${env.SLURM_ARRAY_TASK_MAX ?? '(unset)'}, SLURM_ARRAY_TASK_STEP=${env.SLURM_ARRAY_TASK_STEP ?? '(unset)'}, SLURM_ARRAY_TASK_COUNT=${count}); submit a contiguous array without a step, e.g. --array=0-${count - 1}`);
    }
    if (index < 0 || index >= count) {
      throw new UsageError(`--shard auto: SLURM_ARRAY_TASK_ID=${id} is not in ${min}..${min + count - 1} (SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_COUNT=${count}); submit a contiguous array without a step, e.g. --array=0-${count - 1}`);
    }
    if (shards !== undefined && shards !== count) throw new UsageError(`--shard auto: SLURM_ARRAY_TASK_COUNT=${count} but --shards says ${shards}`);
    return { index, count, source: `Slurm job array (SLURM_ARRAY_TASK_ID=${id}, SLURM_ARRAY_TASK_MIN=${min}, SLURM_ARRAY_TASK_COUNT=${count})` };
  }
  const k8s = env.JOB_COMPLETION_INDEX;
  if (k8s !== undefined) {
    const index = nonNegativeInt(k8s);
    if (index === undefined) throw new UsageError(`--shard auto: JOB_COMPLETION_INDEX must be a non-negative integer, got '${k8s}'`);
    const fromEnv = env.SHORTGPT_SHARDS === undefined ? undefined : nonNegativeInt(env.SHORTGPT_SHARDS);
    if (env.SHORTGPT_SHARDS !== undefined && (fromEnv === undefined || fromEnv < 1)) throw new UsageError(`--shard auto: SHORTGPT_SHARDS must be a positive integer, got '${env.SHORTGPT_SHARDS}'`);
    if (shards !== undefined && fromEnv !== undefined && shards !== fromEnv) throw new UsageError(`--shard auto: --shards ${shards} and SHORTGPT_SHARDS=${fromEnv} disagree`);
    const count = shards ?? fromEnv;
    if (count === undefined) throw new UsageError('--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards: pass --shards N (the Job\'s spec.completions) or set SHORTGPT_SHARDS');
    if (index >= count) throw new UsageError(`--shard auto: JOB_COMPLETION_INDEX=${index} is not below the shard count ${count}`);
    return { index, count, source: `Kubernetes Indexed Job (JOB_COMPLETION_INDEX=${index}, ${shards !== undefined ? '--shards' : 'SHORTGPT_SHARDS='}${shards ?? fromEnv} shards)` };
  }
  throw new UsageError('--shard auto: no scheduler index in the environment: expected SLURM_ARRAY_TASK_ID (a Slurm job array) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); give --shard I/N instead');
}

/** Shard `index` of `count`'s windows among `windows`: [start, end). */
export function shardRange(windows: number, index: number, count: number, what = 'calibration'): { start: number; end: number } {
  if (windows < count) {
    throw new ShortGptError('ERR_SHARD_EMPTY', `${count} shards need at least ${count} ${what} windows, but the data gives ${windows}: use fewer shards or more data`);
  }
  return { start: Math.floor((index * windows) / count), end: Math.floor(((index + 1) * windows) / count) };
}
