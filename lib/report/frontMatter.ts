/**
 * The YAML front matter of a Hugging Face model card (README.md): a block between a first line
 * `---` and the next line `---`, read by the Hub for metadata (license, tags, base_model...).
 * Split and extended without re-serialising, so what the author wrote stays byte for byte.
 */

/** A card split at its front matter; the parts joined give the text back exactly. */
export interface CardParts {
  /** From the start of the file through the opening `---` line (with a BOM, if any). */
  open: string;
  /** The YAML between the fences, each line with its line ending. */
  yaml: string;
  /** The closing `---` line, with its line ending when there is one. */
  close: string;
  /** Everything after the front matter. */
  body: string;
  /** The line ending the front matter uses ('\n' or '\r\n'). */
  eol: string;
}

/** Splits a card into front matter and body; null when it does not start with front matter. */
export function splitFrontMatter(text: string): CardParts | null {
  const opening = /^\uFEFF?---[ \t]*(\r?\n)/.exec(text);
  if (!opening) return null;
  const closing = /^---[ \t]*(\r?\n|$)/gm;
  closing.lastIndex = opening[0].length;
  const m = closing.exec(text);
  if (!m) return null;
  return {
    open: opening[0],
    yaml: text.slice(opening[0].length, m.index),
    close: m[0],
    body: text.slice(m.index + m[0].length),
    eol: opening[1],
  };
}

/** Whether the front matter has a top-level `key:`. */
export function hasTopLevelKey(yaml: string, key: string): boolean {
  return new RegExp(`^${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ \\t]*:`, 'm').test(yaml);
}

/**
 * The front matter block (fences included, ending with a line ending) with `entries` (key -> its
 * YAML lines, the first starting with `key:`) appended where the key is not already present;
 * every line already there is kept as it was.
 */
export function frontMatterWith(parts: CardParts, entries: ReadonlyArray<readonly [string, readonly string[]]>): string {
  let yaml = parts.yaml;
  for (const [key, lines] of entries) {
    if (hasTopLevelKey(yaml, key)) continue;
    if (yaml !== '' && !yaml.endsWith('\n')) yaml += parts.eol;
    yaml += lines.map((l) => `${l}${parts.eol}`).join('');
  }
  // A closing fence at the very end of the file gets the line ending the text after it needs.
  const close = /\n$/.test(parts.close) ? parts.close : `${parts.close}${parts.eol}`;
  return `${parts.open}${yaml}${close}`;
}
