/**
 * The data options `prune`, `score` and `eval` share: --calib/--data sources (repeatable, or
 * comma-free paths given several times), --text-field, --token-dtype, --seq-len, --stride,
 * --samples, --seed, --batch-tokens. Parsed once here so every command reads data the same way.
 */
import { UsageError } from '../errors';
import type { TokenDType } from '../data/documents';
import type { CalibrationOptions } from '../prune/calibration';
import { intOption, stringOption, type OptionSpec, type Parsed } from './args';

export const CALIB_OPTION_SPEC: OptionSpec = {
  'text-field': { type: 'string' },
  'token-dtype': { type: 'string' },
  'seq-len': { type: 'string' },
  stride: { type: 'string' },
  samples: { type: 'string' },
  seed: { type: 'string' },
  'batch-tokens': { type: 'string' },
  'max-calib-tokens': { type: 'string' },
};

export const CALIB_OPTION_HELP = `Data options:
  --text-field NAME      field holding the text in JSON/JSONL records and Parquet (default text)
  --token-dtype T        uint16 | uint32: how raw .bin token streams are stored
  --seq-len N            tokens per window (default 256; at most max_position_embeddings)
  --stride N             tokens between window starts (default = seq-len)
  --samples N            score a seeded sample of N windows
  --seed N               seed for --samples (default 0)
  --batch-tokens N       tokens per engine batch (default 65536): bounds memory only
  --max-calib-tokens N   read at most N tokens (default 4194304 = 2^22; a warning says when
                         reached), so memory and time stay bounded on any input
Data may be text (.txt/.md or no extension; <|endoftext|> lines split documents), JSONL/JSON
records, Parquet, token streams (.bin with --token-dtype), folders of them, or - for stdin; other
files (.csv, .gz, binary) are refused, or skipped with a note in folders. Under 16 windows warns.`;

/** Every value of a repeatable string option (`--calib a --calib b`), in order. */
export function listOption(parsed: Parsed, name: string): string[] | undefined {
  const v = parsed.values[name] as unknown;
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? (v as string[]) : [String(v)];
  return list.length ? list : undefined;
}

export function parseCalibOptions(command: string, parsed: Parsed): CalibrationOptions {
  const dtype = stringOption(parsed, 'token-dtype');
  if (dtype !== undefined && dtype !== 'uint16' && dtype !== 'uint32') {
    throw new UsageError(`${command}: --token-dtype must be uint16 or uint32, got '${dtype}'`);
  }
  const field = stringOption(parsed, 'text-field');
  if (field !== undefined && field === '') throw new UsageError(`${command}: --text-field is empty`);
  return {
    textField: field,
    tokenDType: dtype as TokenDType | undefined,
    seqLen: intOption(command, parsed, 'seq-len', { min: 2 }),
    stride: intOption(command, parsed, 'stride', { min: 1 }),
    samples: intOption(command, parsed, 'samples', { min: 1 }),
    seed: intOption(command, parsed, 'seed', { min: 0 }),
    batchTokens: intOption(command, parsed, 'batch-tokens', { min: 1 }),
    maxCalibTokens: intOption(command, parsed, 'max-calib-tokens', { min: 1 }),
  };
}
