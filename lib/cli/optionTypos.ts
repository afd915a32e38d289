/**
 * What to say when a command line names an option the command does not have, or gives an
 * option the wrong kind of value. Node's parseArgs reports these in words about positional
 * arguments and quoting that do not help; here they are checked first, against the command's
 * own option table, and the nearest option by edit distance is suggested (`--remov` -> --remove).
 */
import { parseArgs } from 'node:util';
import type { OptionSpec } from './args';

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("fro" ~ "for"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The option `name` most likely meant, or undefined when none is close: a unique option it is a
 * prefix of (`--remove-l`), else the nearest within 1 edit for short names, 2 for longer ones
 * and never more than a third of the name (so `--x` suggests nothing).
 */
export function suggestOption(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const exactCase = known.find((k) => k.toLowerCase() === lower);
  if (exactCase) return exactCase;
  const prefixed = known.filter((k) => k.startsWith(lower));
  if (lower.length >= 3 && prefixed.length === 1) return prefixed[0];
  const limit = Math.min(lower.length <= 4 ? 1 : 2, Math.max(1, Math.floor(lower.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = editDistance(lower, k);
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/**
 * The first problem with `argv` against `options` as one sentence, or undefined when there is
 * none that this check knows of (parseArgs then has the last word). Everything after `--` is
 * positional and not looked at.
 */
export function optionProblem(argv: string[], options: OptionSpec): string | undefined {
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  const longNames = Object.keys(options);
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    // parseArgs keys short options by their long name; an unknown one keeps its own letter.
    if (spec === undefined) {
      if (!t.rawName.startsWith('--')) return `unknown option '${t.rawName}'`;
      const guess = suggestOption(t.name, longNames);
      return `unknown option '${t.rawName}'${guess ? ` (did you mean --${guess}?)` : ''}`;
    }
    if (spec.type === 'boolean' && t.inlineValue) return `--${t.name} takes no value (got '${t.rawName}=${t.value}')`;
    if (spec.type === 'string') {
      if (t.value === undefined) return `--${t.name} needs a value`;
      // parseArgs (strict) refuses a value that looks like an option: most likely the value is
      // missing and the next option was taken for it. '-' alone is stdin, a fine value.
      if (!t.inlineValue && t.value.length > 1 && t.value.startsWith('-')) {
        return `--${t.name} needs a value, but is followed by '${t.value}' (write --${t.name}=${t.value} if that is the value)`;
      }
    }
  }
  return undefined;
}
