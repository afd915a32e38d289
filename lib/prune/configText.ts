/**
 * Writes the edited config.json as a minimal edit of the source text: only the values that
 * changed are replaced, so every other field keeps its exact spelling (`1e-05` stays `1e-05`,
 * `10000.0` stays `10000.0`; a JSON.stringify round trip would turn them into `0.00001` and
 * `10000`, which Python then reads as an int) and the file's layout is kept.
 */
import { isDeepStrictEqual } from 'node:util';

/** [start, end) of each top-level key's value in `text`, which JSON.parse has accepted. */
export function topLevelValueSpans(text: string): Map<string, [number, number]> | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const skipString = () => {
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipValue = () => {
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      // Brackets inside strings are skipped with the strings, so depth counting is exact.
      let depth = 0;
      do {
        const d = text[i];
        if (d === '"') {
          skipString();
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') depth--;
        i++;
      } while (depth > 0);
      return;
    }
    while (i < text.length && !',]} \t\r\n'.includes(text[i]!)) i++;
  };
  const spans = new Map<string, [number, number]>();
  ws();
  if (text[i] !== '{') return null;
  i++;
  ws();
  if (text[i] === '}') return spans;
  for (;;) {
    ws();
    const keyStart = i;
    skipString();
    const key = JSON.parse(text.slice(keyStart, i)) as string;
    ws();
    i++; // ':'
    ws();
    const start = i;
    skipValue();
    if (spans.has(key)) return null; // duplicate keys: let the caller re-emit instead
    spans.set(key, [start, i]);
    ws();
    if (text[i++] === '}') return spans;
  }
}

/** `value` rendered in the style of `original` (one element per line when it was so). */
function renderLike(original: string, value: unknown): string {
  if (Array.isArray(value) && original.startsWith('[') && original.includes('\n') && value.length > 0) {
    const open = /^\[(\s*)/.exec(original)![1]!;
    const close = /(\s*)\]$/.exec(original)![1]!;
    return `[${open}${value.map((v) => JSON.stringify(v)).join(`,${open}`)}${close}]`;
  }
  return JSON.stringify(value);
}

/**
 * The text of `edited`, written as `sourceText` with the changed top-level values replaced.
 * Falls back to a fresh 2-space-indented document when the source text cannot be patched
 * (e.g. a key was added, or the text no longer parses to `sourceValue`).
 */
export function patchConfigText(sourceText: string, sourceValue: Record<string, unknown>, edited: Record<string, unknown>): string {
  const fresh = `${JSON.stringify(edited, null, 2)}\n`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(sourceText);
  } catch {
    return fresh;
  }
  if (!isDeepStrictEqual(parsed, sourceValue)) return fresh;
  const spans = topLevelValueSpans(sourceText);
  if (spans === null) return fresh;
  const changes: Array<[number, number, string]> = [];
  for (const [key, value] of Object.entries(edited)) {
    const span = spans.get(key);
    if (span === undefined) return fresh;
    if (isDeepStrictEqual(value, sourceValue[key])) continue;
    changes.push([span[0], span[1], renderLike(sourceText.slice(span[0], span[1]), value)]);
  }
  if (Object.keys(edited).length !== spans.size) return fresh;
  let out = sourceText;
  for (const [start, end, text] of changes.sort((a, b) => b[0] - a[0])) out = out.slice(0, start) + text + out.slice(end);
  return isDeepStrictEqual(JSON.parse(out), edited) ? out : fresh;
}
