'use strict';
// Runs a batch of addon calls in this process and prints their results as JSON. The kernel tests
// start it with SHORTGPT_NO_AVX512 / SHORTGPT_NO_AVX2 in its real environment: jest gives each
// test file a copy of process.env, so a variable set inside a test never reaches the addon's getenv.
// stdin: {"calls": [{"fn": "gemmForTest", "args": [...]}, ...]}, typed arrays encoded as
// {"$typed": "Float32Array", "b64": ..., "byteOffset": n} (the offset keeps misaligned views misaligned).
// stdout: {"kernel": cpuInfo().kernel, "results": [encoded typed array, ...]}.
require('../../prune/helpers/tsRequire.js');
const { loadBinding } = require('../../../lib/engine/binding.ts');

const kinds = { Float32Array, Uint8Array, Uint16Array };

function decode(v) {
  if (v === null || typeof v !== 'object' || !('$typed' in v)) return v;
  const bytes = Buffer.from(v.b64, 'base64');
  const buffer = new ArrayBuffer(v.byteOffset + bytes.length);
  new Uint8Array(buffer, v.byteOffset).set(bytes);
  const Kind = kinds[v.$typed];
  return new Kind(buffer, v.byteOffset, bytes.length / Kind.BYTES_PER_ELEMENT);
}

function encode(a) {
  return { $typed: a.constructor.name, b64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64'), byteOffset: 0 };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const binding = loadBinding();
  const { calls } = JSON.parse(input);
  const results = calls.map(({ fn, args }) => encode(binding[fn](...args.map(decode))));
  process.stdout.write(JSON.stringify({ kernel: binding.cpuInfo().kernel, results }));
});
