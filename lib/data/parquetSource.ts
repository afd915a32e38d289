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
  | { ok: true; kind: 'meta'; groups: number[] }
  | { ok: true; kind: 'rows'; values: unknown[] }
  | { ok: false; kind: 'field'; columns: string[] }
  | { ok: false; kind: 'corrupt'; message: string };

// Plain JavaScript run by the worker (no TypeScript, no bundler). It answers the row counts of the
// row groups, then one row group per request, so the reader holds one group at a time and can stop
// (--max-calib-tokens) without decoding the rest of the file.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');
const fail = (e) => parentPort.postMessage({ ok: false, kind: 'corrupt', message: String((e && e.message) || e) });
(async () => {
  const hp = await import(pathToFileURL(workerData.module).href);
  const file = await hp.asyncBufferFromFile(workerData.file);
  const metadata = await hp.parquetMetadataAsync(file);
  const columns = hp.parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(workerData.field)) {
    parentPort.postMessage({ ok: false, kind: 'field', columns });
    return;
  }
  const groups = metadata.row_groups.map((g) => Number(g.num_rows));
  parentPort.on('message', (m) => {
    hp.parquetReadObjects({ file, metadata, columns: [workerData.field], rowStart: m.rowStart, rowEnd: m.rowEnd })
      .then((rows) => parentPort.postMessage({ ok: true, kind: 'rows', values: rows.map((r) => r[workerData.field]) }), fail);
  });
  parentPort.postMessage({ ok: true, kind: 'meta', groups });
})().catch(fail);
`;

/** The reader worker, one request at a time: each reply is the next message. */
class ParquetWorker {
  private readonly worker: Worker;
  private waiting: { resolve: (m: WorkerReply) => void; reject: (e: Error) => void } | undefined;
  private failed: Error | undefined;
  private readonly early: WorkerReply[] = [];

  constructor(private readonly file: string, field: string) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: require.resolve('hyparquet'), file, field } });
    this.worker.on('message', (m: WorkerReply) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w.resolve(m);
      else this.early.push(m);
    });
    this.worker.once('error', (e) => this.stop(new ShortGptError('ERR_DATA_CORRUPT', `${file}: cannot read Parquet: ${e.message}`, { cause: e })));
    this.worker.once('exit', (code) => this.stop(new ShortGptError('ERR_DATA_CORRUPT', `${file}: Parquet reader stopped (exit ${code}) without a result`)));
  }

  private stop(e: Error): void {
    this.failed ??= e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.failed);
  }

  next(request?: { rowStart: number; rowEnd: number }): Promise<WorkerReply> {
    if (this.early.length > 0) return Promise.resolve(this.early.shift()!);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      if (request) this.worker.postMessage(request);
    });
  }

  close(): void {
    this.failed ??= new Error('closed');
    void this.worker.terminate();
  }
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

function check(reply: WorkerReply, file: string, textField: string): void {
  if (!reply.ok && reply.kind === 'field') {
    throw new ShortGptError('ERR_DATA_FIELD', `${file}: no column '${textField}' (columns: ${reply.columns.join(', ')}); choose one with --text-field`);
  }
  if (!reply.ok) throw new ShortGptError('ERR_DATA_CORRUPT', `${file}: cannot read Parquet: ${reply.message}`);
}

function rowDocument(v: unknown, where: string, textField: string): CalibrationDocument | null {
  if (typeof v === 'string') return v.trim() !== '' ? { kind: 'text', text: v, origin: where } : null;
  const ids = Array.isArray(v) ? toIds(v) : null;
  if (ids === null) {
    const what = v === null || v === undefined ? 'null' : Array.isArray(v) ? 'a list that is not all token ids' : typeof v;
    throw new ShortGptError('ERR_DATA_FIELD', `${where}: column '${textField}' holds ${what}; expected text or a list of token ids`);
  }
  return ids.length > 0 ? { kind: 'tokens', ids, origin: where } : null;
}

/** A Parquet file's rows as documents, one row group at a time; stopping early stops the reader. */
export async function* parquetDocuments(file: string, textField: string): AsyncGenerator<CalibrationDocument> {
  const reader = new ParquetWorker(file, textField);
  try {
    const meta = await reader.next();
    check(meta, file, textField);
    const groups = meta.ok && meta.kind === 'meta' ? meta.groups : [];
    let row = 0;
    for (const n of groups) {
      const reply = await reader.next({ rowStart: row, rowEnd: row + n });
      check(reply, file, textField);
      const values = reply.ok && reply.kind === 'rows' ? reply.values : [];
      for (let i = 0; i < values.length; i++) {
        const doc = rowDocument(values[i], `${file}#row ${row + i}`, textField);
        if (doc) yield doc;
      }
      row += n;
    }
  } finally {
    reader.close();
  }
}

/** Every row of a Parquet file as documents (parquetDocuments, collected). */
export async function readParquetDocuments(file: string, textField: string): Promise<CalibrationDocument[]> {
  const docs: CalibrationDocument[] = [];
  for await (const doc of parquetDocuments(file, textField)) docs.push(doc);
  return docs;
}
