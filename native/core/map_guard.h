// Guards read-only file mappings against a file that shrinks while mapped. Reading a mapped page
// that lies past the file's (new) end raises SIGBUS, which would end the process: a checkpoint
// overwritten in place during a run (cp over it, a truncating writer) must be an error instead.
// A process-wide SIGBUS handler, installed on first use, looks the faulting address up in the
// guarded ranges; inside one, it maps a zero page over the faulting page (so the read completes
// and reads zeros) and marks the range, which its owner checks after reading and reports as
// ERR_IO. Any other SIGBUS goes on to the handler that was installed before (or the default
// action), so nothing else changes. The handler only reads a fixed table of atomics and calls
// mmap, both safe inside a signal handler on Linux.
#pragma once
#include <cstddef>

namespace shortgpt {

// Guards [begin, begin + bytes) (page-aligned). Returns a slot for the calls below, or -1 when
// guarding is unavailable (not Linux, the table is full, the handler could not be installed):
// the mapping then works unguarded, as before.
int guardMapping(const void* begin, size_t bytes);
// Stops guarding a slot (before its range is unmapped). -1 is ignored.
void unguardMapping(int slot);
// Whether a read in the slot's range found the file shorter than the mapping (those pages now
// read as zeros).
bool mappingShrank(int slot);

}  // namespace shortgpt
