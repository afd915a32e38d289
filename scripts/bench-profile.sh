#!/usr/bin/env bash
# Where the benchmark's time goes: samples `bench` with perf and sums the samples by what the
# engine is doing (GEMM micro-kernel, attention, weight packing, norms/RoPE/SwiGLU, statistics,
# memory traffic and page zeroing, thread-pool waiting). A developer tool: perf must be
# installed and allowed (perf_event_paranoid), and the addon must keep its symbols.
#
#   scripts/bench-profile.sh [bench options...]      e.g. --shape M --threads 2 --runs 2
#
# The synthetic-weight writer, the FMA peak loop and the GEMM-alone measurement run on the main
# thread (synchronously); the engine's work runs on worker threads. Samples are therefore split
# by thread: shares of the engine are computed over the non-main threads only. The CPU backend's
# weight prefetch thread (named sg-prefetch) reads and packs the next layer beside the compute:
# its samples are counted in the engine's shares and also reported apart (off the critical path).
# SHORTGPT_PREFETCH=1 / =0 in the environment forces it on / off (by default it runs only where
# --threads leaves a hardware thread free).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${SHORTGPT_CLI:-node $here/bin/shortgpt-native.js}"
command -v perf >/dev/null || { echo "bench-profile: perf is not installed" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

perf record -F 999 -o "$work/perf.data" -- $cli bench --gemm-iterations 0 "$@" > "$work/bench.txt" 2> "$work/perf.log"
cat "$work/bench.txt"
# perf's "pid" sort key is the thread id; the main thread's id is the process id (the smallest).
perf report -i "$work/perf.data" --no-children --sort pid,sym --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' > "$work/report.txt"

python3 - "$work/report.txt" <<'EOF'
import re, sys
# (category, engine?, pattern on the symbol)
rules = [
    ("FMA peak loop (not engine)", False, r"fmaPeak"),
    ("GEMM micro-kernels", True, r"gemm\w*Kernel|shortgpt::gemm\("),
    ("attention", True, r"attention|softmax"),
    ("weight read + pack (convert, transpose)", True, r"PackedWeight::pack|transposeToPanel|convert|readTensor|packStacked|TensorReader"),
    ("norms, RoPE, SwiGLU, bias, expf", True, r"rmsNorm|RmsNorm|Rope|rope|swiglu|addBias|expf|__exp"),
    ("statistics (fused residual)", True, r"Stats|stats"),
    ("memcpy/memset (libc)", True, r"__mem(move|cpy|set)"),
    ("kernel: page zeroing/faults, copies", True, r"clear_page|page_fault|folio|_copy_to_iter|copy_user|pmd|pte|unmap|irq|__handle_mm|do_anonymous|kallsyms"),
    ("thread pool wait (yield, futex)", True, r"sched_yield|futex|ThreadPool|pthread"),
    ("JavaScript / V8", True, r"ieee754|v8::|Builtins_|JIT|node::"),
]
totals = {r[0]: 0.0 for r in rules}
other = 0.0
prefetch = 0.0
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([0-9.]+)%\s+(\d+):(\S*)\s+\[(.)\]\s+(.*)", line)
    if m:
        rows.append((float(m.group(1)), int(m.group(2)), m.group(4), m.group(5)))
        if m.group(3) == "sg-prefetch":
            prefetch += float(m.group(1))
main_tid = min(r[1] for r in rows)
main_pct = sum(r[0] for r in rows if r[1] == main_tid)
for pct, tid, kind, sym in rows:
    if tid == main_tid:
        continue
    if "fmaPeak" in sym:
        totals["FMA peak loop (not engine)"] += pct
        continue
    if kind == "k":
        sym = "kallsyms " + sym
    for name, _, pat in rules:
        if re.search(pat, sym):
            totals[name] += pct
            break
    else:
        other += pct
engine = sum(v for k, v in totals.items() if k != "FMA peak loop (not engine)") + other
print(f"\nperf samples on worker threads (the engine; % of the engine's samples); the main thread (writer, GEMM-alone) had {main_pct:.1f}% and the FMA peak loop {totals['FMA peak loop (not engine)']:.1f}% of all samples:")
for name, eng, _ in rules:
    if eng:
        print(f"  {name:42s} {100 * totals[name] / engine:5.1f}%")
print(f"  {'other / unattributed':42s} {100 * other / engine:5.1f}%")
print(f"  of all the above, on the prefetch thread (sg-prefetch: the next layer's read + pack, overlapped): {100 * prefetch / engine:.1f}%")
EOF
echo "top symbols on worker threads (% of all samples):"
python3 - "$work/report.txt" <<'EOF2'
import collections, re, sys
rows = [re.match(r"\s*([0-9.]+)%\s+(\d+):\S*\s+\[(.)\]\s+(.*)", l) for l in open(sys.argv[1])]
rows = [(float(m.group(1)), int(m.group(2)), m.group(3), m.group(4).strip()) for m in rows if m]
main_tid = min(r[1] for r in rows)
by = collections.Counter()
for pct, tid, kind, sym in rows:
    if tid != main_tid:
        by[f"[{kind}] {sym[:90]}"] += pct
for sym, pct in by.most_common(15):
    print(f"  {pct:5.1f}%  {sym}")
EOF2
