/**
 * JSON and JSONL -> documents.
 *
 * JSONL: one record per non-blank line. JSON: an array of records. A record is
 *   - a string: one text document;
 *   - an array of integers: one pre-tokenized document (ids used as they are, no BOS added);
 *   - an object: its `textField` holds a string (text) or an array of integers (ids).
 * A JSON file that is itself one array of integers is a single pre-tokenized document.
 * Anything else is an error naming the file, the line (JSONL) or index (JSON), and the field.
 */
import { ShortGptError } from '../errors';
import type { CalibrationDocument } from './documents';

function isIdArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** One record -> a document, or null for an empty one (skipped like an empty text file). */
function recordToDocument(rec: unknown, where: string, textField: string): CalibrationDocument | null {
  let value: unknown = rec;
  if (rec !== null && typeof rec === 'object' && !Array.isArray(rec)) {
    if (!Object.prototype.hasOwnProperty.call(rec, textField)) {
      throw new ShortGptError(
        'ERR_DATA_FIELD',
        `${where}: record has no field '${textField}' (fields: ${Object.keys(rec).slice(0, 8).join(', ') || 'none'}); choose the field with --text-field`,
      );
    }
    value = (rec as Record<string, unknown>)[textField];
  }
  if (typeof value === 'string') return value.trim() === '' ? null : { kind: 'text', text: value, origin: where };
  if (Array.isArray(value) && value.length === 0) return null;
  if (isIdArray(value)) return { kind: 'tokens', ids: value, origin: where };
  const field = value === rec ? 'record' : `field '${textField}'`;
  throw new ShortGptError('ERR_DATA_FIELD', `${where}: ${field} is ${describe(value)}; expected a string of text or an array of token ids`);
}

/**
 * The longest JSONL record read: one line is parsed whole, so a line without end (a file that is
 * not JSONL, a stream with no line breaks) would otherwise grow without bound.
 */
export const MAX_JSONL_RECORD_CHARS = 64 * 1024 * 1024;

function jsonlRecord(line: string, file: string, lineNo: number, textField: string): CalibrationDocument | null {
  const trimmed = line.trim();
  if (trimmed === '') return null;
  const where = `${file}:${lineNo}`;
  let rec: unknown;
  try {
    rec = JSON.parse(trimmed);
  } catch (e) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${where}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return recordToDocument(rec, where, textField);
}

function recordTooLarge(file: string, lineNo: number): ShortGptError {
  return new ShortGptError(
    'ERR_DATA_RECORD_TOO_LARGE',
    `${file}:${lineNo}: a JSONL record (line) longer than ${MAX_JSONL_RECORD_CHARS / (1024 * 1024)} Mi characters; split the text into several records, or give it as a .txt file`,
  );
}

/** JSONL text arriving in chunks -> documents, one line at a time (a line is bounded by MAX_JSONL_RECORD_CHARS). */
export async function* jsonlDocuments(chunks: AsyncIterable<string>, file: string, textField: string, maxRecordChars = MAX_JSONL_RECORD_CHARS): AsyncGenerator<CalibrationDocument> {
  let rest = '';
  let lineNo = 1;
  for await (const chunk of chunks) {
    let from = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', from)) {
      if (rest.length + nl - from > maxRecordChars) throw recordTooLarge(file, lineNo);
      const doc = jsonlRecord(rest + chunk.slice(from, nl), file, lineNo, textField);
      rest = '';
      if (doc) yield doc;
      lineNo++;
      from = nl + 1;
    }
    // No line break in the rest of the chunk: keep it (a rope, not copied) and check the bound.
    rest += chunk.slice(from);
    if (rest.length > maxRecordChars) throw recordTooLarge(file, lineNo);
  }
  const doc = jsonlRecord(rest, file, lineNo, textField);
  if (doc) yield doc;
}

/** A whole JSONL text -> documents (what jsonlDocuments yields, for callers that hold the text). */
export function parseJsonlDocuments(text: string, file: string, textField: string): CalibrationDocument[] {
  const docs: CalibrationDocument[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const doc = jsonlRecord(lines[i], file, i + 1, textField);
    if (doc) docs.push(doc);
  }
  return docs;
}

export function parseJsonDocuments(text: string, file: string, textField: string): CalibrationDocument[] {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (isIdArray(root)) return [{ kind: 'tokens', ids: root, origin: file }];
  if (!Array.isArray(root)) {
    throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: expected a JSON array of records (strings, objects with '${textField}', or id arrays), got ${describe(root)}`);
  }
  const docs: CalibrationDocument[] = [];
  root.forEach((rec, i) => {
    const doc = recordToDocument(rec, `${file}[${i}]`, textField);
    if (doc) docs.push(doc);
  });
  return docs;
}
