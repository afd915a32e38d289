/**
 * Long documents -> pieces the tokenizer can encode one at a time.
 *
 * Why: a tokenizer with no pre-tokenizer (Llama-2's SentencePiece-style tokenizer.json) runs BPE
 * over a whole document as one word, in time and memory far above linear: one 4 MB document
 * without separators took 28 s and 1.28 GB. Encoding pieces of ~4 K characters keeps both
 * proportional to the text.
 *
 * Where: a piece ends after a line break that is followed by a non-space character (so a run of
 * line breaks is never split, as Llama-3/GPT-4-style pre-tokenizers merge such runs), or failing
 * that before a single space between two non-space characters; only a stretch of 2 K characters
 * with neither is cut hard (at a code point boundary). Tokenizers do not merge across these points
 * in practice (BPE vocabularies hold no token spanning "\n" + a letter, and pre-tokenizers split
 * there), and the next piece is encoded after a line break of context (see Tokenizer.encodePiece)
 * so a normalizer that prepends "▁" or a space to the text start does not see a document start.
 * test/data/textPieces.test.ts checks that the ids are identical to whole-document encoding.
 */

/** Characters a piece aims at: small enough for BPE on one "word", large enough that splits are rare. */
export const PIECE_CHARS = 4 * 1024;

/** How a piece's start was cut from the text before it. */
export type PieceCut = 'start' | 'break' | 'space' | 'hard';

/** A piece of a document: its text, whether it begins/ends the document, and how it was cut. */
export interface TextPiece {
  text: string;
  first: boolean;
  last: boolean;
  /** How this piece's start was cut ('start' for a document's first piece). */
  cut: PieceCut;
}

const isSpace = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9 || c === 11 || c === 12 || c === 0xa0 || c === 0x3000 || (c >= 0x2000 && c <= 0x200a);

/**
 * The best cut in text[lo, hi] (indices where the next piece would start), searched backwards
 * from hi; `avoid` is an index that must not be chosen (-1 for none).
 */
export function findCut(text: string, lo: number, hi: number, avoid = -1): { at: number; cut: PieceCut } {
  hi = Math.min(hi, text.length - 1);
  for (let p = hi; p > lo; p--) {
    if (p !== avoid && text.charCodeAt(p - 1) === 10 && !isSpace(text.charCodeAt(p))) return { at: p, cut: 'break' };
  }
  for (let p = hi; p > lo; p--) {
    if (p !== avoid && text.charCodeAt(p) === 32 && !isSpace(text.charCodeAt(p - 1)) && p + 1 < text.length && !isSpace(text.charCodeAt(p + 1))) return { at: p, cut: 'space' };
  }
  let at = hi;
  const c = text.charCodeAt(at - 1);
  if (c >= 0xd800 && c <= 0xdbff) at--; // never split a surrogate pair
  if (at === avoid) at--;
  return { at, cut: 'hard' };
}

/** Splits one document's text into pieces of about `pieceChars` (the whole text when shorter than twice that). */
export function* splitLongText(text: string, pieceChars = PIECE_CHARS): Generator<TextPiece> {
  let start = 0;
  let cut: PieceCut = 'start';
  while (text.length - start > 2 * pieceChars) {
    const found = findCut(text, start + (pieceChars >> 1), start + pieceChars);
    yield { text: text.slice(start, found.at), first: start === 0, last: false, cut };
    start = found.at;
    cut = found.cut;
  }
  yield { text: start === 0 ? text : text.slice(start), first: start === 0, last: true, cut };
}
