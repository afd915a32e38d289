/**
 * Command-line parsing shared by every subcommand: node's util.parseArgs in strict mode, with
 * every failure turned into a UsageError (exit status 2) that names the option at fault.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors';
import { optionProblem } from './optionTypos';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parseCommandLine(command: string, argv: string[], options: OptionSpec): Parsed {
  const all: OptionSpec = { ...options, help: { type: 'boolean', short: 'h' } };
  const problem = optionProblem(argv, all);
  if (problem !== undefined) throw new UsageError(`${command}: ${problem}\nRun \`shortgpt-native ${command} --help\` for usage.`);
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: all,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Parsed['values'], positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new UsageError(`${command}: ${msg.replace(/^TypeError \[[A-Z_]+\]: /, '')}\nRun \`shortgpt-native ${command} --help\` for usage.`);
  }
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

export function intOption(command: string, parsed: Parsed, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`${command}: --${name} expects an integer, got '${raw}'`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${command}: --${name} is out of range: '${raw}'`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`${command}: --${name} must be at least ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw new UsageError(`${command}: --${name} must be at most ${opts.max}, got ${n}`);
  return n;
}

export function floatOption(command: string, parsed: Parsed, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${command}: --${name} expects a number, got '${raw}'`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`${command}: --${name} must be at least ${opts.min}, got ${n}`);
  if (opts.max !== undefined && n > opts.max) throw new UsageError(`${command}: --${name} must be at most ${opts.max}, got ${n}`);
  return n;
}

/** "3,5,7" or "3-5,9" -> [3,4,5,9], sorted, unique; every entry a non-negative integer. */
export function intListOption(command: string, parsed: Parsed, name: string): number[] | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const out = new Set<number>();
  for (const part of raw.split(',').map((p) => p.trim())) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      if (b < a) throw new UsageError(`${command}: --${name}: range '${part}' runs backwards`);
      for (let i = a; i <= b; i++) out.add(i);
    } else if (/^\d+$/.test(part)) {
      out.add(Number(part));
    } else {
      throw new UsageError(`${command}: --${name} expects comma-separated layer indices like 3,5 or 3-5, got '${raw}'`);
    }
  }
  if (out.size === 0) throw new UsageError(`${command}: --${name} is empty`);
  return [...out].sort((a, b) => a - b);
}

export function requirePositional(command: string, parsed: Parsed, index: number, what: string): string {
  const v = parsed.positionals[index];
  if (v === undefined) throw new UsageError(`${command}: missing ${what}\nRun \`shortgpt-native ${command} --help\` for usage.`);
  return v;
}

export function noExtraPositionals(command: string, parsed: Parsed, count: number): void {
  if (parsed.positionals.length > count) {
    throw new UsageError(`${command}: unexpected argument '${parsed.positionals[count]}'\nRun \`shortgpt-native ${command} --help\` for usage.`);
  }
}
