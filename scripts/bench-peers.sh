#!/usr/bin/env bash
# Side-by-side benchmark (issue 11): in ONE interleaved run, on the same shapes, threads and one
# sequence of the same length,
#   ours f32      `bench --dtype f32` (exact mode)
#   ours bf16     `bench --dtype bf16 --precision bf16` (fast mode on a BF16 checkpoint)
#   torch2 fp32   PyTorch 2.x (MKL), scripts/torch_peer.py --dtype fp32 --attn sdpa
#   torch2 bf16   PyTorch 2.x (oneDNN, AMX where present), --dtype bf16 --attn sdpa
#   torch1 fp32   PyTorch 1.13 + OpenBLAS, --attn manual (1.13 has SDPA only as a private op),
#                 where an interpreter with it is found (else skipped with a note)
# The peer script is the ShortGPT authors' way of scoring (eager modules, every hidden state
# kept). Each round runs every side once per shape, in an order rotated and reversed from round to
# round, so machine drift hits all sides alike. Also measured in the same run: the FMA peak (our
# f32 loop) and the peak of a large BF16 GEMM of our own (4096^3 tokens x out x in), the
# denominators of "% peak"; and PyTorch 2's bf16 matmul at the same size, for reference.
#
#   scripts/bench-peers.sh [--shapes "S M 7B"] [--sides "ours-f32 ours-bf16 torch2-fp32 torch2-bf16 torch1-fp32"]
#                          [--threads 2] [--seq 512] [--rounds 2] [--runs 3] [--nice N] [--openblas-core NAME]
#
# Shapes: S (SmolLM-135M), M (Llama-3.2-1B), 7B (Llama-2-7B: hidden 4096, 32 layers, MHA,
# intermediate 11008; only 2 layers run, by both sides, and tok/s is scaled to all 32: the
# peer's two identical layers x 16; ours, the first layer once (it also pays the session's
# one-time buffer set-up) plus the second x 31, as `bench --layers-to-run` scales).
# A quick look: --shapes S --rounds 1 --runs 1 (about a minute). The full run, default options
# (S M 7B, 2 rounds x 3 runs, every side found): about 7-10 minutes on 2 cores (measured here at
# load average 3-5: S and M, 1 round x 2 runs, 114 s; 7B, 1 round x 1 run, 97 s).
#
# Interpreters: TORCH2_PYTHON (default: the venv scripts/conformance-venv.sh creates,
# ~/.cache/shortgpt-native/venv-torch213-tf518/bin/python), TORCH1_PYTHON (default: the first of
# python3, /usr/bin/python3 whose torch is 1.x). --openblas-core NAME sets OPENBLAS_CORETYPE for
# PyTorch 1.13 (Debian's OpenBLAS may run older kernels than the CPU has). --nice N runs every
# side under `nice -n N`. Needs the addon built and dist/ compiled (npm run compile:ts;
# SHORTGPT_CLI overrides the command); TORCH_PEER another peer script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shapes="S M 7B"
sides="ours-f32 ours-bf16 torch2-fp32 torch2-bf16 torch1-fp32"
threads=2
seq=512
rounds=2
runs=3
nice_level=""
openblas_core=""
peer="${TORCH_PEER:-$here/scripts/torch_peer.py}"
cli="${SHORTGPT_CLI:-node $here/bin/shortgpt-native.js}"

while [ $# -gt 0 ]; do
  case "$1" in
    --shapes) shapes="$2"; shift 2 ;;
    --sides) sides="$2"; shift 2 ;;
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
for s in $shapes; do
  case "$s" in S|M|7B) ;; *) echo "bench-peers: unknown shape '$s' (S, M or 7B)" >&2; exit 2 ;; esac
done
for s in $sides; do
  case "$s" in ours-f32|ours-bf16|torch2-fp32|torch2-bf16|torch1-fp32) ;; *) echo "bench-peers: unknown side '$s'" >&2; exit 2 ;; esac
done

