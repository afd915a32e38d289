/**
 * A small seeded generator for synthetic weights and token ids: the same seed gives the same
 * bytes on every machine and Node version (Math.random cannot be seeded). Timing does not
 * depend on the values, only on their being ordinary finite numbers; determinism makes runs
 * comparable and failures reproducible.
 */

import { mulberry32U32 } from '../util/prng';

export class Prng {
  /** Uniform 32-bit unsigned integer (mulberry32). */
  readonly nextU32: () => number;

  constructor(seed: number) {
    this.nextU32 = mulberry32U32(seed);
  }

  /** Uniform in (0, 1): never 0, so log() below is finite. */
  nextOpenUnit(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  /** Uniform integer in [0, n). The modulo bias is below n / 2^32: irrelevant for token ids. */
  nextInt(n: number): number {
    return this.nextU32() % n;
  }

  /**
   * Fills `out` with normal(0, std) values (Box-Muller, two values per pair of uniforms), the
   * distribution torch_peer.py's `p.normal_(0.0, 0.02)` draws from.
   */
  fillNormal(out: Float32Array, std: number): void {
    const n = out.length;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const r = std * Math.sqrt(-2 * Math.log(this.nextOpenUnit()));
      const a = 2 * Math.PI * this.nextOpenUnit();
      out[i] = r * Math.cos(a);
      out[i + 1] = r * Math.sin(a);
    }
    if (i < n) out[i] = std * Math.sqrt(-2 * Math.log(this.nextOpenUnit())) * Math.cos(2 * Math.PI * this.nextOpenUnit());
  }
}
