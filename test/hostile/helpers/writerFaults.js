'use strict';
// Preload for writer fault tests (node -r this cli.js ...). Controlled by environment variables:
//   SGT_FS_LOG=FILE        append one JSON line per open/write/fsync/rename/rm/copy (paths resolved
//                          from fds), so a test can check the order of fsyncs and renames;
//   SGT_FAIL_WRITE_AT=N    the N-th output write (fs.write or the addon's copyFileRange) fails
//                          with ENOSPC, as a full disk would;
//   SGT_KILL=WHEN:OP:N     SIGKILL this process before or after the N-th OP (open, write, fsync,
//                          rename), WHEN being `before` or `after`;
//   SGT_CORRUPT_HEADER=1   the header written at offset 0 of a .safetensors file says I32 where
//                          it said F32 (same size, still a valid file), to trip the read-back;
//   SGT_FREE_BYTES=N       statfs reports N bytes available;
//   SGT_FAIL_RENAME=N[,M]  the N-th (and M-th ...) rename, callback or promise API, fails with EIO.
// Only callback and promise APIs the product's writer uses are wrapped; they are patched before
// the product's modules load, so its imports see the wrappers.
const fs = require('node:fs');
const Module = require('node:module');

const logFile = process.env.SGT_FS_LOG;
const failAt = Number(process.env.SGT_FAIL_WRITE_AT || 0);
const [killWhen, killOp, killN] = (process.env.SGT_KILL || '::').split(':');
const corrupt = process.env.SGT_CORRUPT_HEADER === '1';
const freeBytes = process.env.SGT_FREE_BYTES;
const failRenames = (process.env.SGT_FAIL_RENAME || '').split(',').filter(Boolean).map(Number);
let renames = 0;

/** The error of the next rename when it is one to fail, else null. */
function renameFault(from, to) {
  if (!failRenames.includes(++renames)) return null;
  log({ op: 'rename-failed', n: renames, from: String(from), to: String(to) });
  return Object.assign(new Error(`EIO: i/o error, rename '${from}' -> '${to}'`), { code: 'EIO', errno: -5, syscall: 'rename' });
}

const fdPath = new Map();
const counts = { open: 0, write: 0, fsync: 0, rename: 0 };
let writes = 0;

function log(entry) {
  if (logFile) fs.appendFileSync(logFile, `${JSON.stringify(entry)}\n`);
}

function kill() {
  process.kill(process.pid, 'SIGKILL');
}

/** Counts `op`; kills first when asked to die before this one. Returns a function to call after it. */
function step(op, entry) {
  const n = ++counts[op];
  log({ op, n, ...entry });
  if (killOp === op && Number(killN) === n) {
    if (killWhen === 'before') kill();
    return kill;
  }
  return () => undefined;
}

function noSpace(file) {
  return Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write', injectedFor: file });
}

const open = fs.open;
fs.open = function (file, flags, mode, cb) {
  if (typeof flags === 'function') [flags, mode, cb] = ['r', undefined, flags];
  else if (typeof mode === 'function') [mode, cb] = [undefined, mode];
  const after = step('open', { path: String(file), flags });
  open.call(fs, file, flags, mode, (err, fd) => {
    if (!err) fdPath.set(fd, String(file));
    after();
    cb(err, fd);
  });
};

const close = fs.close;
fs.close = function (fd, cb) {
  fdPath.delete(fd);
  return close.call(fs, fd, cb);
};

const write = fs.write;
fs.write = function (fd, buf, ...rest) {
  const cb = rest[rest.length - 1];
  const file = fdPath.get(fd);
  const position = typeof rest[2] === 'number' ? rest[2] : null;
  if (corrupt && file && file.endsWith('.safetensors') && position === 0 && Buffer.isBuffer(buf)) {
    const text = buf.toString('latin1');
    const i = text.indexOf('"F32"');
    if (i >= 0) {
      buf = Buffer.from(buf);
      buf.write('"I32"', i, 'latin1');
    }
  }
  const after = step('write', { path: file, position });
  if (failAt > 0 && ++writes === failAt) {
    process.nextTick(() => cb(noSpace(file)));
    return;
  }
  write.call(fs, fd, buf, ...rest.slice(0, -1), (...args) => {
    after();
    cb(...args);
  });
};

const fsync = fs.fsync;
fs.fsync = function (fd, cb) {
  const after = step('fsync', { path: fdPath.get(fd) });
  fsync.call(fs, fd, (err) => {
    after();
    cb(err);
  });
};

const rename = fs.rename;
fs.rename = function (from, to, cb) {
  const after = step('rename', { from: String(from), to: String(to) });
  const fault = renameFault(from, to);
  if (fault) {
    process.nextTick(() => cb(fault));
    return;
  }
  rename.call(fs, from, to, (err) => {
    if (!err) after();
    cb(err);
  });
};

const renameP = fs.promises.rename;
fs.promises.rename = function (from, to) {
  const fault = renameFault(from, to);
  return fault ? Promise.reject(fault) : renameP.call(fs.promises, from, to);
};

const rm = fs.promises.rm;
fs.promises.rm = function (p, opts) {
  log({ op: 'rm', path: String(p) });
  return rm.call(fs.promises, p, opts);
};

if (freeBytes !== undefined) {
  fs.promises.statfs = async () => ({ type: 0, bsize: 1, blocks: Number(freeBytes), bfree: Number(freeBytes), bavail: Number(freeBytes), files: 0, ffree: 0 });
}

// The addon's copyFileRange writes tensor bytes without fs.write: count and fail it too.
const loadNode = Module._extensions['.node'];
Module._extensions['.node'] = function (module, filename) {
  loadNode(module, filename);
  const exp = module.exports;
  if (exp && typeof exp.copyFileRange === 'function') {
    const copy = exp.copyFileRange;
    exp.copyFileRange = function (srcFd, srcOffset, dstFd, dstOffset, length) {
      const file = fdPath.get(dstFd);
      const after = step('write', { path: file, position: dstOffset, kernel: true });
      if (failAt > 0 && ++writes === failAt) return Promise.reject(noSpace(file));
      return copy.call(this, srcFd, srcOffset, dstFd, dstOffset, length).then((v) => {
        after();
        return v;
      });
    };
  }
};