[ -f "$peer" ] || { echo "bench-peers: the PyTorch peer is not at $peer (set TORCH_PEER)" >&2; exit 1; }
if [ -z "${SHORTGPT_CLI:-}" ] && [ ! -f "$here/dist/lib/cli/commands/bench.js" ]; then
  echo "bench-peers: dist/ has no bench command; compile the TypeScript first: npm run compile:ts" >&2
  exit 1
fi

notes=()
torch_major() { "$1" -c 'import torch; print(torch.__version__.split(".")[0])' 2>/dev/null || true; }
# PyTorch 2.x: the project's venv, else any python3 with torch 2.
torch2="${TORCH2_PYTHON:-$HOME/.cache/shortgpt-native/venv-torch213-tf518/bin/python}"
if [ "$(torch_major "$torch2")" != 2 ]; then
  if [ "$(torch_major python3)" = 2 ]; then torch2=python3; else torch2=""; fi
fi
# PyTorch 1.x (Debian's python3-torch 1.13 links OpenBLAS).
torch1="${TORCH1_PYTHON:-}"
if [ -z "$torch1" ]; then
  for p in python3 /usr/bin/python3; do
    if [ "$(torch_major "$p")" = 1 ]; then torch1="$p"; break; fi
  done
fi
keep=()
for s in $sides; do
  case "$s" in
    torch2-*) if [ -z "$torch2" ]; then notes+=("$s skipped: no PyTorch 2.x (scripts/conformance-venv.sh creates the venv, or set TORCH2_PYTHON)"); continue; fi ;;
    torch1-*) if [ -z "$torch1" ]; then notes+=("$s skipped: no PyTorch 1.x found (Debian: apt-get install -y python3-torch libopenblas0-openmp; or set TORCH1_PYTHON)"); continue; fi ;;
    ours-bf16)
      if ! node -e "const b = require('$here/dist/lib/engine/binding.js').loadBinding(); process.exit(b.cpuInfo().bf16Kernels.length ? 0 : 1)" 2>/dev/null; then
        notes+=("ours-bf16 skipped: this CPU has no BF16 kernel (AMX or AVX512-BF16)"); continue
      fi ;;
  esac
  keep+=("$s")
done
sides="${keep[*]}"
[ -n "$sides" ] || { echo "bench-peers: nothing to run" >&2; exit 1; }

torch1_blas=""
if [ -n "$torch1" ] && [[ " $sides " == *" torch1-fp32 "* ]]; then
  [ -n "$openblas_core" ] && export OPENBLAS_CORETYPE="$openblas_core"
  # Which BLAS torch 1.x loads at run time and which OpenBLAS kernel set it chose; Debian's
  # torch without libopenblas0-openmp falls back to the reference BLAS, 40-57x slower: no peer.
  torch1_blas="$("$torch1" - <<'EOF'
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
print(f"{libs[0] if libs else 'MKL?'}, OpenBLAS core {core}")
EOF
)"
  case "$torch1_blas" in
    *openblas*) ;;
    *) notes+=("torch1-fp32 skipped: torch 1.x loads '$torch1_blas', not OpenBLAS (the reference BLAS is no fair peer)"); sides="${sides/torch1-fp32/}" ;;
  esac
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix=()
[ -n "$nice_level" ] && prefix=(nice -n "$nice_level")

# Per shape: our bench's shape options, and the peer's.
ours_shape() {
  case "$1" in
    7B) echo "--shape custom --hidden 4096 --layers 32 --heads 32 --kv-heads 32 --intermediate 11008 --vocab 32000 --layers-to-run 2" ;;
    *) echo "--shape $1" ;;
  esac
}
peer_shape() { if [ "$1" = 7B ]; then echo "--shape 7B --layers 2"; else echo "--shape $1"; fi; }

