/**
 * Duplicate-key detection for JSON text. `JSON.parse` keeps the last of two equal keys silently,
 * so a file could say one thing to us and another to a different reader (huggingface/safetensors
 * rejects duplicates). Call only on text that `JSON.parse` has already accepted: this scanner
 * walks the structure without re-validating the grammar.
 */

export interface DuplicateKey {
  /** The decoded key that occurs twice. */
  key: string;
  /** Keys from the document root to the object holding the duplicate ([] = top level). */
  path: string[];
}

/** Nesting limit, as serde_json's (which huggingface/safetensors parses with): deeper is refused. */
export const MAX_JSON_DEPTH = 128;

export class JsonTooDeepError extends Error {
  constructor() {
    super(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
}

/**
 * The first duplicate key in any object of `text`, or null when every object's keys are unique.
 * Throws JsonTooDeepError past MAX_JSON_DEPTH levels (so the recursion cannot exhaust the stack).
 */
export function findDuplicateKey(text: string): DuplicateKey | null {
  let i = 0;
  let depth = 0;
  const path: string[] = [];

  const skipWs = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };

  // Returns the decoded string starting at text[i] === '"' and moves past it.
  const readString = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };

  const value = (): DuplicateKey | null => {
    skipWs();
    const c = text[i];
    if ((c === '{' || c === '[') && ++depth > MAX_JSON_DEPTH) throw new JsonTooDeepError();
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      skipWs();
      if (text[i] === '}') { i++; depth--; return null; }
      for (;;) {
        skipWs();
        const key = readString();
        if (seen.has(key)) return { key, path: [...path] };
        seen.add(key);
        skipWs();
        i++; // ':'
        path.push(key);
        const dup = value();
        path.pop();
        if (dup) return dup;
        skipWs();
        if (text[i++] === '}') { depth--; return null; } // else ','
      }
    }
    if (c === '[') {
      i++;
      skipWs();
      if (text[i] === ']') { i++; depth--; return null; }
      for (;;) {
        const dup = value();
        if (dup) return dup;
        skipWs();
        if (text[i++] === ']') { depth--; return null; }
      }
    }
    if (c === '"') { readString(); return null; }
    // number, true, false, null
    while (i < text.length && !',]} \n\r\t'.includes(text[i]!)) i++;
    return null;
  };

  return value();
}
