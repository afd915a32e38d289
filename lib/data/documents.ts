/**
 * What every calibration source yields: documents, each either text (tokenized later with the
 * model's tokenizer) or ids already tokenized. `origin` names where it came from
 * ("data/a.jsonl:12") so later errors point at the culprit.
 */
export type CalibrationDocument =
  | { kind: 'text'; text: string; origin: string }
  | { kind: 'tokens'; ids: number[]; origin: string };

/** Options every source reader shares (the CLI's --text-field and --token-dtype). */
export interface SourceOptions {
  /** Field holding the text (or the ids) in JSON/JSONL records and the Parquet column; default `text`. */
  textField?: string;
  /** How raw token streams (.bin files) are stored; without it a .bin file is an error. */
  tokenDtype?: TokenDType;
  /** Id that starts each document in a raw token stream (llama2.c shards: BOS = 1). */
  bosTokenId?: number | null;
}

/** Element type of a raw .bin token stream (--token-dtype): little-endian uint16 or uint32. */
export type TokenDType = 'uint16' | 'uint32';

export const DEFAULT_TEXT_FIELD = 'text';
