/**
 * Command-line parsing shared by every subcommand: node's util.parseArgs in strict mode, with
 * every failure turned into a UsageError (exit status 2) that names the option at fault.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors';
import { optionProblem } from './optionTypos';
import { printable } from '../util/printable';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * `--remove-layers -1`: parseArgs refuses a value that starts with a dash as "ambiguous". A value
 * that reads as a negative number cannot be an option, so it is joined to its option
 * (`--remove-layers=-1`) and the option's own check explains what is wrong with it.
 */
function joinNegativeValues(argv: string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return [...out, ...argv.slice(i)];
    const long = a.startsWith('--') && !a.includes('=') ? a.slice(2) : undefined;
    const short = long === undefined && /^-[a-zA-Z]$/.test(a) ? Object.keys(options).find((k) => options[k]!.short === a[1]) : undefined;
    const name = long ?? short;
    const next = argv[i + 1];
    if (name !== undefined && Object.hasOwn(options, name) && options[name]!.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

export function parseCommandLine(command: string, rawArgv: string[], options: OptionSpec): Parsed {
  const all: OptionSpec = { ...options, help: { type: 'boolean', short: 'h' } };
  const argv = joinNegativeValues(rawArgv, all);
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

/**
 * More layers than any checkpoint has (the largest public models have a few hundred). Indices are
 * refused above this before a range is expanded: `1-1000000000` would otherwise build a billion
 * entries before the model's own layer count is consulted.
 */
export const MAX_LAYER_INDEX = 99_999;

/** "3,5,7" or "3-5,9" -> [3,4,5,9], sorted, unique; every entry a non-negative integer. */
export function intListOption(command: string, parsed: Parsed, name: string): number[] | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const out = new Set<number>();
  const index = (digits: string): number => {
    const n = Number(digits);
    if (n > MAX_LAYER_INDEX) {
      throw new UsageError(`${command}: --${name}: layer ${digits} is beyond any model (indices above ${MAX_LAYER_INDEX} are refused); layers are numbered from 0 to the model's num_hidden_layers - 1`);
    }
    return n;
  };
  for (const part of raw.split(',').map((p) => p.trim())) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    if (range) {
      const a = index(range[1]!);
      const b = index(range[2]!);
      if (b < a) throw new UsageError(`${command}: --${name}: range '${part}' runs backwards`);
      for (let i = a; i <= b; i++) out.add(i);
    } else if (/^\d+$/.test(part)) {
      out.add(index(part));
    } else if (/^-\d/.test(part) || /^\d+--\d/.test(part)) {
      throw new UsageError(`${command}: --${name}: layer numbers are 0-based and non-negative; got '${printable(part)}'`);
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
