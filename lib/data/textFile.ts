/**
 * Plain text (.txt, .md, stdin) -> documents.
 *
 * Rule: a file is one document, unless it contains separator lines, a line that is exactly
 * `<|endoftext|>` (surrounding spaces allowed), as TinyStories and other GPT-2-era dumps do;
 * then each stretch between separators is a document. A separator line takes its own line
 * break and the one before it, so a document keeps its inner line breaks but gains no
 * trailing one; a file's single final line break is likewise dropped (editors add it; it is
 * not content). Documents that are empty or only whitespace are skipped. Nothing else is
 * trimmed: a leading space is text the tokenizer must see.
 */
import type { CalibrationDocument } from './documents';

/** The document separator line of TinyStories-style text dumps. */
export const DOCUMENT_SEPARATOR = '<|endoftext|>';

/** Plain text -> documents by the rule above; `origin` (a file name, or `-`) is recorded in each. */
export function splitTextDocuments(text: string, origin: string): CalibrationDocument[] {
  const lines = text.split('\n');
  const docs: CalibrationDocument[] = [];
  let current: string[] = [];
  let startLine = 1;
  const flush = (nextStart: number): void => {
    let body = current.join('\n');
    if (body.endsWith('\r')) body = body.slice(0, -1);
    if (body.trim() !== '') {
      docs.push({ kind: 'text', text: body, origin: `${origin}:${startLine}` });
    }
    current = [];
    startLine = nextStart;
  };
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === DOCUMENT_SEPARATOR) flush(i + 2);
    else current.push(lines[i]);
  }
  // The split leaves '' after a final '\n': dropping it drops the file's final line break.
  if (current.length > 0 && current[current.length - 1] === '') current.pop();
  flush(lines.length + 1);
  return docs;
}
