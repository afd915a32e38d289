/**
 * model.safetensors.index.json: `{"metadata": {...}, "weight_map": {tensor: shard file}}`
 * (transformers' sharded-checkpoint format). Parsed and checked on its own here; checking it
 * against the shards' headers happens in checkpoint.ts.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { quoted } from '../util/printable';
import { FILE_LIMITS, readTextLimited } from '../util/readLimited';
import { findDuplicateKey } from './jsonDuplicates';
import type { ShardIndex } from './types';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

function bad(file: string, message: string): never {
  throw new ShortGptError('ERR_SHARD_INDEX', `${file}: ${message}`);
}

export async function readShardIndex(file: string): Promise<ShardIndex> {
  let text: string;
  try {
    text = await readTextLimited(file, 'shard index', FILE_LIMITS.shardIndex);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    bad(file, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    bad(file, `not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(file, 'not a JSON object');
  let dup;
  try {
    dup = findDuplicateKey(text);
  } catch (e) {
    bad(file, (e as Error).message);
  }
  if (dup) bad(file, `duplicate key ${quoted(dup.key)}${dup.path.length ? ` inside ${quoted(dup.path.join('.'))}` : ''}`);
  const o = json as Record<string, unknown>;
  const wm = o.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) bad(file, "'weight_map' must be an object mapping tensor names to shard files");
  const meta = o.metadata ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) bad(file, "'metadata' must be an object");
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm as Record<string, unknown>)) {
    // A shard is a plain file name in the checkpoint directory; a path could reach outside it.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '.' || shard === '..' || shard.includes('\\')) {
      bad(file, `weight_map[${quoted(tensor)}] must be a shard file name in the same directory, got ${JSON.stringify(shard)}`);
    }
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) bad(file, "'weight_map' is empty");
  return { file, metadata: meta as Record<string, unknown>, weightMap };
}
