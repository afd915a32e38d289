/**
 * Numbers as people read them, one way everywhere user-facing (progress line, command output,
 * report.md): counts with thousands separators ("62,737"), nouns that agree with their count
 * ("1 document", "2 documents"), binary byte units, durations as m:ss. Machine-readable output
 * (JSON) keeps plain numbers.
 */

/** An integer count with thousands separators: 62737 -> "62,737". Fixed locale: output must not depend on the machine. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.round(n).toLocaleString('en-US');
}

/** "1 document", "2 documents", "0 batches": the count, formatted, and the noun agreeing with it. */
export function plural(n: number, singular: string, pluralForm?: string): string {
  const many = pluralForm ?? (/(s|sh|ch|x|z)$/.test(singular) ? `${singular}es` : `${singular}s`);
  return `${formatCount(n)} ${n === 1 ? singular : many}`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes in binary units with one decimal: 1536 -> "1.5 KiB"; below 1 KiB as an exact count. */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${formatCount(n)} B` : `${v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** "done/total" in the total's binary unit: (1.2e6, 2.7e6) -> "1.1/2.6 MiB". */
export function formatBytesOf(done: number, total: number): string {
  let u = 0;
  let scale = 1;
  while (total / scale >= 1024 && u < BYTE_UNITS.length - 1) {
    scale *= 1024;
    u++;
  }
  return u === 0 ? `${formatCount(done)}/${formatCount(total)} B` : `${(done / scale).toFixed(1)}/${(total / scale).toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** A rate or large quantity with an SI suffix: 950 -> "950", 12345 -> "12.3k", 4.2e6 -> "4.2M". */
export function formatSi(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

/** Seconds as m:ss or h:mm:ss; "--:--" when unknown (not finite or negative). */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
