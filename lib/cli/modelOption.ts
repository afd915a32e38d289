/**
 * The MODEL argument's one option, shared by every command that takes MODEL: --revision, for a
 * MODEL found through the Hugging Face cache (lib/checkpoint/modelLocation.ts).
 */
import { UsageError } from '../errors';
import { stringOption, type OptionSpec, type Parsed } from './args';

export const MODEL_OPTION_SPEC: OptionSpec = {
  revision: { type: 'string' },
};

const REVISION_TEXT = 'when MODEL is a hub id (org/name) or a models--org--name cache folder: the branch, tag or commit hash to read from the local Hugging Face cache (default main; nothing is downloaded)';

/** The --revision help entry, its description starting at column `column` like the command's other options. */
export function modelOptionHelp(column: number): string {
  const head = '  --revision REV';
  const width = Math.max(40, 96 - column);
  const lines: string[] = [];
  let line = '';
  for (const word of REVISION_TEXT.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  const first = head.length + 2 <= column ? `${head.padEnd(column)}${lines[0]}` : `${head}\n${' '.repeat(column)}${lines[0]}`;
  return [first, ...lines.slice(1).map((l) => `${' '.repeat(column)}${l}`)].join('\n');
}

export function modelOptions(command: string, parsed: Parsed): { revision?: string } {
  const revision = stringOption(parsed, 'revision');
  if (revision === '') throw new UsageError(`${command}: --revision is empty`);
  return revision === undefined ? {} : { revision };
}
