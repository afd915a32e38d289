/**
 * Input mutations for the fuzzer: libFuzzer's byte-level ones (bit flips, interesting bytes,
 * erase, insert, copy, crossover, dictionary tokens) plus structure-aware ones for our formats:
 * a JSON value replaced by an edge case (1e400, 2^53+1, -0, '__proto__', deep nesting...), and
 * for safetensors the 8-byte length prefix and the data length made consistent again, so that
 * mutations of the header get past the first checks to the deeper rules.
 */
import type { TargetName } from './targets';

export const MAX_INPUT = 16 * 1024;

/** mulberry32: small, seedable, good enough to pick mutations reproducibly. */
export class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
}

const SYNTAX = ['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', '0', '-', '.', 'e', 'E', '+', '\\u0000', '\\ud800', '\\"'];
const NUMBERS = ['0', '-0', '1', '-1', '2', '3', '8', '1.5', '1e400', '-1e400', '1e-400', '1e15', '1e7', '1e308', '4294967296',
  '2147483648', '9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551615', '18446744073709551616',
  '100000000', '100000001', '5120', '40', '0.5', '1E2', '00'];
const WORDS = ['true', 'false', 'null', '[]', '{}', '""', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'length', 'prototype',
  '__metadata__', 'dtype', 'shape', 'data_offsets', 'format', 'pt',
  'F32', 'F16', 'BF16', 'F64', 'I64', 'U64', 'I32', 'U8', 'I8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F33',
  'weight_map', 'metadata', 'total_size', 'model.safetensors', 'model-00001-of-00002.safetensors', '.', '..', '../x', '/etc/passwd', 'a\\\\b',
  'architectures', 'model_type', 'num_hidden_layers', 'hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'vocab_size', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'rope_parameters', 'rope_type', 'type', 'factor',
  'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings', 'llama3', 'linear', 'default', 'dynamic', 'yarn',
  'max_position_embeddings', 'use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types', 'full_attention',
  'sliding_attention', 'tie_word_embeddings', 'attention_bias', 'mlp_bias', 'hidden_act', 'silu', 'gelu', 'bos_token_id', 'eos_token_id',
  'model_max_length', 'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'BaichuanForCausalLM',
  'BaiChuanForCausalLM', 'llama', 'mistral', 'qwen2', 'qwen3', 'baichuan'];
export const DICTIONARY = [...SYNTAX, ...NUMBERS, ...WORDS, ...WORDS.map((w) => JSON.stringify(w))];

/** A JSON value that JSON.stringify cannot write (1e400, 2^53+1, -0 ...): spliced in as text. */
class RawJson { constructor(readonly text: string) {} }

function edgeValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(9)) {
    case 0: return new RawJson(rng.pick(NUMBERS));
    case 1: return rng.pick(WORDS);
    case 2: return rng.pick([true, false, null, '', 0, -1, 1, 2]);
    case 3: return depth < 2 ? Array.from({ length: rng.int(4) }, () => edgeValue(rng, depth + 1)) : [];
    case 4: return depth < 2 ? { [rng.pick(WORDS)]: edgeValue(rng, depth + 1) } : {};
    case 5: { // deep nesting, around the 128-level limit
      const n = rng.pick([127, 128, 129, 200, 5000]);
      return new RawJson('['.repeat(n) + ']'.repeat(n));
    }
    case 6: return rng.int(1 << 16);
    case 7: return [new RawJson(rng.pick(NUMBERS)), new RawJson(rng.pick(NUMBERS))];
    default: return Array.from({ length: rng.pick([2, 3, 64, 1000]) }, () => rng.pick(WORDS));
  }
}

function stringify(v: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof RawJson) { raws.push(x.text); return `\u0001RAW${raws.length - 1}\u0001`; }
    return x;
  });
  return text.replace(/"\\u0001RAW(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]!);
}

/** Every object and array in a parsed JSON value, to pick one to change. */
function containers(v: unknown, out: (Record<string, unknown> | unknown[])[] = [], depth = 0): (Record<string, unknown> | unknown[])[] {
  // Depth-capped: the inputs nest thousands deep on purpose, the mutator must not overflow.
  if (typeof v === 'object' && v !== null && out.length < 10000 && depth < 64) {
    out.push(v as Record<string, unknown> | unknown[]);
    for (const x of Object.values(v)) containers(x, out, depth + 1);
  }
  return out;
}

