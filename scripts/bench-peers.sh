#!/usr/bin/env bash
# Side-by-side benchmark: our `bench --json` and the PyTorch peer (scripts/torch_peer.py, the
# ShortGPT authors' way of scoring: eager modules, every hidden state kept) on the same
# shapes, fp32, the same threads and one sequence of the same length, in ONE run, alternating
# (ours, peer, then peer, ours in the next round) so that machine drift hits both sides.
# Prints tok/s of each and the ratio ours / PyTorch (target: >= 1.2x the faster peer), from the
# medians and from the best runs (on a shared machine the best run is the least disturbed one).
#
#   scripts/bench-peers.sh [--shapes "S M"] [--threads 2] [--seq 512] [--rounds 2] [--runs 3] [--nice N]
#                          [--openblas-core NAME]
#
# --openblas-core NAME sets OPENBLAS_CORETYPE for the PyTorch side. OpenBLAS picks its kernels by
# CPU model, and a release older than the CPU falls back to an older core (Debian's 0.3.21 runs
# its AVX2 "Haswell" kernels on AVX-512 Zen 5): e.g. SkylakeX gives it AVX-512 kernels, the
# fairest peer on such a machine. The core in use is printed either way.
#
# --nice N runs both sides under `nice -n N` (N < 0 needs root): on a machine shared with other
# jobs this keeps their load from distorting the comparison (OpenMP's barriers in particular
# suffer badly when the cores are oversubscribed). The load average before and after is printed.
#
# Needs: the addon built (build/Release) and the TypeScript compiled (dist/, `npm run compile:ts`;
# SHORTGPT_CLI overrides the command, e.g. "node /some/dist/run.js"); PyTorch with MKL (the pip
# wheels: pip install torch) or OpenBLAS (Debian: apt-get install -y python3-torch
# libopenblas0-openmp); PYTHON picks the interpreter (default python3, or /usr/bin/python3 where
# only it has torch), TORCH_PEER another peer script. Without libopenblas0-openmp Debian's torch
# falls back to the reference BLAS, 40-57x slower: no fair peer, so the script refuses to run then.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shapes="S M"
threads=2
seq=512
rounds=2
runs=3
nice_level=""
openblas_core=""
peer="${TORCH_PEER:-$here/scripts/torch_peer.py}"
cli="${SHORTGPT_CLI:-node $here/bin/shortgpt-native.js}"
# Debian's torch lives in the system python's dist-packages (a pyenv python3 first in PATH lacks it).
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if ! python3 -c 'import torch' 2>/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then PYTHON=/usr/bin/python3; fi
fi

while [ $# -gt 0 ]; do
  case "$1" in
    --shapes) shapes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seq) seq="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --nice) nice_level="$2"; shift 2 ;;
    --openblas-core) openblas_core="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "bench-peers: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[ -f "$peer" ] || { echo "bench-peers: the PyTorch peer is not at $peer (set TORCH_PEER)" >&2; exit 1; }
if [ -z "${SHORTGPT_CLI:-}" ] && [ ! -f "$here/dist/lib/cli/commands/bench.js" ]; then
  echo "bench-peers: dist/ has no bench command; compile the TypeScript first: npm run compile:ts" >&2
  exit 1
fi
blas="$($PYTHON -c 'import torch; c = torch.__config__.show(); print(c.split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in c else "?")' 2>/dev/null)" \
  || { echo "bench-peers: $PYTHON cannot import torch (pip install torch, or apt-get install -y python3-torch libopenblas0-openmp; PYTHON=... picks another interpreter)" >&2; exit 1; }
[ -n "$openblas_core" ] && export OPENBLAS_CORETYPE="$openblas_core"
# Which BLAS torch actually loads at run time (Debian's alternatives pick the library), and
# which OpenBLAS kernel set ("core") it chose.
blaslib="$($PYTHON - <<'EOF'
import ctypes, torch, re
torch.ones(64, 64) @ torch.ones(64, 64)
libs = sorted(set(l.split()[-1] for l in open('/proc/self/maps') if re.search(r'blas|lapack', l)))
core = "?"
for lib in libs:
    try:
        f = ctypes.CDLL(lib).openblas_get_corename
        f.restype = ctypes.c_char_p
        core = f().decode()
        break
    except (OSError, AttributeError):
        pass
