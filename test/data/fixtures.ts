/** Small calibration fixtures written into a fresh temporary folder per test file. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers/paths';

export function tmpDir(prefix = 'sgn-data-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function writeTokenBin(file: string, ids: number[], dtype: 'uint16' | 'uint32'): void {
  const arr = dtype === 'uint16' ? new Uint16Array(ids) : new Uint32Array(ids);
  // Typed arrays are host-endian; the format is little-endian. Write through a DataView.
  const width = dtype === 'uint16' ? 2 : 4;
  const buf = Buffer.alloc(arr.length * width);
  arr.forEach((v, i) => (width === 2 ? buf.writeUInt16LE(v, i * 2) : buf.writeUInt32LE(v, i * 4)));
  fs.writeFileSync(file, buf);
}

/**
 * A Parquet file written by hyparquet-writer (an ES module, so it runs in a child node process:
 * jest's CommonJS sandbox cannot import it). `columns` maps a column name to string values.
 */
export function writeParquet(file: string, columns: Record<string, string[]>): void {
  const script = `
    import { parquetWriteFile } from 'hyparquet-writer';
    const columns = JSON.parse(process.env.SGN_COLUMNS);
    parquetWriteFile({ filename: process.env.SGN_FILE, columnData: Object.entries(columns).map(([name, data]) => ({ name, data, type: 'STRING' })) });
  `;
  execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repoRoot,
    env: { ...process.env, SGN_COLUMNS: JSON.stringify(columns), SGN_FILE: file },
    stdio: 'pipe',
  });
}
