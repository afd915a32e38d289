/**
 * One fixture per safetensors validation rule, each a file wrong in exactly that way, written
 * as raw bytes (not through our encoder) so the reader is tested against the format itself.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ShortGptError } from '../../lib/errors';
import { readSafetensorsHeader } from '../../lib/checkpoint/safetensors';

let tmp: string;
let counter = 0;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-st-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** 8-byte little-endian header length + header bytes + data bytes. */
function raw(header: string | Buffer, data: Buffer | number = 0, length?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  return Buffer.concat([prefix, h, typeof data === 'number' ? Buffer.alloc(data) : data]);
}

function put(bytes: Buffer): string {
  const file = path.join(tmp, `f${counter++}.safetensors`);
  fs.writeFileSync(file, bytes);
  return file;
}

async function codeOf(bytes: Buffer): Promise<{ code: string; message: string }> {
  const file = put(bytes);
  try {
    await readSafetensorsHeader(file);
  } catch (e) {
    expect(e).toBeInstanceOf(ShortGptError);
    const err = e as ShortGptError;
    expect(err.message).toContain(file);
    return { code: err.code, message: err.message };
  }
  throw new Error('expected the reader to reject the file');
}

const T = (dtype: string, shape: unknown, offs: unknown): string => JSON.stringify({ dtype, shape, data_offsets: offs });

describe('readSafetensorsHeader accepts valid files', () => {
  it('reads tensors, metadata, offsets and padding', async () => {
    const header = `{"__metadata__":{"format":"pt"},"b":${T('F16', [2, 3], [16, 28])},"a":${T('F32', [4], [0, 16])}}    `;
    const file = put(raw(header, 28));
    const st = await readSafetensorsHeader(file);
    expect(st.headerLength).toBe(Buffer.byteLength(header));
    expect(st.dataStart).toBe(8 + st.headerLength);
    expect(st.fileSize).toBe(8 + st.headerLength + 28);
    expect(st.metadata).toEqual({ format: 'pt' });
    // data order, absolute offsets
    expect(st.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffset - st.dataStart, t.byteLength])).toEqual([
      ['a', 'F32', [4], 0, 16], ['b', 'F16', [2, 3], 16, 12],
    ]);
    expect(st.tensors[0]!.file).toBe(file);
  });

  it('accepts scalars, zero-size tensors, no tensors, and a tensor named __proto__', async () => {
    const header = `{"__proto__":${T('F32', [], [0, 4])},"z":${T('BF16', [0, 5], [4, 4])},"i":${T('I64', [1], [4, 12])}}`;
    const st = await readSafetensorsHeader(put(raw(header, 12)));
    expect(st.tensors.map((t) => t.name).sort()).toEqual(['__proto__', 'i', 'z']);
    expect(st.metadata).toBeUndefined();
    const empty = await readSafetensorsHeader(put(raw('{}')));
    expect(empty.tensors).toEqual([]);
  });
});

