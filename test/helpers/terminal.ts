/**
 * A minimal terminal screen for tests of what a program leaves on a terminal: printable
 * characters with auto-wrap at the width, '\r', '\n', and the three escape sequences the
 * progress line uses (ESC[nA cursor up, ESC[K erase to end of line, ESC[J erase below).
 * Anything else is an error, so a new sequence cannot slip by untested.
 */
import { Writable } from 'node:stream';

export class Screen {
  rows: string[][] = [[]];
  row = 0;
  col = 0;
  /** Set when the last column was written: the next character wraps (as xterm's pending wrap). */
  private pendingWrap = false;

  constructor(public columns: number) {}

  private line(): string[] {
    while (this.rows.length <= this.row) this.rows.push([]);
    return this.rows[this.row];
  }

  write(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (ch === '\r') {
        this.col = 0;
        this.pendingWrap = false;
      } else if (ch === '\n') {
        this.row++;
        this.col = 0;
        this.pendingWrap = false;
        this.line();
      } else if (ch === '\x1b') {
        const m = /^\x1b\[(\d*)([AKJ])/.exec(text.slice(i));
        if (!m) throw new Error(`unexpected escape sequence ${JSON.stringify(text.slice(i, i + 8))}`);
        const n = m[1] === '' ? 1 : Number(m[1]);
        if (m[2] === 'A') this.row = Math.max(0, this.row - n);
        else if (m[2] === 'K') this.line().length = Math.min(this.line().length, this.col);
        else {
          this.line().length = Math.min(this.line().length, this.col);
          this.rows.length = this.row + 1;
        }
        this.pendingWrap = false;
        i += m[0].length - 1;
      } else if (ch < ' ') {
        throw new Error(`unexpected control character ${JSON.stringify(ch)}`);
      } else {
        if (this.pendingWrap) {
          this.row++;
          this.col = 0;
          this.pendingWrap = false;
        }
        const l = this.line();
        while (l.length < this.col) l.push(' ');
        l[this.col] = ch;
        if (this.col === this.columns - 1) this.pendingWrap = true;
        else this.col++;
      }
    }
  }

  /** The screen's rows as text, trailing spaces trimmed, trailing empty rows dropped. */
  text(): string[] {
    const out = this.rows.map((r) => r.join('').replace(/\s+$/, ''));
    while (out.length > 0 && out[out.length - 1] === '') out.pop();
    return out;
  }
}

/** A CliIO stderr that is a terminal of `columns` columns, drawing onto a Screen and keeping every write. */
export function fakeTerminal(columns: number): { stream: Writable & { isTTY: boolean; columns: number }; screen: Screen; writes: string[] } {
  const screen = new Screen(columns);
  const writes: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      const s = String(chunk);
      writes.push(s);
      screen.write(s);
      cb();
    },
  }) as Writable & { isTTY: boolean; columns: number };
  stream.isTTY = true;
  stream.columns = columns;
  return { stream, screen, writes };
}