run_side() { # side shape round
  local side="$1" s="$2" r="$3" out="$work/$1-$2-$3"
  case "$side" in
    ours-f32) "${prefix[@]}" $cli bench $(ours_shape "$s") --threads "$threads" --seq-len "$seq" --sequences 1 --dtype f32 \
                --runs "$runs" --warmup 1 --gemm-iterations 0 --json > "$out.json" ;;
    ours-bf16) "${prefix[@]}" $cli bench $(ours_shape "$s") --threads "$threads" --seq-len "$seq" --sequences 1 --dtype bf16 \
                --precision bf16 --runs "$runs" --warmup 1 --gemm-iterations 0 --json > "$out.json" ;;
    torch2-fp32) "${prefix[@]}" "$torch2" "$peer" $(peer_shape "$s") --dtype fp32 --attn sdpa --batch 1 --seq "$seq" --runs "$runs" --threads "$threads" > "$out.jsonl" ;;
    torch2-bf16) "${prefix[@]}" "$torch2" "$peer" $(peer_shape "$s") --dtype bf16 --attn sdpa --batch 1 --seq "$seq" --runs "$runs" --threads "$threads" > "$out.jsonl" ;;
    torch1-fp32) "${prefix[@]}" "$torch1" "$peer" $(peer_shape "$s") --dtype fp32 --attn manual --batch 1 --seq "$seq" --runs "$runs" --threads "$threads" > "$out.jsonl" ;;
  esac
}

# The peaks, measured in this run (once per round; the best is used): our FMA loop, a large BF16
# GEMM of ours, and PyTorch 2's bf16 matmul at the same size.
peaks() { # round
  "${prefix[@]}" node -e "
    const b = require('$here/dist/lib/engine/binding.js').loadBinding();
    const out = { fma: b.measureFmaPeak($threads) };
    // The best of 5 (a peak: the least disturbed iteration), not the mean.
    if (b.cpuInfo().bf16Kernels.length) out.bf16Gemm = 2 * 4096 ** 3 / b.benchGemm(4096, 4096, 4096, $threads, 5, 'bf16').bestSeconds / 1e9;
    console.log(JSON.stringify(out));" > "$work/peak-ours-$1.json"
  if [ -n "$torch2" ]; then
    "${prefix[@]}" "$torch2" - "$threads" > "$work/peak-torch-$1.json" <<'EOF'
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 4096
a = torch.randn(n, n, dtype=torch.bfloat16)
b = torch.randn(n, n, dtype=torch.bfloat16)
best = 0.0
for _ in range(4):
    t0 = time.perf_counter(); torch.matmul(a, b); dt = time.perf_counter() - t0
    best = max(best, 2 * n ** 3 / dt / 1e9)
print(json.dumps({"bf16Matmul": best}))
EOF
  fi
}

