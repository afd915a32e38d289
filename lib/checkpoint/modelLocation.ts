/**
 * MODEL as a user types it -> the checkpoint directory to read. MODEL may be:
 *   - a checkpoint directory (config.json + *.safetensors);
 *   - a Hugging Face hub cache folder `models--org--name` (its refs/<revision> names a commit,
 *     snapshots/<commit> holds the files, as symlinks into ../../blobs/);
 *   - a hub id `org/name` (or a bare `name`, like `gpt2`), looked up in the local hub cache:
 *     HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 *     ~/.cache/huggingface/hub, the order huggingface_hub uses. This is what transformers does
 *     with HF_HUB_OFFLINE=1: nothing is ever downloaded; a model not in the cache is an error
 *     that says how to download it.
 * A revision (default `main`) is a ref name under refs/ or a full commit hash naming a snapshot.
 * A .gguf file, or a path that does not exist, gets an error saying what MODEL should be.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShortGptError } from '../errors';
import { FILE_LIMITS, readTextLimitedSync } from '../util/readLimited';

export interface ModelLocation {
  /** The directory that holds config.json and the weights (a snapshot folder for the cache). */
  dir: string;
  /** Set when MODEL was found through the hub cache. */
  hub?: {
    /** `org/name`, from the cache folder's name. */
    repoId: string;
    /** The `models--org--name` folder. */
    cacheFolder: string;
    revision: string;
    /** The snapshot's commit hash. */
    commit: string;
  };
}

export interface ModelLocationOptions {
  /** Hub revision: a branch or tag under refs/ (default `main`) or a full commit hash. */
  revision?: string;
  /** Environment to read HF_HUB_CACHE / HF_HOME from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_REVISION = 'main';

/** The hub cache directory, resolved as huggingface_hub does (constants.py). */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const nonEmpty = (v: string | undefined): string | undefined => (v !== undefined && v !== '' ? v : undefined);
  const expand = (p: string): string => (p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p);
  const hubCache = nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE);
  if (hubCache) return path.resolve(expand(hubCache));
  const home = nonEmpty(env.HF_HOME) ?? path.join(nonEmpty(env.XDG_CACHE_HOME) ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.resolve(expand(home), 'hub');
}

/** `org/name` -> `models--org--name` (huggingface_hub's repo_folder_name). */
export function cacheFolderName(repoId: string): string {
  return `models--${repoId.split('/').join('--')}`;
}

/** What GGUF users can do instead (shortgpt-native reads safetensors, never GGUF). */
export function ggufAdvice(): string {
  return 'shortgpt-native reads Hugging Face safetensors checkpoints, not GGUF (llama.cpp\'s format). ' +
    'Either convert the GGUF back to safetensors (e.g. transformers: AutoModelForCausalLM.from_pretrained(dir, gguf_file=NAME).save_pretrained(OUT), or a GGUF-to-HF converter) and prune that, ' +
    'or prune the GGUF itself with llama.cpp: run `shortgpt-native prune ORIGINAL_SAFETENSORS_MODEL --calib DATA --remove N --dry-run` on the model the GGUF was made from, ' +
    'and apply the `llama-quantize --prune-layers LIST` command it prints to the GGUF';
}

const WHAT_MODEL_IS = 'MODEL is a checkpoint directory (config.json and *.safetensors), a Hugging Face cache folder (models--org--name), ' +
  'or a hub id org/name already in the local Hugging Face cache';

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

const isDir = (p: string): boolean => statOrNull(p)?.isDirectory() === true;

/** A hub repo folder of the cache: `models--org--name` with a snapshots/ folder. */
function isCacheRepoFolder(dir: string): boolean {
  return path.basename(dir).startsWith('models--') && isDir(path.join(dir, 'snapshots'));
}

/** `models--org--name` -> `org/name`. */
function repoIdOf(cacheFolder: string): string {
  return path.basename(cacheFolder).slice('models--'.length).split('--').join('/');
}

/** A repo id as the hub allows: `name` or `org/name`, letters, digits, '-', '_', '.'. */
const HUB_ID = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

function listNames(dir: string, recurse: boolean, prefix = ''): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (recurse && e.isDirectory()) out.push(...listNames(path.join(dir, e.name), true, `${prefix}${e.name}/`));
    else out.push(`${prefix}${e.name}`);
  }
  return out;
}

function checkRevision(revision: string): void {
  const parts = revision.split('/');
  if (revision === '' || revision.includes('\\') || path.isAbsolute(revision) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new ShortGptError('ERR_REVISION', `--revision '${revision}' is not a branch, tag or commit hash`);
  }
}

