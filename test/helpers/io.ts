import { Writable } from 'node:stream';
import type { CliIO } from '../../lib/cli/command';

/** A CliIO that records what a command writes, for assertions. */
export function capture(): CliIO & { out(): string; err(): string } {
  const outChunks: string[] = [];
  const errChunks: string[] = [];
  const sink = (into: string[]) => new Writable({ write(chunk, _enc, cb) { into.push(String(chunk)); cb(); } });
  return {
    stdout: sink(outChunks),
    stderr: sink(errChunks),
    out: () => outChunks.join(''),
    err: () => errChunks.join(''),
  };
}