/** Replace, add, delete or repeat one member of some object/array of a JSON document; null if `text` is not JSON. */
function mutateJson(text: string, rng: Rng): string | null {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { return null; }
  const cs = containers(doc);
  if (cs.length === 0) return stringify(edgeValue(rng, 2));
  const c = rng.pick(cs);
  if (Array.isArray(c)) {
    const op = rng.int(4);
    if (op === 0 || c.length === 0) c.push(edgeValue(rng));
    else if (op === 1) c.splice(rng.int(c.length), 1);
    else if (op === 2) c[rng.int(c.length)] = edgeValue(rng);
    else c.push(...c.slice(0, 1 + rng.int(c.length)));
  } else {
    const keys = Object.keys(c);
    const op = rng.int(4);
    if (op === 0 || keys.length === 0) Object.defineProperty(c, rng.pick(WORDS), { value: edgeValue(rng), enumerable: true, writable: true, configurable: true });
    else if (op === 1) delete c[rng.pick(keys)];
    else if (op === 2) c[rng.pick(keys)] = edgeValue(rng);
    else { // rename a key (to a dictionary word, e.g. __proto__)
      const k = rng.pick(keys);
      const v = c[k];
      delete c[k];
      Object.defineProperty(c, rng.pick(WORDS), { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  try {
    return stringify(doc);
  } catch {
    return null; // nested too deep for JSON.stringify's recursion: use a byte mutation instead
  }
}

/** Splits a safetensors input at its length prefix, when the prefix is plausible. */
function splitSafetensors(b: Buffer): { header: Buffer; data: Buffer } | null {
  if (b.length < 8) return null;
  const n = b.readBigUInt64LE(0);
  if (n > BigInt(b.length - 8)) return null;
  return { header: b.subarray(8, 8 + Number(n)), data: b.subarray(8 + Number(n)) };
}

/** The safetensors file for `header` with the data section sized to the largest data_offsets end (when that is small). */
function joinSafetensors(header: string | Buffer, data: Buffer, fixData: boolean): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  let d = data;
  if (fixData) {
    let end = 0;
    try {
      for (const v of Object.values(JSON.parse(h.toString('utf8')) as Record<string, { data_offsets?: unknown }>)) {
        const o = v?.data_offsets;
        if (Array.isArray(o) && typeof o[1] === 'number') end = Math.max(end, o[1]);
      }
    } catch { /* not JSON: keep the data as it is */ }
    if (end <= MAX_INPUT) d = Buffer.concat([data, Buffer.alloc(Math.max(0, end - data.length))]).subarray(0, end);
  }
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([prefix, h, d]);
}

function insert(b: Buffer, at: number, x: Buffer): Buffer { return Buffer.concat([b.subarray(0, at), x, b.subarray(at)]); }

function byteMutation(b: Buffer, rng: Rng, other: Buffer): Buffer {
  const at = rng.int(b.length + 1);
  switch (rng.int(9)) {
    case 0: if (b.length) { const c = Buffer.from(b); c[rng.int(c.length)]! ^= 1 << rng.int(8); return c; } return b;
    case 1: if (b.length) { const c = Buffer.from(b); c[rng.int(c.length)] = rng.pick([0, 1, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, rng.int(256)]); return c; } return b;
    case 2: { const n = 1 + rng.int(Math.min(16, b.length || 1)); return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]); }
    case 3: return insert(b, at, Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))));
    case 4: { const from = rng.int(b.length || 1); return insert(b, at, b.subarray(from, from + 1 + rng.int(32))); }
    case 5: return insert(b, at, Buffer.from(rng.pick(DICTIONARY), 'utf8'));
    case 6: { // replace a word or number with a dictionary token
      const s = b.toString('latin1');
      const re = /[A-Za-z0-9_.+-]+/g;
      const ms = [...s.matchAll(re)];
      if (ms.length === 0) return b;
      const m = rng.pick(ms);
      return Buffer.concat([b.subarray(0, m.index), Buffer.from(rng.pick(DICTIONARY), 'utf8'), b.subarray(m.index! + m[0].length)]);
    }
    case 7: { // crossover
      const cut = rng.int(other.length + 1);
      return Buffer.concat([b.subarray(0, at), other.subarray(cut, cut + 1 + rng.int(256))]);
    }
    default: { // little-endian u64 overwrite (the safetensors length prefix lives here)
      if (b.length < 8) return b;
      const c = Buffer.from(b);
      const pos = rng.next() < 0.7 ? 0 : rng.int(c.length - 7);
      c.writeBigUInt64LE(BigInt.asUintN(64, BigInt(rng.pick([0, 1, 2, 7, 8, c.length - 8, c.length - 7, c.length, 100_000_000, 100_000_001, -1, 2 ** 53]))), pos);
      return c;
    }
  }
}

/** One new input from `parent` (and `other`, a second corpus input for crossover). */
export function mutate(target: TargetName, parent: Buffer, other: Buffer, rng: Rng): Buffer {
  let b = parent;
  const steps = 1 + rng.int(4);
  for (let s = 0; s < steps; s++) {
    const r = rng.next();
    if (target === 'safetensors') {
      const parts = splitSafetensors(b);
      if (parts && r < 0.35) {
        const j = mutateJson(parts.header.toString('utf8'), rng);
        b = joinSafetensors(j ?? parts.header, parts.data, rng.next() < 0.8);
        continue;
      }
      if (parts && r < 0.45) { b = joinSafetensors(parts.header, parts.data, true); continue; }
      if (r < 0.5) { // re-derive the prefix from where the JSON ends (after byte mutations of the header)
        const close = b.lastIndexOf(0x7d); // '}'
        if (close > 8) { b = joinSafetensors(b.subarray(8, close + 1), b.subarray(close + 1), rng.next() < 0.5); continue; }
      }
    } else if (r < 0.4) {
      const j = mutateJson(b.toString('utf8'), rng);
      if (j !== null) { b = Buffer.from(j, 'utf8'); continue; }
    }
    b = byteMutation(b, rng, other);
  }
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}
