/**
 * The `shortgpt-native` command: dispatches to a subcommand. Exit status 0 on success, 1 on a
 * runtime failure, 2 on a usage error; errors are one clear message on stderr, no stack trace
 * unless SHORTGPT_DEBUG=1.
 */
import { ShortGptError, UsageError } from '../errors';
import { printableMessage } from '../util/printable';
import { packageVersion } from '../version';
import type { CliIO } from './command';
import { commands } from './registry';
import { isUsageError } from './usageCodes';

function topLevelHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `shortgpt-native ${packageVersion}: make large language models shorter (ShortGPT, arXiv 2403.03853).`,
    '',
    'Usage: shortgpt-native <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `shortgpt-native <command> --help` (or `shortgpt-native help <command>`) for a command\'s',
    'examples and options. To try it now on a small model bundled with the package:',
    '  shortgpt-native demo',
    '',
    'Exit status: 0 success, 1 runtime failure, 2 usage error.',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  // `help CMD` is `CMD --help`.
  const [name, ...rest] = argv[0] === 'help' && argv.length > 1 ? [argv[1], '--help'] : argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(`${packageVersion}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}'. Commands: ${commands.map((c) => c.name).join(', ')}`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(command.help.endsWith('\n') ? command.help : `${command.help}\n`);
      return 0;
    }
    return await command.run(rest, io);
  } catch (e) {
    return reportError(e, io);
  }
}

export function reportError(e: unknown, io: CliIO): number {
  if (e instanceof UsageError) {
    io.stderr.write(`shortgpt-native: ${printableMessage(e.message)}\n`);
    return 2;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const code = e instanceof ShortGptError ? ` [${e.code}]` : (err as { code?: unknown }).code ? ` [${String((err as { code?: unknown }).code)}]` : '';
  // Messages quote names read from files; none may reach the terminal with control characters.
  io.stderr.write(`shortgpt-native: error${code}: ${printableMessage(err.message)}\n`);
  if (process.env.SHORTGPT_DEBUG === '1' && err.stack) io.stderr.write(`${err.stack}\n`);
  // A library error caused by an option the model cannot satisfy (--remove 9 of 5 layers).
  return isUsageError(e) ? 2 : 1;
}
