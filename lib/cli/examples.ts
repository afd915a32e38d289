/**
 * Worked examples at the top of each subcommand's --help, and commands printed for people to
 * run (the demo's closing line). Placeholders name real models the way a user's folder would
 * (./Llama-3.1-8B); at least one example per command runs as printed, on the model and text
 * bundled in the package, whose paths are shown relative to the current directory when they are
 * inside it (node_modules/shortgpt-native/assets/... for a project's local install).
 */
import * as path from 'node:path';
import { packageRoot } from '../engine/binding';
import { shellWord } from '../util/shell';

/** The bundled real model (stories260k, 5 layers) and TinyStories validation text. */
export const BUNDLED_MODEL = path.join(packageRoot, 'assets', 'stories260k');
export const BUNDLED_TEXT = path.join(packageRoot, 'assets', 'data', 'tinystories-valid.txt');

export interface Example {
  /** What it does, one line. */
  what: string;
  /** The arguments after `shortgpt-native`, already shell-quoted where needed. */
  command: string;
}

export { shellWord };

/** `p` as typed from `cwd`: relative when it lies inside it, else absolute; shell-quoted. */
export function shownPath(p: string, cwd: string = process.cwd()): string {
  const rel = path.relative(cwd, p);
  return shellWord(rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.resolve(p));
}

/** `text` as `  # ` comment lines of at most `width` characters (a long word gets a line of its own). */
function commentLines(text: string, width = 96): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && 4 + line.length + 1 + word.length > width) {
      lines.push(`  # ${line}`);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(`  # ${line}`);
  return lines;
}

/**
 * The "Examples:" block that opens a command's help, ending with a blank line: each example a
 * comment saying what it does, then the command as typed (never wrapped, so it pastes whole).
 */
export function examplesBlock(examples: readonly Example[]): string {
  const lines = ['Examples:'];
  for (const e of examples) lines.push(...commentLines(e.what), `  shortgpt-native ${e.command}`);
  return `${lines.join('\n')}\n\n`;
}
