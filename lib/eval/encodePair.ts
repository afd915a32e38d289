/**
 * A loglikelihood request (context, continuation) as token ids, exactly as lm-evaluation-harness
 * 0.4.13 encodes it for a causal Hugging Face model (lm_eval/api/model.py TemplateLM.loglikelihood
 * and _encode_pair, lm_eval/models/huggingface.py tok_encode, with the default add_bos_token=None):
 *
 * - tok_encode(s) is the tokenizer's own encode with its special tokens (transformers'
 *   add_special_tokens=True: a Llama tokenizer prepends BOS), unless s already starts with the
 *   prefix token's text, then none;
 * - a non-empty context: its trailing whitespace moves to the front of the continuation, the
 *   whole string context+continuation is encoded, and split at the context's own token count;
 * - an empty context: the continuation is encoded without special tokens and conditioned on the
 *   prefix token (BOS, else EOS), unless it already starts with that token.
 */
import type { Tokenizer } from '../data/tokenizer';
import { ShortGptError } from '../errors';

export interface EncodedPair {
  context: number[];
  continuation: number[];
}

/** The token a request with an empty context is conditioned on (HFLM.prefix_token_id). */
export function prefixTokenId(tok: Tokenizer): number {
  const id = tok.bosTokenId ?? tok.eosTokenId;
  if (id === null) throw new ShortGptError('ERR_TOKENIZER', `${tok.dir}: the tokenizer has neither a BOS nor an EOS token to condition an empty context on`);
  return id;
}

/** The tokenizer's encode without the special tokens it adds (BOS/EOS as configured). */
export function encodeNoSpecial(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text);
  const start = tok.addBos && ids.length > 0 && ids[0] === tok.bosTokenId ? 1 : 0;
  const end = tok.addEos && ids.length > start && ids[ids.length - 1] === tok.eosTokenId ? ids.length - 1 : ids.length;
  return ids.slice(start, end);
}

/** HFLM.tok_encode with add_special_tokens=None. */
export function tokEncode(tok: Tokenizer, text: string): number[] {
  const prefix = tok.decode([prefixTokenId(tok)]);
  return prefix !== '' && text.startsWith(prefix) ? encodeNoSpecial(tok, text) : tok.encode(text);
}

/** One request's context and continuation ids, as the harness computes them. */
export function encodePair(tok: Tokenizer, context: string, continuation: string): EncodedPair {
  if (context === '') {
    const cont = encodeNoSpecial(tok, continuation);
    const prefix = prefixTokenId(tok);
    return prefix !== cont[0] ? { context: [prefix], continuation: cont } : { context: cont.slice(0, 1), continuation: cont.slice(1) };
  }
  // Python's str.rstrip() strips Unicode whitespace; JS's trimEnd() strips the same set.
  const trimmed = context.trimEnd();
  const spaces = context.slice(trimmed.length);
  const whole = tokEncode(tok, trimmed + spaces + continuation);
  const ctx = tokEncode(tok, trimmed);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

/**
 * The sequence the model runs and how many of its last predictions are the continuation's, as
 * _loglikelihood_tokens does: it feeds the last maxLength+1 tokens of context+continuation minus
 * the final one and scores the last continuation.length predictions; running the kept tokens
 * whole, the same predictions are those of rows length-1-n .. length-2 (row r predicts r+1).
 */
export function requestSequence(pair: EncodedPair, maxLength: number): { sequence: number[]; scored: number } {
  const all = [...pair.context, ...pair.continuation];
  return { sequence: all.slice(Math.max(0, all.length - (maxLength + 1))), scored: pair.continuation.length };
}
