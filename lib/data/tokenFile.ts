/**
 * `--tokens FILE`: calibration text already tokenized, as a JSON array of arrays of token ids.
 * Every id is checked against the model's vocabulary here, so the error names the file, the
 * sequence and the position.
 */
import { ShortGptError } from '../errors';
import { FILE_LIMITS, readTextLimited } from '../util/readLimited';

/** Reads a --tokens file (a JSON array of arrays of token ids), checking every id below `vocabSize` when given. */
export async function readTokenFile(file: string, vocabSize?: number): Promise<number[][]> {
  let text: string;
  try {
    text = await readTextLimited(file, 'token file', FILE_LIMITS.wholeJsonData);
  } catch (e) {
    if (e instanceof ShortGptError) throw e;
    throw new ShortGptError('ERR_TOKEN_FILE', `${file}: cannot read the token file: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ShortGptError('ERR_TOKEN_FILE', `${file}: not valid JSON: ${(e as Error).message}`);
  }
  return validateTokenSequences(data, file, vocabSize);
}

export function validateTokenSequences(data: unknown, file: string, vocabSize?: number): number[][] {
  const shape = `${file}: expected a JSON array of arrays of token ids, like [[1, 403, 407], [1, 378]]`;
  if (!Array.isArray(data)) throw new ShortGptError('ERR_TOKEN_FILE', shape);
  if (data.length === 0) throw new ShortGptError('ERR_TOKEN_FILE', `${file}: no sequences (the array is empty)`);
  data.forEach((seq: unknown, s) => {
    if (!Array.isArray(seq)) throw new ShortGptError('ERR_TOKEN_FILE', `${shape}; element ${s} is not an array`);
    if (seq.length === 0) throw new ShortGptError('ERR_TOKEN_FILE', `${file}: sequence ${s} is empty`);
    seq.forEach((id: unknown, i) => {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
        throw new ShortGptError('ERR_TOKEN_FILE', `${file}: sequence ${s}, position ${i}: ${JSON.stringify(id)} is not a non-negative integer token id`);
      }
      if (vocabSize !== undefined && id >= vocabSize) {
        throw new ShortGptError('ERR_TOKEN_RANGE', `${file}: sequence ${s}, position ${i}: token id ${id} is outside the model's vocabulary [0, ${vocabSize})`);
      }
    });
  });
  return data as number[][];
}
