/**
 * Text from input files (tensor names, config strings, metadata keys, shard names) reaches the
 * terminal through error messages and `inspect`. A name holding ESC sequences could recolour or
 * clear the screen, move the cursor, or forge a line that looks like our own output (a newline
 * followed by "ok"), so every such string is escaped before it is shown.
 */

// C0 controls (newline and tab included: a name is one line), DEL, C1 controls, and the
// invisible formatting characters that reorder or hide text (bidi overrides and isolates,
// zero-width marks, line/paragraph separators, BOM).
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function escapeChar(c: string): string {
  const named = Object.hasOwn(NAMED, c) ? NAMED[c] : undefined;
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `s` with every control or invisible formatting character written as an escape (`\x1b`, `\n`,
 * `\u202e`); backslashes are doubled only when something was escaped, so ordinary names
 * (including Windows-looking paths) read unchanged.
 */
export function printable(s: string): string {
  UNPRINTABLE.lastIndex = 0;
  if (!UNPRINTABLE.test(s)) return s;
  return s.replace(/\\/g, '\\\\').replace(UNPRINTABLE, escapeChar);
}

/** `'name'` with the name made {@link printable}: how messages quote a name read from a file. */
export function quoted(s: string): string {
  return `'${printable(s)}'`;
}

/**
 * A whole message made safe for a terminal while keeping its own line breaks: for the last line of
 * defence (the CLI's error printer), where names have usually been escaped already.
 */
export function printableMessage(message: string): string {
  return message.split('\n').map(printable).join('\n');
}
