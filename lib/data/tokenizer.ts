/**
 * The model's own tokenizer: tokenizer.json run by the pure-JS @huggingface/tokenizers, with the
 * special-token policy of tokenizer_config.json applied here, because that package follows only
 * tokenizer.json's post-processor while transformers lets `add_bos_token` / `add_eos_token`
 * override it (LlamaTokenizerFast.update_post_processor).
 */
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ShortGptError } from '../errors';
import type { TextPiece } from './textPieces';
import { FILE_LIMITS, readTextLimitedSync } from '../util/readLimited';

/** A model's tokenizer, as {@link loadTokenizer} loads it: text -> ids the way transformers encodes. */
export interface Tokenizer {
  /** The directory the tokenizer files came from. */
  readonly dir: string;
  /** Ids the model knows, added tokens included (ids must be below this). */
  readonly vocabSize: number;
  /** The beginning-of-sequence token id, or null when the tokenizer has none. */
  readonly bosTokenId: number | null;
  /** The end-of-sequence token id, or null when the tokenizer has none. */
  readonly eosTokenId: number | null;
  /** Whether `encode` starts a document with BOS / ends it with EOS. */
  readonly addBos: boolean;
  /** Whether `encode` ends a document with EOS. */
  readonly addEos: boolean;
  /** One document -> ids, with BOS/EOS as configured. */
  encode(text: string): number[];
  /**
   * One piece of a long document (lib/data/textPieces.ts) -> ids: BOS only on the first piece,
   * EOS only on the last, and a piece cut at a line break or space is encoded as the text after
   * it (not as a document start), so the pieces' ids join to the document's. Optional for
   * tokenizers supplied by a caller: without it a document is encoded whole.
   */
  encodePiece?(piece: TextPiece): number[];
  /** Ids -> text; special tokens are kept (they are part of what the model saw). */
  decode(ids: ArrayLike<number>): string;
}

type Json = Record<string, unknown>;

/** What a continuing piece is encoded behind (see encodePiece). */
const PIECE_CONTEXT = '\n';

