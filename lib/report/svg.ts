/** Tiny helpers for hand-written SVG: escaping and number formatting that keeps files small. */

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Coordinates to 0.1 px: enough for any screen, stable across platforms. */
export function px(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/** Ticks for [0, max]: steps of 1, 2 or 5 x 10^k, about `target` of them (Heckbert's nice numbers). */
export function niceTicks(max: number, target = 5): { step: number; top: number; ticks: number[] } {
  const m = Number.isFinite(max) && max > 0 ? max : 1;
  const raw = m / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const frac = raw / pow;
  const step = (frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 5 ? 5 : 10) * pow;
  const count = Math.ceil(m / step - 1e-9);
  const ticks = Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
  return { step, top: ticks[ticks.length - 1], ticks };
}

/** Label every k-th category so at most `maxLabels` labels show (k in 1, 2, 5, 10, 20, 50, ...). */
export function labelEvery(n: number, maxLabels: number): number {
  for (let pow = 1; ; pow *= 10) {
    for (const k of [1, 2, 5]) if (n / (k * pow) <= maxLabels) return k * pow;
  }
}

export function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(decimals);
}