describe('readSafetensorsHeader: one fixture per rule', () => {
  it('ERR_SAFETENSORS_TOO_SMALL: fewer than 8 bytes', async () => {
    expect((await codeOf(Buffer.from([2, 0, 0, 0, 0, 0, 0]))).code).toBe('ERR_SAFETENSORS_TOO_SMALL');
  });

  it('ERR_SAFETENSORS_HEADER_LENGTH: N above 100,000,000', async () => {
    expect((await codeOf(raw('{}', 0, 100_000_001n))).code).toBe('ERR_SAFETENSORS_HEADER_LENGTH');
  });

  it('ERR_SAFETENSORS_HEADER_LENGTH: N = 2^64-1 is compared as a BigInt, not rounded', async () => {
    expect((await codeOf(raw('{}', 0, 2n ** 64n - 1n))).code).toBe('ERR_SAFETENSORS_HEADER_LENGTH');
  });

  it('ERR_SAFETENSORS_HEADER_LENGTH: 8 + N runs past the end of the file', async () => {
    expect((await codeOf(raw('{}', 0, 3n))).code).toBe('ERR_SAFETENSORS_HEADER_LENGTH');
  });

  it('ERR_SAFETENSORS_HEADER_JSON: header is not UTF-8', async () => {
    const r = await codeOf(raw(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])));
    expect(r.code).toBe('ERR_SAFETENSORS_HEADER_JSON');
    expect(r.message).toMatch(/UTF-8/);
  });

  it('ERR_SAFETENSORS_HEADER_JSON: header is not JSON', async () => {
    expect((await codeOf(raw('{"a": '))).code).toBe('ERR_SAFETENSORS_HEADER_JSON');
  });

  it('ERR_SAFETENSORS_HEADER_JSON: header is JSON but not an object', async () => {
    expect((await codeOf(raw('[1, 2]    '))).code).toBe('ERR_SAFETENSORS_HEADER_JSON');
  });

  it('ERR_SAFETENSORS_HEADER_JSON: nesting deeper than 128 levels (no stack exhaustion)', async () => {
    const deep = `{"__metadata__":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const r = await codeOf(raw(deep));
    expect(r.code).toBe('ERR_SAFETENSORS_HEADER_JSON');
    expect(r.message).toMatch(/deeper than 128/);
  });

  it('ERR_SAFETENSORS_DUPLICATE_KEY: a tensor name twice at the top level', async () => {
    const r = await codeOf(raw(`{"w":${T('F32', [1], [0, 4])},"w":${T('F32', [1], [4, 8])}}`, 8));
    expect(r.code).toBe('ERR_SAFETENSORS_DUPLICATE_KEY');
    expect(r.message).toMatch(/'w' at the top level/);
  });

  it('ERR_SAFETENSORS_DUPLICATE_KEY: a key twice inside a tensor entry (even spelled with an escape)', async () => {
    const r = await codeOf(raw(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"\\u0064type":"F16"}}`, 4));
    expect(r.code).toBe('ERR_SAFETENSORS_DUPLICATE_KEY');
    expect(r.message).toMatch(/'dtype' inside 'w'/);
  });

  it('ERR_SAFETENSORS_METADATA: a metadata value that is not a string', async () => {
    const r = await codeOf(raw(`{"__metadata__":{"format":"pt","step":3}}`));
    expect(r.code).toBe('ERR_SAFETENSORS_METADATA');
    expect(r.message).toMatch(/'step'/);
  });

  it('ERR_SAFETENSORS_METADATA: metadata that is not an object', async () => {
    expect((await codeOf(raw(`{"__metadata__":"pt"}`))).code).toBe('ERR_SAFETENSORS_METADATA');
  });

  it('ERR_SAFETENSORS_ENTRY: an extra key in a tensor entry', async () => {
    const r = await codeOf(raw(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`, 4));
    expect(r.code).toBe('ERR_SAFETENSORS_ENTRY');
    expect(r.message).toMatch(/tensor 'w'/);
  });

  it('ERR_SAFETENSORS_ENTRY: a missing key in a tensor entry', async () => {
    expect((await codeOf(raw(`{"w":{"dtype":"F32","shape":[1]}}`, 4))).code).toBe('ERR_SAFETENSORS_ENTRY');
  });

  it('ERR_SAFETENSORS_ENTRY: a tensor entry that is not an object', async () => {
    expect((await codeOf(raw(`{"w":[1,2,3]}`))).code).toBe('ERR_SAFETENSORS_ENTRY');
  });

  it('ERR_SAFETENSORS_DTYPE: an unknown dtype', async () => {
    const r = await codeOf(raw(`{"w":${T('F33', [1], [0, 4])}}`, 4));
    expect(r.code).toBe('ERR_SAFETENSORS_DTYPE');
    expect(r.message).toMatch(/tensor 'w'.*"F33"/);
  });

  it('ERR_SAFETENSORS_SHAPE: a negative dimension', async () => {
    expect((await codeOf(raw(`{"w":${T('F32', [-1], [0, 4])}}`, 4))).code).toBe('ERR_SAFETENSORS_SHAPE');
  });

  it('ERR_SAFETENSORS_SHAPE: a fractional dimension', async () => {
    expect((await codeOf(raw(`{"w":${T('F32', [1.5], [0, 4])}}`, 4))).code).toBe('ERR_SAFETENSORS_SHAPE');
  });

  it('ERR_SAFETENSORS_SHAPE: an element count that overflows', async () => {
    const r = await codeOf(raw(`{"w":${T('F32', [2 ** 40, 2 ** 40], [0, 4])}}`, 4));
    expect(r.code).toBe('ERR_SAFETENSORS_SHAPE');
    expect(r.message).toMatch(/too many elements/);
  });

  it('ERR_SAFETENSORS_BYTE_LENGTH: data_offsets span differs from elements x dtype size', async () => {
    const r = await codeOf(raw(`{"w":${T('F32', [4], [0, 12])}}`, 12));
    expect(r.code).toBe('ERR_SAFETENSORS_BYTE_LENGTH');
    expect(r.message).toMatch(/tensor 'w'.*needs 16/);
  });

  it('ERR_SAFETENSORS_OFFSET: data_offsets that are not [begin <= end]', async () => {
    expect((await codeOf(raw(`{"w":${T('U8', [0], [4, 0])}}`, 4))).code).toBe('ERR_SAFETENSORS_OFFSET');
  });

  it('ERR_SAFETENSORS_OFFSET: a gap before the first tensor', async () => {
    const r = await codeOf(raw(`{"w":${T('F32', [1], [4, 8])}}`, 8));
    expect(r.code).toBe('ERR_SAFETENSORS_OFFSET');
    expect(r.message).toMatch(/gap/);
  });

  it('ERR_SAFETENSORS_OFFSET: two tensors that overlap', async () => {
    const r = await codeOf(raw(`{"a":${T('F32', [2], [0, 8])},"b":${T('F32', [2], [4, 12])}}`, 12));
    expect(r.code).toBe('ERR_SAFETENSORS_OFFSET');
    expect(r.message).toMatch(/overlap/);
  });

  it('ERR_SAFETENSORS_FILE_LENGTH: bytes after the last tensor', async () => {
    const r = await codeOf(raw(`{"w":${T('F32', [1], [0, 4])}}`, 5));
    expect(r.code).toBe('ERR_SAFETENSORS_FILE_LENGTH');
  });

  it('ERR_SAFETENSORS_FILE_LENGTH: data cut short (a truncated download)', async () => {
    expect((await codeOf(raw(`{"w":${T('F32', [2], [0, 8])}}`, 6))).code).toBe('ERR_SAFETENSORS_FILE_LENGTH');
  });

  it('ERR_FILE_NOT_FOUND: a file that does not exist', async () => {
    await expect(readSafetensorsHeader(path.join(tmp, 'missing.safetensors'))).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
  });
});