/** The snapshot of `cacheFolder` at `revision`: refs/<revision> -> snapshots/<commit>, or a commit hash. */
function resolveSnapshot(cacheFolder: string, revision: string): ModelLocation {
  checkRevision(revision);
  const repoId = repoIdOf(cacheFolder);
  const snapshots = path.join(cacheFolder, 'snapshots');
  const refFile = path.join(cacheFolder, 'refs', ...revision.split('/'));
  let commit: string | undefined;
  if (statOrNull(refFile)?.isFile()) {
    commit = readTextLimitedSync(refFile, 'Hugging Face cache ref', FILE_LIMITS.cacheRef).trim();
    if (!/^[0-9a-f]{40}$/.test(commit) || !isDir(path.join(snapshots, commit))) {
      throw new ShortGptError(
        'ERR_MODEL_NOT_CACHED',
        `${refFile} names commit '${commit}', but ${snapshots} has no such snapshot (an interrupted download?); download it again with \`hf download ${repoId} --revision ${revision}\``,
      );
    }
  } else if (/^[0-9a-f]{40}$/.test(revision) && isDir(path.join(snapshots, revision))) {
    commit = revision;
  } else {
    const refs = listNames(path.join(cacheFolder, 'refs'), true);
    const snaps = listNames(snapshots, false);
    throw new ShortGptError(
      'ERR_MODEL_NOT_CACHED',
      `revision '${revision}' of ${repoId} is not in the local cache ${cacheFolder} (refs: ${refs.length ? refs.join(', ') : 'none'}; snapshots: ${snaps.length ? snaps.join(', ') : 'none'}); ` +
        `shortgpt-native never downloads: fetch it with \`hf download ${repoId} --revision ${revision}\` (or \`huggingface-cli download ${repoId} --revision ${revision}\`), or pass --revision with one of the refs or snapshots above`,
    );
  }
  return { dir: path.join(snapshots, commit), hub: { repoId, cacheFolder, revision, commit } };
}

/** A path that exists: a checkpoint directory, a cache repo folder, or a file that is not MODEL. */
function resolveExisting(spec: string, abs: string, st: fs.Stats, revision: string | undefined): ModelLocation {
  if (!st.isDirectory()) {
    const name = path.basename(abs);
    if (name.toLowerCase().endsWith('.gguf')) throw new ShortGptError('ERR_GGUF', `${abs} is a GGUF file. ${ggufAdvice()}`);
    const inside = name === 'config.json' || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json');
    throw new ShortGptError(
      'ERR_CHECKPOINT_DIR',
      `${abs}: not a directory${inside ? `; give the directory that holds it: ${path.dirname(abs)}` : ''}. ${WHAT_MODEL_IS}`,
    );
  }
  if (isCacheRepoFolder(abs)) return resolveSnapshot(abs, revision ?? DEFAULT_REVISION);
  if (revision !== undefined) {
    throw new ShortGptError('ERR_REVISION_UNUSED', `--revision applies to a hub id (org/name) or a models--org--name cache folder; ${spec} is a plain directory, read as it is`);
  }
  return { dir: abs };
}

/** Where the checkpoint named by `spec` lives; reads nothing but directory entries and refs. */
export function resolveModelLocation(spec: string, options: ModelLocationOptions = {}): ModelLocation {
  const abs = path.resolve(spec);
  const st = statOrNull(abs);
  if (st) return resolveExisting(spec, abs, st, options.revision);
  const cache = hubCacheDir(options.env);
  const looksLikeHubId = HUB_ID.test(spec) && !spec.split('/').some((p) => p.startsWith('.'));
  if (looksLikeHubId) {
    const folder = path.join(cache, cacheFolderName(spec));
    if (isCacheRepoFolder(folder)) return resolveSnapshot(folder, options.revision ?? DEFAULT_REVISION);
    // A bare name that is neither here nor cached is more likely a mistyped path than a hub id.
    if (spec.includes('/')) {
      throw new ShortGptError(
        'ERR_MODEL_NOT_CACHED',
        `${spec} is not a directory here, and the Hugging Face cache ${cache} has no ${cacheFolderName(spec)} (the cache is HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). ` +
          `shortgpt-native never downloads: fetch it first with \`hf download ${spec}\` (or \`huggingface-cli download ${spec}\`), then run this again, or pass the checkpoint's directory`,
      );
    }
  }
  throw new ShortGptError('ERR_CHECKPOINT_DIR', `${abs}: does not exist. ${WHAT_MODEL_IS} (${cache})`);
}
