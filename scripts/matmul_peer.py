"""The PyTorch side of `bench-gemm --peer`: times torch's fp32 linear (MKL sgemm on x86) at the
shapes the caller asks for, so that ours and MKL run interleaved in one sitting.

A line server, so torch is imported once: each request on stdin is one line
    M N K THREADS ITERATIONS [DTYPE]
and the answer on stdout is one line, the best time of ITERATIONS runs of
torch.nn.functional.linear(x [M, K], w [N, K]) in seconds (after one warm-up run), or
`error <message>`. DTYPE is f32 (default; MKL sgemm) or bf16 (oneDNN's bf16 path, AMX where
the CPU has it: what a user loading a BF16 checkpoint as it is gets). The call is the one nn.Linear makes in the model (y = x W^T, W in Hugging
Face's [out, in] layout), on fresh random data per request, as benchGemm does on its side.
The first line printed is `ready <torch version> <MKL instruction set or 'n/a'>`.

MKL_ENABLE_INSTRUCTIONS=AVX2 in the environment makes MKL use its AVX2 kernels (the fair
comparison for SHORTGPT_NO_AVX512=1).
"""
import sys
import time

import torch


def best_seconds(m: int, n: int, k: int, threads: int, iterations: int, dtype: torch.dtype) -> float:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(12345)
    x = (torch.rand(m, k, generator=gen, dtype=torch.float32) * 2 - 1).to(dtype)
    w = (torch.rand(n, k, generator=gen, dtype=torch.float32) * 2 - 1).to(dtype)
    y = torch.empty(m, n, dtype=dtype)
    linear = torch.nn.functional.linear
    with torch.no_grad():
        torch.matmul(x, w.t(), out=y)  # warm-up: MKL's buffers, page faults, worker wake-up
        best = float("inf")
        for _ in range(iterations):
            t0 = time.perf_counter()
            y = linear(x, w)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    try:
        isa = torch.backends.mkl.is_available() and "mkl" or "n/a"
    except Exception:  # an old torch without the attribute
        isa = "n/a"
    print(f"ready {torch.__version__} {isa}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[parts[5] if len(parts) > 5 else "f32"]
            m, n, k, threads, iterations = (int(p) for p in parts[:5])
            print(f"{best_seconds(m, n, k, threads, iterations, dtype):.9f}", flush=True)
        except Exception as e:  # answer every request, so the caller never waits forever
            print(f"error {type(e).__name__}: {e}".replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