function readJson(file: string, what: string, limit: number): Json | undefined {
  let text: string;
  try {
    // Bounded and regular files only: tokenizer.json -> /dev/zero once ran the process out of memory.
    text = readTextLimitedSync(file, what, limit);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (e instanceof ShortGptError) throw e;
    throw new ShortGptError('ERR_TOKENIZER', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Json;
  } catch (e) {
    throw new ShortGptError('ERR_TOKENIZER', `${what} ${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** A special token as tokenizer_config / special_tokens_map spell it: "<s>" or {content: "<s>"}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function firstId(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0] as number;
  return null;
}

/**
 * Resolve a special token id: tokenizer_config's token, then special_tokens_map's, looked up in
 * the vocabulary; failing both, config.json's `<name>_token_id`.
 */
function specialId(tok: HfTokenizer, name: 'bos' | 'eos', sources: (Json | undefined)[], modelConfig: Json | undefined): number | null {
  for (const src of sources) {
    const text = tokenText(src?.[`${name}_token`]);
    if (text !== undefined) {
      const id = tok.token_to_id(text);
      if (id !== undefined) return id;
    }
  }
  return firstId(modelConfig?.[`${name}_token_id`]);
}

/**
 * Load `<modelDir>/tokenizer.json` (+ tokenizer_config.json, special_tokens_map.json and
 * config.json when present).
 *
 * BOS/EOS policy: when tokenizer_config.json sets `add_bos_token` / `add_eos_token`, that value
 * decides; a key it leaves out keeps what tokenizer.json's post-processor does (found by
 * encoding an empty string), which is also the whole policy when neither key is set (Qwen,
 * Mistral v3 and most non-Llama tokenizers).
 */
export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  const dir = path.resolve(modelDir);
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const tokenizerJson = readJson(tokenizerFile, 'tokenizer file', FILE_LIMITS.tokenizer);
  if (tokenizerJson === undefined) {
    throw new ShortGptError(
      'ERR_NO_TOKENIZER',
      `${dir} has no tokenizer.json, so text cannot be tokenized; give pre-tokenized data (JSON/JSONL id arrays, or .bin with --token-dtype) or add the model's tokenizer.json`,
    );
  }
  const tokConfig = readJson(path.join(dir, 'tokenizer_config.json'), 'tokenizer config', FILE_LIMITS.tokenizerConfig);
  const specialMap = readJson(path.join(dir, 'special_tokens_map.json'), 'special tokens map', FILE_LIMITS.smallJson);
  const modelConfig = readJson(path.join(dir, 'config.json'), 'model config', FILE_LIMITS.smallJson);

  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson, tokConfig ?? {});
  } catch (e) {
    throw new ShortGptError('ERR_TOKENIZER', `cannot build a tokenizer from ${tokenizerFile}: ${(e as Error).message}`, { cause: e });
  }

  // What tokenizer.json's post-processor adds on its own: the ids around a one-word document
  // with special tokens, compared with the same document without them.
  const bare = hf.encode('a', { add_special_tokens: false }).ids;
  const full = hf.encode('a', { add_special_tokens: true }).ids;
  let at = 0;
  while (at + bare.length <= full.length && bare.some((id, i) => full[at + i] !== id)) at++;
  const prefix = at + bare.length <= full.length ? full.slice(0, at) : [];
  const suffix = at + bare.length <= full.length ? full.slice(at + bare.length) : [];

  // Without a named BOS/EOS anywhere, the post-processor's own first/last special token is it.
  const bosTokenId = specialId(hf, 'bos', [tokConfig, specialMap], modelConfig) ?? (prefix.length > 0 ? prefix[0] : null);
  const eosTokenId = specialId(hf, 'eos', [tokConfig, specialMap], modelConfig) ?? (suffix.length > 0 ? suffix[suffix.length - 1] : null);
  const postBos = bosTokenId !== null && prefix[0] === bosTokenId;
  const postEos = eosTokenId !== null && suffix[suffix.length - 1] === eosTokenId;
  const cfgBos = tokConfig?.add_bos_token;
  const cfgEos = tokConfig?.add_eos_token;
  const addBos = (typeof cfgBos === 'boolean' ? cfgBos : postBos) && bosTokenId !== null;
  const addEos = (typeof cfgEos === 'boolean' ? cfgEos : postEos) && eosTokenId !== null;
  const configDecides = typeof cfgBos === 'boolean' || typeof cfgEos === 'boolean';

  // A piece that continues a document is encoded behind a line break of context whose ids are then
  // dropped: a normalizer that marks the text start (Llama's Prepend "▁", add_prefix_space) then
  // sees the piece as inner text, as it does inside the whole document.
  const contextIds = hf.encode(PIECE_CONTEXT, { add_special_tokens: false }).ids;
  const encodeAfter = (text: string, withContext: boolean): number[] => {
    if (withContext) {
      const ids = hf.encode(PIECE_CONTEXT + text, { add_special_tokens: false }).ids;
      if (ids.length >= contextIds.length && contextIds.every((id, i) => ids[i] === id)) return ids.slice(contextIds.length);
    }
    return hf.encode(text, { add_special_tokens: false }).ids.slice();
  };

  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  const encode = (text: string): number[] => {
    if (!configDecides) return hf.encode(text, { add_special_tokens: true }).ids.slice();
    const ids = hf.encode(text, { add_special_tokens: false }).ids.slice();
    if (addBos) ids.unshift(bosTokenId as number);
    if (addEos) ids.push(eosTokenId as number);
    return ids;
  };

  return {
    dir,
    vocabSize,
    bosTokenId,
    eosTokenId,
    addBos,
    addEos,
    encode,
    encodePiece(piece: TextPiece): number[] {
      if (piece.first && piece.last) return encode(piece.text);
      const ids = piece.text === '' ? [] : encodeAfter(piece.text, piece.cut === 'break' || piece.cut === 'space');
      const head = !piece.first ? [] : configDecides ? (addBos ? [bosTokenId as number] : []) : prefix;
      const tail = !piece.last ? [] : configDecides ? (addEos ? [eosTokenId as number] : []) : suffix;
      return head.length || tail.length ? [...head, ...ids, ...tail] : ids;
    },
    decode(ids: ArrayLike<number>): string {
      return hf.decode(Array.from(ids), { skip_special_tokens: false });
    },
  };
}
