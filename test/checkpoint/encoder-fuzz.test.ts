/** The header encoder against the reader, and the reader against random corruption. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isShortGptError } from '../../lib/errors';
import { readSafetensorsHeader } from '../../lib/checkpoint/safetensors';
import { encodeSafetensorsHeader } from '../../lib/checkpoint/safetensorsHeader';
import { writeTensorFile } from '../../scripts/generate-checkpoint';
import { mulberry32 } from '../../scripts/gen-random';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-enc-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('encodeSafetensorsHeader', () => {
  it('pads the header with spaces so the data starts at a multiple of 8, offsets contiguous from 0', () => {
    for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
      const buf = encodeSafetensorsHeader([
        { name, dtype: 'F16', shape: [3], byteLength: 6 },
        { name: 'z', dtype: 'F32', shape: [2, 1], byteLength: 8 },
      ], { format: 'pt' });
      expect(buf.length % 8).toBe(0);
      const n = Number(buf.readBigUInt64LE(0));
      expect(n).toBe(buf.length - 8);
      const text = buf.subarray(8).toString('utf8');
      expect(text.trimEnd().length).toBeGreaterThan(0);
      expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
      const json = JSON.parse(text);
      expect(json.__metadata__).toEqual({ format: 'pt' });
      expect(json[name].data_offsets).toEqual([0, 6]);
      expect(json.z.data_offsets).toEqual([6, 14]);
    }
  });

  it('round-trips through the reader (writeTensorFile), keeping data order and metadata', async () => {
    const file = path.join(tmp, 'rt.safetensors');
    writeTensorFile(file, [
      { name: 'x.weight', dtype: 'BF16', shape: [2, 2], data: Buffer.alloc(8, 1) },
      { name: 'a.weight', dtype: 'F32', shape: [3], data: Buffer.alloc(12, 2) },
      { name: 'empty', dtype: 'F32', shape: [0], data: Buffer.alloc(0) },
    ], { note: 'hi' });
    const st = await readSafetensorsHeader(file);
    expect(st.metadata).toEqual({ note: 'hi' });
    expect(st.dataStart % 8).toBe(0);
    expect(st.tensors.filter((t) => t.byteLength > 0).map((t) => t.name)).toEqual(['x.weight', 'a.weight']);
    const bytes = fs.readFileSync(file);
    const a = st.tensors.find((t) => t.name === 'a.weight')!;
    expect(bytes.subarray(a.dataOffset, a.dataOffset + a.byteLength)).toEqual(Buffer.alloc(12, 2));
  });

  it('refuses duplicate or reserved tensor names', () => {
    expect(() => encodeSafetensorsHeader([{ name: 'a', dtype: 'U8', shape: [1], byteLength: 1 }, { name: 'a', dtype: 'U8', shape: [1], byteLength: 1 }]))
      .toThrow(expect.objectContaining({ code: 'ERR_SAFETENSORS_DUPLICATE_KEY' }));
    expect(() => encodeSafetensorsHeader([{ name: '__metadata__', dtype: 'U8', shape: [1], byteLength: 1 }]))
      .toThrow(expect.objectContaining({ code: 'ERR_SAFETENSORS_DUPLICATE_KEY' }));
  });
});

describe('reader fuzz: random byte mutations of a valid file', () => {
  it('300 mutants each parse or throw a ShortGptError, never anything else', async () => {
    const base = path.join(tmp, 'base.safetensors');
    writeTensorFile(base, [
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F16', shape: [2, 3], data: Buffer.alloc(12, 7) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [3], data: Buffer.alloc(12, 9) },
      { name: 'scalar', dtype: 'I64', shape: [], data: Buffer.alloc(8, 1) },
    ], { format: 'pt' });
    const original = fs.readFileSync(base);
    const headerEnd = 8 + Number(original.readBigUInt64LE(0));
    const rand = mulberry32(20240311);
    const pick = (n: number): number => Math.floor(rand() * n);
    const outcomes = { parsed: 0, rejected: 0 };
    const codes = new Set<string>();
    const file = path.join(tmp, 'mutant.safetensors');
    for (let i = 0; i < 300; i++) {
      let bytes = Buffer.from(original);
      const mutations = 1 + pick(3);
      for (let m = 0; m < mutations; m++) {
        const kind = pick(6);
        // Most mutations hit the length prefix and the header, where the rules live.
        const pos = pick(10) < 9 ? pick(headerEnd) : pick(bytes.length);
        if (kind === 0) bytes[pos] = pick(256);
        else if (kind === 1) bytes[pos] = bytes[pos]! ^ (1 << pick(8));
        else if (kind === 2) bytes[pos] = '{}[]",:0123456789 -.e'.charCodeAt(pick(21));
        else if (kind === 3) bytes = bytes.subarray(0, pick(bytes.length + 1));
        else if (kind === 4) bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from([pick(256)]), bytes.subarray(pos)]);
        else bytes = Buffer.concat([bytes.subarray(0, pos), bytes.subarray(pos + 1)]);
      }
      fs.writeFileSync(file, bytes);
      try {
        await readSafetensorsHeader(file);
        outcomes.parsed++;
      } catch (e) {
        if (!isShortGptError(e)) throw new Error(`mutant ${i} threw a non-ShortGptError: ${String(e)}`);
        codes.add(e.code);
        outcomes.rejected++;
      }
    }
    expect(outcomes.parsed + outcomes.rejected).toBe(300);
    expect(outcomes.rejected).toBeGreaterThan(150);
    // The mutations reach well beyond the first check.
    expect(codes.size).toBeGreaterThanOrEqual(5);
  });
});
