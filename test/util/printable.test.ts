import { printable, printableMessage, quoted } from '../../lib/util/printable';

describe('printable', () => {
  it('leaves ordinary names (and their backslashes) as they are', () => {
    for (const s of ['model.layers.0.mlp.up_proj.weight', 'C:\\models\\x', 'naïve 名前 😀', '']) expect(printable(s)).toBe(s);
  });

  it('escapes C0/C1 controls, DEL, bidi overrides and lone surrogates', () => {
    expect(printable('a\u001b[31mb')).toBe('a\\x1b[31mb');
    expect(printable('line\nforged\r\tx\u0000')).toBe('line\\nforged\\r\\tx\\x00');
    expect(printable('\u007f\u0085\u009b')).toBe('\\x7f\\x85\\x9b');
    expect(printable('abc\u202edcb\u2066')).toBe('abc\\u202edcb\\u2066');
    expect(printable('x\ud800y')).toBe('x\\ud800y');
    // Once anything is escaped, a literal backslash is doubled so the two cannot be confused.
    expect(printable('a\\x1b\u001b')).toBe('a\\\\x1b\\x1b');
  });

  it('quoted() wraps in single quotes; printableMessage keeps the message\'s own line breaks', () => {
    expect(quoted('t\u001b')).toBe("'t\\x1b'");
    expect(printableMessage('first \u001b[2J\nsecond')).toBe('first \\x1b[2J\nsecond');
  });
});
