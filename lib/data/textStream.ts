/**
 * Plain text read in chunks -> documents in pieces, by the rule of textFile.ts (separator lines
 * `<|endoftext|>`, one final line break dropped, whitespace-only documents skipped), without ever
 * holding more than about two pieces of a document: a stream with no separator (`yes`, one 4 MB
 * story, a 60 MB line) is cut into pieces as it arrives (textPieces.ts), so memory follows the
 * tokens kept, not the text's size.
 *
 * Where the pieces differ from textFile.ts: a line longer than SEPARATOR_LINE_MAX characters is
 * never a separator (`<|endoftext|>` padded with that many spaces), and a document already cut into
 * pieces is kept even if it turns out to be whitespace only (it was at least 2 pieces long).
 */
import { DOCUMENT_SEPARATOR } from './textFile';
import { findCut, PIECE_CHARS, type PieceCut, type TextPiece } from './textPieces';

/** A piece of a text document, with the document's origin (`file:line` of its first line). */
export interface TextUnit extends TextPiece {
  origin: string;
}

/** A separator line is `<|endoftext|>` with a little whitespace around it, never a long line. */
const SEPARATOR_LINE_MAX = 1024;

export class TextDocumentSplitter {
  private buf = '';
  /** Start in buf of what is not yet emitted of the current document. */
  private docStart = 0;
  /** Start in buf of the current, unfinished line; where the next search for '\n' begins. */
  private lineStart = 0;
  private scan = 0;
  /** 1-based line numbers: of the current line, and of the current document's first line. */
  private lineNo = 1;
  private docLine = 1;
  /** A piece of the current document was emitted, and how the rest was cut from it. */
  private docStarted = false;
  private nextCut: PieceCut = 'start';
  /** The current line was cut by a piece: it is content, never a separator. */
  private lineCut = false;

  constructor(
    private readonly origin: string,
    private readonly pieceChars = PIECE_CHARS,
  ) {}

  /** More text; returns the pieces now complete. */
  push(text: string): TextUnit[] {
    const out: TextUnit[] = [];
    if (this.docStart > 0) {
      // Drop what was emitted so the buffer holds only the current document's tail.
      this.buf = this.buf.slice(this.docStart);
      this.lineStart -= this.docStart;
      this.scan -= this.docStart;
      this.docStart = 0;
    }
    this.buf += text;
    for (let nl = this.buf.indexOf('\n', this.scan); nl >= 0; nl = this.buf.indexOf('\n', this.scan)) {
      if (this.isSeparator(nl)) {
        this.endDocument(this.lineStart > this.docStart ? this.lineStart - 1 : this.docStart, out);
        this.docStart = nl + 1;
        this.docLine = this.lineNo + 1;
      }
      this.lineStart = this.scan = nl + 1;
      this.lineNo++;
      this.lineCut = false;
    }
    this.scan = this.buf.length;
    while (this.buf.length - this.docStart > 2 * this.pieceChars) this.cutPiece(out);
    return out;
  }

  /** The end of the text: the last document's last piece. */
  end(): TextUnit[] {
    const out: TextUnit[] = [];
    const { buf, lineStart } = this;
    if (lineStart === buf.length) {
      // The text ends with a line break (or is empty): drop that one break, as textFile.ts does.
      this.endDocument(lineStart > this.docStart ? lineStart - 1 : this.docStart, out);
    } else if (this.isSeparator(buf.length)) {
      this.endDocument(lineStart > this.docStart ? lineStart - 1 : this.docStart, out);
    } else {
      this.endDocument(buf.length, out);
    }
    this.buf = '';
    this.docStart = this.lineStart = this.scan = 0;
    return out;
  }

  private isSeparator(lineEnd: number): boolean {
    if (this.lineCut || lineEnd - this.lineStart > SEPARATOR_LINE_MAX) return false;
    return this.buf.slice(this.lineStart, lineEnd).trim() === DOCUMENT_SEPARATOR;
  }

  /** Emits the current document's text up to `end` as its last piece and starts a new document. */
  private endDocument(end: number, out: TextUnit[]): void {
    let body = this.buf.slice(this.docStart, end);
    if (body.endsWith('\r')) body = body.slice(0, -1);
    if (this.docStarted || body.trim() !== '') {
      out.push({ text: body, first: !this.docStarted, last: true, cut: this.nextCut, origin: `${this.origin}:${this.docLine}` });
    }
    this.docStarted = false;
    this.nextCut = 'start';
  }

  /** Emits one piece of about pieceChars from the current document (more than twice that is buffered). */
  private cutPiece(out: TextUnit[]): void {
    const lo = this.docStart + (this.pieceChars >> 1);
    // Never cut right at the current line's start: the break before a separator line belongs to it.
    const found = findCut(this.buf, lo, this.docStart + this.pieceChars, this.lineStart);
    out.push({ text: this.buf.slice(this.docStart, found.at), first: !this.docStarted, last: false, cut: this.nextCut, origin: `${this.origin}:${this.docLine}` });
    this.docStarted = true;
    this.nextCut = found.cut;
    if (found.at > this.lineStart) this.lineCut = true;
    this.docStart = found.at;
  }
}
