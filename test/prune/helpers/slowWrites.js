'use strict';
// Preload for the signal test: once the rewrite starts writing, every fs.write waits 250 ms, so
// the run is reliably still going when the test's signal arrives. "SLOW-WRITES-STARTED" on
// stderr tells the test the temporary directory exists and the copy is under way.
const fs = require('node:fs');
// The kernel copy (copy_file_range) bypasses fs.write: force the read/write path it slows down.
process.env.SHORTGPT_COPY = 'readwrite';
const write = fs.write;
let announced = false;
fs.write = function slowWrite(...args) {
  if (!announced) {
    announced = true;
    process.stderr.write('SLOW-WRITES-STARTED\n');
  }
  setTimeout(() => write.apply(fs, args), 250);
};
