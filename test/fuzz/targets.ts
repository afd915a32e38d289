/**
 * The fuzz targets and the property every input must satisfy: the parser either accepts it or
 * throws a ShortGptError with a stable code; any other exception (TypeError, RangeError, a
 * stack overflow...) is a finding. Time is bounded by the runner (test/fuzz/run.ts). Shared by
 * the fuzzer and by the jest replay of the corpus and of past findings (replay.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShortGptError } from '../../lib/errors';
import { resolveConfig } from '../../lib/checkpoint/config';
import { findDuplicateKey, JsonTooDeepError } from '../../lib/checkpoint/jsonDuplicates';
import { readSafetensorsHeader } from '../../lib/checkpoint/safetensors';
import { readShardIndex } from '../../lib/checkpoint/shardIndex';

export type TargetName = 'safetensors' | 'shard-index' | 'config';
export const TARGETS: readonly TargetName[] = ['safetensors', 'shard-index', 'config'];

export const FUZZ_DIR = __dirname;
export const corpusDir = (t: TargetName): string => path.join(FUZZ_DIR, 'corpus', t);
export const crashDir = (t: TargetName): string => path.join(FUZZ_DIR, 'crashes', t);

/** What an input did: parsed, or refused with this code. */
export type Outcome = { ok: true } | { ok: false; code: string };

/** Thrown for an input that breaks the property; `cause` is what the parser threw. */
export class FuzzFinding extends Error {
  constructor(readonly target: TargetName, override readonly cause: unknown) {
    super(`${target}: expected a ShortGptError with a code, got ${describe(cause)}`);
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}: ${e.message.slice(0, 300)}${e.stack ? `\n${e.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
  return `a thrown ${typeof e}: ${String(e).slice(0, 300)}`;
}

function refusal(target: TargetName, e: unknown): Outcome {
  if (e instanceof ShortGptError && typeof e.code === 'string' && /^ERR_[A-Z0-9_]+$/.test(e.code) && e.message.length > 0) {
    return { ok: false, code: e.code };
  }
  throw new FuzzFinding(target, e);
}

/**
 * Runs one input through a target. The input is written to the file `scratch` first: the
 * readers take a path (their size and length checks are part of the target).
 */
export async function runTarget(target: TargetName, input: Buffer, scratch: string): Promise<Outcome> {
  // Written for every target: the runner's watchdog saves this file when an input hangs.
  fs.writeFileSync(scratch, input);
  try {
    switch (target) {
      case 'safetensors':
        await readSafetensorsHeader(scratch);
        break;
      case 'shard-index':
        await readShardIndex(scratch);
        break;
      case 'config':
        configTarget(input, scratch);
        break;
    }
    return { ok: true };
  } catch (e) {
    return refusal(target, e);
  }
}

/**
 * config.json as checkpoint.ts reads it: text that JSON.parse rejects never reaches the
 * resolver (the reader reports it as ERR_CONFIG), and a JsonTooDeepError from the duplicate-key
 * scan is wrapped the same way.
 */
function configTarget(input: Buffer, file: string): void {
  const text = input.toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return;
  }
  resolveConfig(raw, file);
  try {
    findDuplicateKey(text);
  } catch (e) {
    if (e instanceof JsonTooDeepError) throw new ShortGptError('ERR_CONFIG', `${file}: ${e.message}`);
    throw e;
  }
}

/** The files of a corpus or crash directory (missing directory = none), sorted by name. */
export function inputsIn(dir: string): { name: string; bytes: Buffer }[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => !n.startsWith('.') && n !== 'README.md').sort()
    .map((name) => ({ name, bytes: fs.readFileSync(path.join(dir, name)) }));
}