print(f"{libs[0] if libs else '?'}, OpenBLAS core {core}")
EOF
)"
# MKL is linked into the pip wheels (no separate library to see); otherwise it must be OpenBLAS.
case "$blas:$blaslib" in
  mkl:*) blaslib="MKL, built into torch" ;;
  *openblas*) ;;
  *) echo "bench-peers: torch loads '$blaslib', not OpenBLAS or MKL: install libopenblas0-openmp or the pip wheel (the reference BLAS is no fair peer)" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

prefix=()
[ -n "$nice_level" ] && prefix=(nice -n "$nice_level")
ours() { # shape round
  "${prefix[@]}" $cli bench --shape "$1" --threads "$threads" --seq-len "$seq" --sequences 1 --dtype f32 \
    --runs "$runs" --warmup 1 --gemm-iterations 2 --json > "$work/ours-$1-$2.json"
}
torch_peer() { # shape round
  "${prefix[@]}" "$PYTHON" "$peer" --shape "$1" --batch 1 --seq "$seq" --runs "$runs" --threads "$threads" > "$work/torch-$1-$2.jsonl"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-peers: shapes [$shapes], fp32, $threads threads, 1 x $seq tokens, $rounds rounds x $runs runs (+1 warm-up) each side; torch BLAS $blas ($blaslib)" >&2
for ((r = 0; r < rounds; r++)); do
  for s in $shapes; do
    if (( r % 2 == 0 )); then
      echo "round $((r + 1)): $s ours, then torch" >&2; ours "$s" "$r"; torch_peer "$s" "$r"
    else
      echo "round $((r + 1)): $s torch, then ours" >&2; torch_peer "$s" "$r"; ours "$s" "$r"
    fi
  done
done

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "PyTorch peer: $("$PYTHON" -c 'import torch; print(torch.__version__)'), BLAS $blaslib${openblas_core:+ (OPENBLAS_CORETYPE=$openblas_core)}"
python3 - "$work" "$rounds" "$threads" "$seq" "$load_before" "$load_after" "${nice_level:-0}" $shapes <<'EOF'
import json, statistics, sys
work, rounds, threads, seq, load_before, load_after, nice, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8:]
# The issue's llama.cpp pp512 F32 numbers (2-core Zen 3, 2 threads), for reference only: not measured here.
llamacpp = {"S": 282.0, "M": 52.0}
rows = [["shape", "ours tok/s", "torch tok/s", "ours/torch", "best ours", "best torch", "best/best", "ours GFLOP/s", "%FMA peak", "GEMM-alone GFLOP/s", "peak GFLOP/s", "ours runs", "torch runs"]]
for s in shapes:
    ours, torch, res = [], [], []
    for r in range(rounds):
        o = json.load(open(f"{work}/ours-{s}-{r}.json"))["results"][0]
        res.append(o)
        ours.extend(o["tokens"] / t for t in o["secondsPerRun"])
        for line in open(f"{work}/torch-{s}-{r}.jsonl"):
            d = json.loads(line)
            if d.get("event") == "run":
                torch.append(d["tok_s"])
    mo, mt = statistics.median(ours), statistics.median(torch)
    bo, bt = max(ours), max(torch)
    g = statistics.median(x["gflops"] for x in res)
    peak = statistics.median(x["peakGflops"] for x in res)
    gemm = statistics.median(x["gemmGflops"] for x in res)
    rows.append([s, f"{mo:.1f}", f"{mt:.1f}", f"{mo / mt:.2f}x", f"{bo:.1f}", f"{bt:.1f}", f"{bo / bt:.2f}x", f"{g:.1f}", f"{100 * g / peak:.0f}%", f"{gemm:.1f}", f"{peak:.1f}",
                 " ".join(f"{x:.0f}" for x in ours), " ".join(f"{x:.0f}" for x in torch)])
w = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
print(f"fp32, {threads} threads, 1 x {seq} tokens, nice {nice}; medians and bests (max tok/s: the least disturbed run) over all timed runs of all {rounds} rounds; load average before {load_before}, after {load_after}")
for r in rows:
    print("  ".join(cell.ljust(w[c]) if c in (0, 11, 12) else cell.rjust(w[c]) for c, cell in enumerate(r)))
print("reference (issue 3, not measured here): llama.cpp pp512 F32 " + ", ".join(f"{k} {v} tok/s" for k, v in llamacpp.items()))
EOF
