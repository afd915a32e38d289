/** Both ways the rewrite moves bytes (kernel copy_file_range, read/write chunks) copy exactly. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeFd, openFd, RangeCopier } from '../../lib/prune/copyRange';

describe('RangeCopier', () => {
  let dir: string;
  const src = crypto.randomBytes(3 * 1024 * 1024 + 12345);
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shortgpt-copy-'));
    fs.writeFileSync(path.join(dir, 'src.bin'), src);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => delete process.env.SHORTGPT_COPY);

  async function copyWith(mode: 'kernel' | 'readwrite', name: string): Promise<{ out: Buffer; method: string; bytes: number }> {
    if (mode === 'readwrite') process.env.SHORTGPT_COPY = 'readwrite';
    const copier = new RangeCopier(1024 * 1024); // small chunks: several per span
    const srcFd = await openFd(path.join(dir, 'src.bin'), 'r');
    const dstFd = await openFd(path.join(dir, name), 'w');
    let bytes = 0;
    try {
      // Two spans out of order in the destination, neither aligned to anything.
      await copier.copy({ srcFd, srcPath: 'src.bin', srcOffset: 1000, dstOffset: 777, length: 2_000_001 }, dstFd, undefined, (n) => (bytes += n));
      await copier.copy({ srcFd, srcPath: 'src.bin', srcOffset: 7, dstOffset: 0, length: 777 }, dstFd, undefined, (n) => (bytes += n));
    } finally {
      await closeFd(srcFd);
      await closeFd(dstFd);
    }
    return { out: fs.readFileSync(path.join(dir, name)), method: copier.method, bytes };
  }

  const expected = Buffer.concat([src.subarray(7, 7 + 777), src.subarray(1000, 1000 + 2_000_001)]);

  it.each(['kernel', 'readwrite'] as const)('%s path copies the exact bytes and reports them', async (mode) => {
    const r = await copyWith(mode, `${mode}.bin`);
    expect(r.out.equals(expected)).toBe(true);
    expect(r.bytes).toBe(expected.length);
    if (mode === 'readwrite' || process.platform !== 'linux') expect(r.method).toBe('readwrite');
    else expect(r.method).toBe('kernel');
  });

  it('a source that ends early is an error naming the file, on either path', async () => {
    for (const mode of ['kernel', 'readwrite'] as const) {
      if (mode === 'readwrite') process.env.SHORTGPT_COPY = 'readwrite';
      const copier = new RangeCopier(1024 * 1024);
      const srcFd = await openFd(path.join(dir, 'src.bin'), 'r');
      const dstFd = await openFd(path.join(dir, `short-${mode}.bin`), 'w');
      try {
        await expect(copier.copy({ srcFd, srcPath: 'src.bin', srcOffset: src.length - 10, dstOffset: 0, length: 100 }, dstFd)).rejects.toMatchObject({
          code: 'ERR_SAFETENSORS_TRUNCATED',
          message: expect.stringContaining('src.bin'),
        });
      } finally {
        await closeFd(srcFd);
        await closeFd(dstFd);
      }
    }
  });
});
