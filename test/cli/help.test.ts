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

  it.each(commands.map((c) => c.name))('%s --help opens with worked examples, then its usage, and exits 0', async (name) => {
    const io = capture();
    expect(await main([name, '--help'], io)).toBe(0);
    const text = io.out();
    expect(text.startsWith('Examples:\n')).toBe(true);
    const examples = text.slice(0, text.indexOf('\n\n')).split('\n').filter((l) => l.startsWith(`  shortgpt-native ${name}`));
    expect(examples.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(new RegExp(`\n\nUsage: shortgpt-native ${name}\\b`));
    expect(io.err()).toBe('');
  });

  it.each(commands.map((c) => c.name))('help %s prints exactly what --help does', async (name) => {
    const viaHelp = capture();
    const viaFlag = capture();
    expect(await main(['help', name], viaHelp)).toBe(0);
    expect(await main([name, '--help'], viaFlag)).toBe(0);
    expect(viaHelp.out()).toBe(viaFlag.out());
    expect(viaHelp.out()).not.toContain('Commands:');
  });

  it('help with an unknown command is a usage error naming the commands', async () => {
    const io = capture();
    expect(await main(['help', 'prnue'], io)).toBe(2);
    expect(io.err()).toMatch(/unknown command 'prnue'.*prune/);
    expect(io.out()).toBe('');
  });

  it('prune --help stays short enough to read: under 75 lines, options grouped', async () => {
    const io = capture();
    expect(await main(['prune', '--help'], io)).toBe(0);
    expect(io.out().split('\n').length).toBeLessThan(75);
    for (const group of ['Choosing layers:', 'Output:', 'Engine:', 'Data options:']) expect(io.out()).toContain(`\n${group}\n`);
  });
});
