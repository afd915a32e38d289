import { main } from '../../lib/cli/main';
import { commands } from '../../lib/cli/registry';
import { capture } from '../helpers/io';

describe('--help', () => {
  it('the top level lists every command and exits 0', async () => {
    const io = capture();
    expect(await main(['--help'], io)).toBe(0);
    for (const c of commands) expect(io.out()).toContain(c.name);
  });

  it('no command at all prints usage and exits 2', async () => {
    const io = capture();
    expect(await main([], io)).toBe(2);
    expect(io.out()).toMatch(/Usage: shortgpt-native <command>/);
  });

  it.each(commands.map((c) => c.name))('%s --help prints its usage and exits 0', async (name) => {
    const io = capture();
    expect(await main([name, '--help'], io)).toBe(0);
    expect(io.out()).toMatch(new RegExp(`Usage: shortgpt-native ${name}\\b`));
    expect(io.err()).toBe('');
  });
});
