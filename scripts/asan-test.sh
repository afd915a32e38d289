#!/usr/bin/env bash
# The addon built with AddressSanitizer + UndefinedBehaviorSanitizer (CPU only) into build-asan/
# (never build/Release), and the native and parity tests run against it: node is not built with
# ASan, so ASan's runtime is LD_PRELOADed into every node process, and SHORTGPT_NATIVE_PATH makes
# lib/engine/binding.ts load the sanitized addon. Any ASan or UBSan report fails the run.
#
#   scripts/asan-test.sh            build (incremental) and test
#   scripts/asan-test.sh -- ARGS    extra jest arguments, e.g. -- -t gemm
set -euo pipefail
cd "$(dirname "$0")/.."

extra=()
if [[ "${1:-}" == "--" ]]; then shift; extra=("$@"); fi

build=build-asan
start=$(date +%s)
# cmake-js passes --CD<name>=<value> on as -D<name>=<value>; SHORTGPT_CUDA is read from the env.
mkdir -p "$build"
# The addon and the C++ host tests (the CUDA-free logic of the CUDA backend: kernel choice, RAII).
for target in shortgpt_native shortgpt_host_tests; do
  SHORTGPT_CUDA=off npx --no-install cmake-js compile --out "$build" --target "$target" --CDSHORTGPT_SANITIZE=ON >>"$build/build.log" 2>&1 || {
  tail -40 "$build/build.log"
  echo "asan-test: the sanitizer build of $target failed (log: $build/build.log)" >&2
  exit 1
}
done
addon="$PWD/$build/Release/shortgpt_native.node"
built=$(date +%s)
# A run against an uninstrumented addon would pass without checking anything. (Not `grep -q`:
# it exits at the first match, ldd may then die of SIGPIPE, and pipefail reads that as no match.)
if ! ldd "$addon" | grep libasan >/dev/null; then
  echo "asan-test: $addon is not linked with ASan" >&2
  exit 1
fi

cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
asan_rt=$("${cxx:-c++}" -print-file-name=libasan.so)
if [[ ! -e "$asan_rt" ]]; then
  echo "asan-test: no ASan runtime found (${cxx:-c++} -print-file-name=libasan.so gave '$asan_rt')" >&2
  exit 1
fi

# detect_leaks=0: node itself (not instrumented) keeps memory until exit, which LSan would report.
# Reports go to files as well as stderr, so a report inside a jest worker or a spawned CLI is
# not lost in captured output: any file left there fails the run.
reports=$(mktemp -d "${TMPDIR:-/tmp}/shortgpt-asan-XXXXXX")
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$reports/asan:log_exe_name=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export SHORTGPT_NATIVE_PATH="$addon"

status=0
"$build/Release/shortgpt_host_tests" || status=$?
# Every native test (the f32 and bf16/AMX GEMMs, conversions, thread pool, the CUDA binding
# against a fake backend), the engine's parity and precision tests, and the engine fault paths.
# cuda.test.ts is left out: it checks the CUDA build, which this CPU-only build does not have
# (the option comes last: jest reads every word after it as another pattern).
LD_PRELOAD="$asan_rt" npx --no-install jest --runInBand \
  test/native test/engine test/prune/copyRange.test.ts test/hostile/nonfinite-engine.test.ts "${extra[@]}" \
  --testPathIgnorePatterns 'cuda\.test\.ts' || status=$?
tested=$(date +%s)

if compgen -G "$reports/*" >/dev/null; then
  echo "asan-test: sanitizer reports:" >&2
  cat "$reports"/* >&2
  status=1
fi
echo "asan-test: build $((built - start)) s, tests $((tested - built)) s, status $status"
exit "$status"