read -r -a side_list <<< "$sides"
nsides=${#side_list[@]}
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
t_start=$(date +%s)
echo "bench-peers: shapes [$shapes], sides [$sides], $threads threads, 1 x $seq tokens, $rounds rounds x $runs runs (+1 warm-up) each" >&2
for ((r = 0; r < rounds; r++)); do
  echo "round $((r + 1)): peaks" >&2
  peaks "$r"
  for s in $shapes; do
    order=()
    for ((i = 0; i < nsides; i++)); do order+=("${side_list[$(((i + r) % nsides))]}"); done
    if (( r % 2 == 1 )); then
      rev=(); for ((i = nsides - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done; order=("${rev[@]}")
    fi
    for side in "${order[@]}"; do
      echo "round $((r + 1)): $s $side" >&2
      run_side "$side" "$s" "$r"
    done
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
cpu_flags="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512_bf16|avx512_fp16|amx_bf16|amx_tile|amx_int8)$' | tr '\n' ' ')"
echo "CPU: $cpu_model; flags: $cpu_flags"
[ -n "$torch2" ] && echo "PyTorch 2: $("$torch2" -c 'import torch; print(torch.__version__)') ($torch2), BLAS MKL, bf16 through oneDNN"
[ -n "$torch1" ] && [ -n "$torch1_blas" ] && echo "PyTorch 1: $("$torch1" -c 'import torch; print(torch.__version__)') ($torch1), BLAS $torch1_blas${openblas_core:+ (OPENBLAS_CORETYPE=$openblas_core)}"
for n in "${notes[@]+"${notes[@]}"}"; do echo "note: $n"; done
python3 - "$work" "$rounds" "$threads" "$seq" "$load_before" "$load_after" "${nice_level:-0}" "$(( $(date +%s) - t_start ))" "$sides" $shapes <<'EOF'
import json, os, statistics, sys
work, rounds, threads, seq, load_before, load_after, nice, seconds, sides, shapes = (
    sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8], sys.argv[9].split(), sys.argv[10:])
FULL_LAYERS = {"7B": 32}  # the peer runs 2 of 7B's 32 layers: its tok/s is scaled to all (ours scales itself)

def peak(kind):
    vals = []
    for r in range(rounds):
        for who in ("ours", "torch"):
            f = f"{work}/peak-{who}-{r}.json"
            if os.path.exists(f):
                v = json.load(open(f)).get(kind)
                if v:
                    vals.append(v)
    return max(vals) if vals else None

fma, bf16 = peak("fma"), peak("bf16Gemm")
torch_bf16 = peak("bf16Matmul")

def side_runs(side, shape):
    """tok/s of every timed run, and GFLOP/s of every run, over all rounds."""
    tok, gf = [], []
    for r in range(rounds):
        if side.startswith("ours"):
            o = json.load(open(f"{work}/{side}-{shape}-{r}.json"))["results"][0]
            for t in o["secondsPerRun"]:
                tok.append(o["tokens"] / t)
                gf.append(o["flops"] / t / 1e9)
        else:
            for line in open(f"{work}/{side}-{shape}-{r}.jsonl"):
                d = json.loads(line)
                if d.get("event") == "run":
                    tok.append(d["tok_s"])
                    gf.append(d["gflops"])
    return tok, gf

print(f"\n{threads} threads, 1 x {seq} tokens, nice {nice}, {rounds} rounds, {seconds} s in all; medians over all timed runs (best = max, the least disturbed run); "
      f"load average before {load_before}, after {load_after}")
print(f"peaks measured in this run: FMA loop {fma:.0f} GFLOP/s" + (f"; our BF16 GEMM 4096^3 {bf16:.0f} GFLOP/s" if bf16 else "") +
      (f"; PyTorch 2 bf16 matmul 4096^3 {torch_bf16:.0f} GFLOP/s" if torch_bf16 else ""))
for shape in shapes:
    med, rows = {}, [["side", "tok/s", "best tok/s", "GFLOP/s", "% peak", "peak used", "runs (tok/s)"]]
    for side in sides:
        tok, gf = side_runs(side, shape)
        if side.startswith("torch") and shape in FULL_LAYERS:
            tok = [t * 2 / FULL_LAYERS[shape] for t in tok]  # 2 layers run -> all layers
        m, g = statistics.median(tok), statistics.median(gf)
        med[side] = m
        is_bf16 = side.endswith("bf16")
        p = bf16 if is_bf16 else fma
        rows.append([side, f"{m:.1f}", f"{max(tok):.1f}", f"{g:.0f}", f"{100 * g / p:.0f}%" if p else "-",
                     ("our BF16 GEMM" if is_bf16 else "FMA loop") if p else "-", " ".join(f"{t:.0f}" for t in tok)])
    w = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    print(f"\nshape {shape}" + (" (2 of 32 layers run, tok/s scaled to 32)" if shape in FULL_LAYERS else ""))
    for r in rows:
        print("  " + "  ".join(cell.ljust(w[c]) if c in (0, 5, 6) else cell.rjust(w[c]) for c, cell in enumerate(r)))
    # Ours over every other side (and fast over exact mode), then the peers among themselves.
    pairs = [(a, b) for a in sides for b in sides if a.startswith("ours") and a != b and not (a == "ours-f32" and b == "ours-bf16")]
    pairs += [(a, b) for a, b in (("torch2-bf16", "torch2-fp32"), ("torch2-fp32", "torch1-fp32")) if a in sides and b in sides]
    print("  ratios (median tok/s, row / column): " + "; ".join(f"{a} / {b} {med[a] / med[b]:.2f}x" for a, b in pairs))
print("\ntargets (issue 11): ours-f32 / torch2-fp32 >= 1.2x on M, >= 1.4x on S; ours-bf16 / torch2-bf16 >= 1.3x and ours-bf16 / ours-f32 >= 3x on an AMX CPU "
      "(>= 1.6x on AVX512-BF16 only)")
EOF
