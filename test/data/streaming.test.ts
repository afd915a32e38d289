/**
 * The calibration readers as streams (issue 10, item 3): JSONL lines, raw token streams and
 * Parquet row groups arriving in pieces give exactly what the whole-input parsers give, and a
 * reader that has enough tokens stops early (the rest of the file is not decoded).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jsonlDocuments, parseJsonlDocuments } from '../../lib/data/jsonSource';
import { parquetDocuments } from '../../lib/data/parquetSource';
import { loadCalibration } from '../../lib/data/sources';
import { parseTokenStream, tokenStreamUnits } from '../../lib/data/tokenStream';
import { repoRoot } from '../helpers/paths';
import { tmpDir } from './fixtures';

async function* inPieces<T extends string | Uint8Array>(whole: T, size: number): AsyncGenerator<T> {
  for (let i = 0; i < whole.length; i += size) yield whole.slice(i, i + size) as T;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('JSONL read line by line from chunks', () => {
  const text = '{"text": "first"}\n\n{"text": "sec\\nond"}\r\n[1, 2, 3]\n"a bare string"\n{"text": ""}\n{"text": "last, no newline"}';
  it.each([1, 5, 13, 1 << 20])('chunks of %i characters give the documents of the whole text', async (size) => {
    expect(await collect(jsonlDocuments(inPieces(text, size), 'f.jsonl', 'text'))).toEqual(parseJsonlDocuments(text, 'f.jsonl', 'text'));
  });

  it('a line above the record limit is refused with its line number, before it ends', async () => {
    const endless = async function* (): AsyncGenerator<string> {
      yield '{"text": "ok"}\n{"text": "';
      for (;;) yield 'x'.repeat(1000);
    };
    await expect(collect(jsonlDocuments(endless(), 'big.jsonl', 'text', 10_000))).rejects.toMatchObject({ code: 'ERR_DATA_RECORD_TOO_LARGE', message: expect.stringContaining('big.jsonl:2:') });
  });
});

describe('raw token streams read in chunks', () => {
  const ids = [1, 5, 6, 7, 1, 8, 1, 9, 10, 11, 12, 1, 13];
  it.each([
    ['uint16', 1],
    ['uint16', 3],
    ['uint32', 5],
    ['uint32', 4096],
  ] as const)('%s in chunks of %i bytes: the documents of the whole stream', async (dtype, size) => {
    const width = dtype === 'uint16' ? 2 : 4;
    const bytes = new Uint8Array(ids.length * width);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, i) => (width === 2 ? view.setUint16(i * 2, id, true) : view.setUint32(i * 4, id, true)));
    const units = await collect(tokenStreamUnits(inPieces(bytes, size), 't.bin', dtype, 1));
    const docs: { ids: number[]; origin: string }[] = [];
    for (const u of units) {
      if (u.first) docs.push({ ids: [], origin: u.origin });
      docs[docs.length - 1].ids.push(...u.ids);
    }
    expect(docs).toEqual(parseTokenStream(bytes, 't.bin', dtype, 1).map((d) => ({ ids: (d as { ids: number[] }).ids, origin: d.origin })));
  });
});

describe('Parquet read one row group at a time', () => {
  const rows = Array.from({ length: 50 }, (_, i) => `row ${i}: once upon a time`);
  let file: string;
  beforeAll(() => {
    file = path.join(tmpDir(), 'groups.parquet');
    const script = `
      import { parquetWriteFile } from 'hyparquet-writer';
      parquetWriteFile({ filename: process.env.SGN_FILE, rowGroupSize: 8, columnData: [{ name: 'text', data: JSON.parse(process.env.SGN_ROWS), type: 'STRING' }] });
    `;
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, env: { ...process.env, SGN_ROWS: JSON.stringify(rows), SGN_FILE: file }, stdio: 'pipe' });
  });

  it('yields every row, in order, across row groups', async () => {
    const docs = await collect(parquetDocuments(file, 'text'));
    expect(docs.map((d) => (d as { text: string }).text)).toEqual(rows);
    expect(docs[9].origin).toBe(`${file}#row 9`);
  });

  it('stops at the token limit', async () => {
    const tok = { dir: '', vocabSize: 512, bosTokenId: 1, eosTokenId: null, addBos: true, addEos: false, encode: (t: string) => [1, ...Array.from(t.slice(0, 9), (c) => c.charCodeAt(0))], decode: () => '' };
    const loaded = await loadCalibration([file], { vocabSize: 512, tokenizer: tok, maxTokens: 25 });
    expect(loaded.limitReached).toBe(true);
    expect(loaded.documents.map((d) => d.ids.length)).toEqual([10, 10, 5]);
  });
});
