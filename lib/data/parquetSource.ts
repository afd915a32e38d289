/**
 * Parquet files (as the Hugging Face Hub exports PG19, WikiText, ...) -> documents, one per row
 * of the column named by --text-field: a string column gives text, a list-of-integers column
 * (e.g. `input_ids`) gives pre-tokenized documents.
 *
 * hyparquet ships only as an ES module, which this CommonJS package cannot `require` on Node 20.
 * A real `import()` is not available inside jest's module sandbox either, so the read runs in a
 * worker thread, where Node's own loader imports it: one code path for the CLI, the library and
 * the tests.
 */
import { Worker } from 'node:worker_threads';
import { ShortGptError } from '../errors';
import type { CalibrationDocument } from './documents';

type WorkerReply =
  | { ok: true; values: unknown[] }
  | { ok: false; kind: 'field'; columns: string[] }
  | { ok: false; kind: 'corrupt'; message: string };

// Plain JavaScript run by the worker (no TypeScript, no bundler).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');
(async () => {
  const hp = await import(pathToFileURL(workerData.module).href);
  const file = await hp.asyncBufferFromFile(workerData.file);
  const metadata = await hp.parquetMetadataAsync(file);
  const columns = hp.parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(workerData.field)) {
    parentPort.postMessage({ ok: false, kind: 'field', columns });
    return;
  }
  const rows = await hp.parquetReadObjects({ file, metadata, columns: [workerData.field] });
  parentPort.postMessage({ ok: true, values: rows.map((r) => r[workerData.field]) });
})().catch((e) => parentPort.postMessage({ ok: false, kind: 'corrupt', message: String((e && e.message) || e) }));
`;

function readInWorker(file: string, field: string): Promise<WorkerReply> {
  const modulePath = require.resolve('hyparquet');
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: modulePath, file, field } });
    let settled = false;
    worker.once('message', (m: WorkerReply) => {
      settled = true;
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', (e) => {
      settled = true;
      reject(new ShortGptError('ERR_DATA_CORRUPT', `${file}: cannot read Parquet: ${e.message}`, { cause: e }));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new ShortGptError('ERR_DATA_CORRUPT', `${file}: Parquet reader stopped (exit ${code}) without a result`));
    });
  });
}

function toIds(v: unknown[]): number[] | null {
  const out: number[] = [];
  for (const x of v) {
    if (typeof x === 'number' && Number.isInteger(x)) out.push(x);
    else if (typeof x === 'bigint' && x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= 0n) out.push(Number(x));
    else return null;
  }
  return out;
}

export async function readParquetDocuments(file: string, textField: string): Promise<CalibrationDocument[]> {
  const reply = await readInWorker(file, textField);
  if (!reply.ok && reply.kind === 'field') {
    throw new ShortGptError('ERR_DATA_FIELD', `${file}: no column '${textField}' (columns: ${reply.columns.join(', ')}); choose one with --text-field`);
  }
  if (!reply.ok) throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: cannot read Parquet: ${reply.message}`);
  const docs: CalibrationDocument[] = [];
  reply.values.forEach((v, row) => {
    const where = `${file}#row ${row}`;
    if (typeof v === 'string') {
      if (v.trim() !== '') docs.push({ kind: 'text', text: v, origin: where });
      return;
    }
    const ids = Array.isArray(v) ? toIds(v) : null;
    if (ids === null) {
      const what = v === null || v === undefined ? 'null' : Array.isArray(v) ? 'a list that is not all token ids' : typeof v;
      throw new ShortGptError('ERR_DATA_FIELD', `${where}: column '${textField}' holds ${what}; expected text or a list of token ids`);
    }
    if (ids.length > 0) docs.push({ kind: 'tokens', ids, origin: where });
  });
  return docs;
}
