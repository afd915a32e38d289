/** POSIX shell words: bare, backslash-escaped, or single-quoted ('\'' for a quote, as lib/cli/examples.ts writes). */
export function shellSplit(line: string): string[] {
  const words: string[] = [];
  const re = /\s*((?:[^\s'\\]+|\\.|'[^']*')+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    words.push(m[1].replace(/'([^']*)'|\\(.)|([^'\\]+)/g, (_all, quoted?: string, escaped?: string, bare?: string) => quoted ?? escaped ?? bare ?? ''));
  }
  return words;
}
