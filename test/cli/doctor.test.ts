import { main } from '../../lib/cli/main';
import { capture } from '../helpers/io';

describe('doctor', () => {
  it('reports the addon, its version and the cpu backend as JSON', async () => {
    const io = capture();
    const code = await main(['doctor', '--json'], io);
    expect(code).toBe(0);
    const r = JSON.parse(io.out());
    expect(r.addon.loaded).toBe(true);
    expect(r.addon.version).toBe(r.packageVersion);
    expect(r.addon.backends).toContain('cpu');
    expect(r.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2-fma', 'portable']).toContain(r.cpu.kernel);
  });

  it('exits 2 on an unknown option and names it', async () => {
    const io = capture();
    expect(await main(['doctor', '--bogus'], io)).toBe(2);
    expect(io.err()).toMatch(/--bogus/);
  });

  it('exits 2 on an unknown command', async () => {
    const io = capture();
    expect(await main(['frobnicate'], io)).toBe(2);
    expect(io.err()).toMatch(/unknown command 'frobnicate'/);
  });
});
