#!/usr/bin/env python3
"""CUDA backend parity, driven through libshortgpt_cuda.so's C ABI (native/cuda/cuda_abi.h) with
ctypes, against an independent float64 NumPy implementation of the Hugging Face forward pass.
Needs only python3 + numpy (no Node, no torch), so scripts/gpu-check.sh can run it on a bare GPU
machine.

  python3 scripts/cuda_parity.py --lib build/Release/libshortgpt_cuda.so [--stories DIR --golden DIR]
  python3 scripts/cuda_parity.py --reference-only --stories DIR --golden DIR   # no GPU: checks the
        float64 reference itself against ../shared/golden (run here, on the CPU)
  python3 scripts/cuda_parity.py --lib ... --probe                              # the probe as JSON

Cases: generated Llama / Qwen2 (q/k/v biases) / Qwen3 (q/k norm, head_dim != hidden/heads) /
Mistral (sliding window) / Baichuan (W_pack) / llama3 and linear RoPE scaling, head_dim 8..256, in
F32 (exact GEMM: BI and angular within 1e-4), BF16 and F16 (within 2e-3), perplexity within 1e-3
relative; several sequences of uneven lengths, chunked (batchTokens) and not; run-to-run bit
identity; residual restore (sized to expose a racing copy); ERR_CUDA_OOM, and a constructor
failing at each of its allocations (SHORTGPT_CUDA_FAIL_ALLOC) without leaking; F32 weights
converted to BF16 in pieces; and stories260k against the golden values. Exit 1 on any failure.
"""
import argparse
import ctypes as C
import json
import math
import os
import struct
import sys

import numpy as np

F32, F16, BF16 = 0, 1, 2
GEMM_TF32, GEMM_BF16, GEMM_EXACT = 0, 1, 2
ROPE_NONE, ROPE_LINEAR, ROPE_LLAMA3 = 0, 1, 2

# ---------------------------------------------------------------- the C ABI, mirrored


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("rows", C.c_int64), ("cols", C.c_int64)]


LAYER_ROLES = ["inputNorm", "q", "k", "v", "wPack", "qBias", "kBias", "vBias", "o", "oBias", "qNorm", "kNorm",
               "postNorm", "gate", "up", "down"]


class Layer(C.Structure):
    _fields_ = [("cacheKey", C.c_uint64)] + [(r, Tensor) for r in LAYER_ROLES]


class Spec(C.Structure):
    _fields_ = [(n, C.c_int) for n in ["hiddenSize", "intermediateSize", "numHeads", "numKvHeads", "headDim", "vocabSize"]] + [
        ("rmsNormEps", C.c_float), ("ropeTheta", C.c_float), ("ropeType", C.c_int), ("ropeFactor", C.c_float),
        ("ropeLowFreqFactor", C.c_float), ("ropeHighFreqFactor", C.c_float), ("ropeOriginalMaxPositions", C.c_int),
        ("slidingWindow", C.c_int), ("qkNorm", C.c_int), ("device", C.c_int), ("gemmF32", C.c_int),
        ("batchTokens", C.c_int64), ("weightCacheBytes", C.c_uint64)]


class Stats(C.Structure):
    _fields_ = [(n, C.c_double) for n in ["tokens", "sumCos", "nanCount", "sumAngular", "sumRelMag"]]


class Nll(C.Structure):
    _fields_ = [(n, C.c_double) for n in ["sumNll", "predictions", "logitsSum"]]


class Timings(C.Structure):
    _fields_ = [("computeMs", C.c_double), ("transferMs", C.c_double), ("uploadOverlapMs", C.c_double),
                ("peakDeviceBytes", C.c_uint64)]


class Device(C.Structure):
    _fields_ = [("ordinal", C.c_int), ("name", C.c_char * 256), ("computeMajor", C.c_int), ("computeMinor", C.c_int),
                ("multiprocessors", C.c_int), ("totalBytes", C.c_uint64), ("freeBytes", C.c_uint64)]


class Probe(C.Structure):
    _fields_ = [("usable", C.c_int), ("deviceCount", C.c_int), ("driverVersion", C.c_int), ("runtimeVersion", C.c_int),
                ("reason", C.c_char * 1024), ("cublasLibrary", C.c_char * 512), ("devices", Device * 16)]


P = C.c_void_p
Api = type("Api", (C.Structure,), {"_fields_": [
    ("abiVersion", C.c_uint32), ("structSize", C.c_uint32),
    ("buildInfo", C.CFUNCTYPE(C.c_char_p)),
    ("probe", C.CFUNCTYPE(C.c_int, C.POINTER(Probe))),
    ("lastErrorCode", C.CFUNCTYPE(C.c_char_p)),
    ("lastErrorMessage", C.CFUNCTYPE(C.c_char_p)),
    ("sessionCreate", C.CFUNCTYPE(C.c_int, C.POINTER(Spec), P, P, C.c_int64, C.POINTER(P))),
    ("sessionEmbed", C.CFUNCTYPE(C.c_int, P, C.POINTER(Tensor))),
    ("sessionForwardLayer", C.CFUNCTYPE(C.c_int, P, C.POINTER(Layer), C.POINTER(Layer), C.POINTER(Stats))),
    ("sessionNll", C.CFUNCTYPE(C.c_int, P, C.POINTER(Tensor), C.POINTER(Tensor), C.POINTER(Nll))),
    ("sessionReadHidden", C.CFUNCTYPE(C.c_int, P, P, C.c_int64)),
    ("sessionReadRows", C.CFUNCTYPE(C.c_int, P, P, C.c_int64, P)),
    ("sessionTimings", C.CFUNCTYPE(C.c_int, P, C.POINTER(Timings))),
    ("sessionCancel", C.CFUNCTYPE(None, P)),
    ("sessionDestroy", C.CFUNCTYPE(None, P)),
    ("gemmPeakTflops", C.CFUNCTYPE(C.c_int, C.c_int, C.c_int, C.c_int, C.POINTER(C.c_double))),
    ("sessionWriteHidden", C.CFUNCTYPE(C.c_int, P, P, C.c_int64)),
    ("deviceMemory", C.CFUNCTYPE(C.c_int, C.c_int, C.POINTER(C.c_uint64), C.POINTER(C.c_uint64))),
]})


class CudaError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def load_api(path):
    lib = C.CDLL(path)
    fn = lib.shortgpt_cuda_api_v1
    fn.restype = C.POINTER(Api)
    api = fn().contents
    if api.abiVersion != 1 or api.structSize < C.sizeof(Api):
        raise SystemExit(f"{path}: ABI {api.abiVersion}/{api.structSize} bytes, this script knows 1/{C.sizeof(Api)}")
    return api


def check(api, rc):
    if rc != 0:
        raise CudaError(api.lastErrorCode().decode(), api.lastErrorMessage().decode())


def probe(api):
    p = Probe()
    api.probe(C.byref(p))
    return {"usable": bool(p.usable), "reason": p.reason.decode(), "driverVersion": p.driverVersion,
            "runtimeVersion": p.runtimeVersion, "cublas": p.cublasLibrary.decode(),
            "devices": [{"name": p.devices[i].name.decode(), "cc": f"{p.devices[i].computeMajor}.{p.devices[i].computeMinor}",
                         "totalBytes": p.devices[i].totalBytes} for i in range(min(p.deviceCount, 16))]}

# ---------------------------------------------------------------- weights and dtypes


def to_bf16_bits(a):
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


class W:
    """A weight as the engine receives it (raw bytes of `dtype`) and as the reference sees it (f64)."""

    def __init__(self, values_f32, dtype):
        if dtype == BF16:
            self.raw = to_bf16_bits(values_f32)
            self.f64 = from_bf16_bits(self.raw).astype(np.float64)
        elif dtype == F16:
            self.raw = np.ascontiguousarray(values_f32, dtype=np.float16)
            self.f64 = self.raw.astype(np.float64)
        else:
            self.raw = np.ascontiguousarray(values_f32, dtype=np.float32)
            self.f64 = self.raw.astype(np.float64)
        self.dtype = dtype

    def tensor(self):
        rows = self.raw.shape[0]
        cols = self.raw.shape[1] if self.raw.ndim == 2 else 1
        return Tensor(self.raw.ctypes.data, self.dtype, rows, cols)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    kinds = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[8 + n + b:8 + n + e], dtype=kinds[t["dtype"]]).reshape(t["shape"])
        out[name] = arr.astype(np.float32) if t["dtype"] != "BF16" else from_bf16_bits(arr)
    return out

# ---------------------------------------------------------------- float64 reference (Hugging Face semantics)


def inv_freq(cfg):
    hd = cfg["headDim"]
    f = 1.0 / cfg["ropeTheta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    rt = cfg.get("ropeType", ROPE_NONE)
    if rt == ROPE_LINEAR:
        f = f / cfg["ropeFactor"]
    elif rt == ROPE_LLAMA3:  # transformers' _compute_llama3_parameters
        orig, lo, hi, fac = cfg["ropeOriginal"], cfg["ropeLow"], cfg["ropeHigh"], cfg["ropeFactor"]
        wavelen = 2 * math.pi / f
        scaled = np.where(wavelen > orig / lo, f / fac, f)
        smooth = (orig / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / fac + smooth * scaled
        medium = ~(wavelen < orig / hi) & ~(wavelen > orig / lo)
        f = np.where(medium, smoothed, scaled)
    return f


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, cos, sin):  # x [T, heads, hd]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def ref_layer(h, lw, cfg):
    T = h.shape[0]
    nh, nkv, hd, eps = cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"], cfg["eps"]
    x = rms(h, lw["inputNorm"].f64, eps)
    if "wPack" in lw:
        qkv = x @ lw["wPack"].f64.T
        q, k, v = np.split(qkv, [nh * hd, nh * hd + nkv * hd], axis=1)
    else:
        q, k, v = x @ lw["q"].f64.T, x @ lw["k"].f64.T, x @ lw["v"].f64.T
    for name, arr in (("qBias", q), ("kBias", k), ("vBias", v)):
        if name in lw:
            arr += lw[name].f64
    q, k, v = q.reshape(T, nh, hd), k.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
    if "qNorm" in lw:
        q, k = rms(q, lw["qNorm"].f64, eps), rms(k, lw["kNorm"].f64, eps)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq(cfg)[None, :]
    q, k = rope(q, np.cos(ang), np.sin(ang)), rope(k, np.cos(ang), np.sin(ang))
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    mask = j <= i
    if cfg.get("window", 0) > 0:
        mask &= (i - j) < cfg["window"]
    out = np.empty((T, nh, hd))
    for hh in range(nh):
        kv = hh // (nh // nkv)
        s = q[:, hh] @ k[:, kv].T / math.sqrt(hd)
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(1, keepdims=True))
        out[:, hh] = (p / p.sum(1, keepdims=True)) @ v[:, kv]
    mid = h + out.reshape(T, nh * hd) @ lw["o"].f64.T + (lw["oBias"].f64 if "oBias" in lw else 0)
    x2 = rms(mid, lw["postNorm"].f64, eps)
    g, u = x2 @ lw["gate"].f64.T, x2 @ lw["up"].f64.T
    return mid + (g / (1 + np.exp(-g)) * u) @ lw["down"].f64.T


def token_stats(a, b):
    dot, na, nb, nd = (a * b).sum(1), np.sqrt((a * a).sum(1)), np.sqrt((b * b).sum(1)), np.sqrt(((b - a) ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = dot / (na * nb)
    bad = ~np.isfinite(c)
    c = np.clip(np.where(bad, 0.5, c), -1, 1)
    rel = np.where(nb > 0, nd / np.where(nb > 0, nb, 1), np.where(nd > 0, 1.0, 0.0))
    return c, np.arccos(c) / math.pi, rel


def reference(model, seqs, skip=()):
    """Per-layer {bi, angular, relmag} and {perplexity, logitsSum} in float64."""
    cfg = model["cfg"]
    hs = [model["embed"].f64[np.array(s)] for s in seqs]
    layers = []
    for li, lw in enumerate(model["layers"]):
        if li in skip:
            continue
        c_all, a_all, r_all = [], [], []
        for n, h in enumerate(hs):
            out = ref_layer(h, lw, cfg)
            c, a, r = token_stats(h, out)
            c_all.append(c), a_all.append(a), r_all.append(r)
            hs[n] = out
        c, a, r = (np.concatenate(x) for x in (c_all, a_all, r_all))
        layers.append({"bi": 1 - c.mean(), "angular": a.mean(), "relmag": r.mean()})
    nll, count, lsum = 0.0, 0, 0.0
    for h, s in zip(hs, seqs):
        logits = rms(h, model["norm"].f64, cfg["eps"]) @ model["lmHead"].f64.T
        lsum += logits.sum()
        m = logits.max(1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
        nll -= logp[np.arange(len(s) - 1), np.array(s[1:], dtype=np.int64)].sum()
        count += len(s) - 1
    return layers, {"perplexity": math.exp(nll / count), "logitsSum": lsum}

# ---------------------------------------------------------------- the engine through the ABI


def engine(api, model, seqs, gemm=GEMM_EXACT, batch_tokens=0, skip=()):
    cfg = model["cfg"]
    spec = Spec(hiddenSize=cfg["hidden"], intermediateSize=cfg["inter"], numHeads=cfg["numHeads"],
                numKvHeads=cfg["numKvHeads"], headDim=cfg["headDim"], vocabSize=cfg["vocab"], rmsNormEps=cfg["eps"],
                ropeTheta=cfg["ropeTheta"], ropeType=cfg.get("ropeType", 0), ropeFactor=cfg.get("ropeFactor", 1.0),
                ropeLowFreqFactor=cfg.get("ropeLow", 1.0), ropeHighFreqFactor=cfg.get("ropeHigh", 4.0),
                ropeOriginalMaxPositions=cfg.get("ropeOriginal", 8192), slidingWindow=cfg.get("window", 0),
                qkNorm=1 if cfg.get("qkNorm") else 0, device=0, gemmF32=gemm, batchTokens=batch_tokens, weightCacheBytes=0)
    toks = np.ascontiguousarray(np.concatenate([np.array(s, dtype=np.int32) for s in seqs]))
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    sess = P()
    check(api, api.sessionCreate(C.byref(spec), toks.ctypes.data, lens.ctypes.data, len(seqs), C.byref(sess)))
    try:
        check(api, api.sessionEmbed(sess, C.byref(model["embed"].tensor())))
        layers = []
        refs = []
        for li, lw in enumerate(model["layers"]):
            L = Layer(cacheKey=li + 1)
            for role, w in lw.items():
                setattr(L, role, w.tensor())
            refs.append(L)
        kept = [i for i in range(len(refs)) if i not in skip]
        for n, li in enumerate(kept):
            st = Stats()
            nxt = C.byref(refs[kept[n + 1]]) if n + 1 < len(kept) else None
            check(api, api.sessionForwardLayer(sess, C.byref(refs[li]), nxt, C.byref(st)))
            layers.append({"bi": 1 - st.sumCos / st.tokens, "angular": st.sumAngular / st.tokens,
                           "relmag": st.sumRelMag / st.tokens, "raw": (st.sumCos, st.sumAngular, st.sumRelMag)})
        r = Nll()
        check(api, api.sessionNll(sess, C.byref(model["norm"].tensor()), C.byref(model["lmHead"].tensor()), C.byref(r)))
        return layers, {"perplexity": math.exp(r.sumNll / r.predictions), "logitsSum": r.logitsSum,
                        "raw": (r.sumNll, r.logitsSum)}
    finally:
        api.sessionDestroy(sess)

def plain_session_inputs(model, seqs):
    """The session spec (plain RoPE, exact F32 GEMMs) and packed token arrays for `seqs`."""
    cfg = model["cfg"]
    spec = Spec(hiddenSize=cfg["hidden"], intermediateSize=cfg["inter"], numHeads=cfg["numHeads"],
                numKvHeads=cfg["numKvHeads"], headDim=cfg["headDim"], vocabSize=cfg["vocab"], rmsNormEps=cfg["eps"],
                ropeTheta=cfg["ropeTheta"], ropeFactor=1.0, gemmF32=GEMM_EXACT)
    toks = np.ascontiguousarray(np.concatenate([np.array(s, dtype=np.int32) for s in seqs]))
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    return spec, toks, lens

def residual_round_trip(api, model, seqs):
    cfg = model["cfg"]
    spec, toks, lens = plain_session_inputs(model, seqs)
    sess = P()
    check(api, api.sessionCreate(C.byref(spec), toks.ctypes.data, lens.ctypes.data, len(seqs), C.byref(sess)))
    try:
        refs = []
        for li, lw in enumerate(model["layers"]):
            L = Layer(cacheKey=li + 1)
            for role, w in lw.items():
                setattr(L, role, w.tensor())
            refs.append(L)
        check(api, api.sessionEmbed(sess, C.byref(model["embed"].tensor())))
        st = Stats()
        check(api, api.sessionForwardLayer(sess, C.byref(refs[0]), None, C.byref(st)))
        snap = np.zeros(len(toks) * cfg["hidden"], dtype=np.float32)
        check(api, api.sessionReadHidden(sess, snap.ctypes.data, snap.size))
        a, b = Stats(), Stats()
        check(api, api.sessionForwardLayer(sess, C.byref(refs[1]), None, C.byref(a)))
        check(api, api.sessionWriteHidden(sess, snap.ctypes.data, snap.size))
        check(api, api.sessionForwardLayer(sess, C.byref(refs[1]), None, C.byref(b)))
        return (a.sumCos, a.sumAngular, a.sumRelMag) == (b.sumCos, b.sumAngular, b.sumRelMag)
    finally:
        api.sessionDestroy(sess)


def device_free_bytes(api, device=0):
    free, total = C.c_uint64(), C.c_uint64()
    check(api, api.deviceMemory(device, C.byref(free), C.byref(total)))
    return free.value


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def injected_constructor_failures(api, model, seqs):
    """SHORTGPT_CUDA_FAIL_ALLOC=n fails the session's n-th device allocation (ERR_CUDA_OOM) inside
    the constructor, after its streams, events, cuBLAS handle and 2 x 64 MiB of pinned memory exist.
    Repeating that must leak neither pinned host memory (a leak: +128 MiB of RSS per failure) nor
    device memory. Returns (failures seen, expected, RSS growth, device free-memory drop, detail)."""
    spec, toks, lens = plain_session_inputs(model, seqs)

    def create():
        sess = P()
        rc = api.sessionCreate(C.byref(spec), toks.ctypes.data, lens.ctypes.data, len(seqs), C.byref(sess))
        if rc == 0:
            api.sessionDestroy(sess)
            return None
        return api.lastErrorCode().decode(), api.lastErrorMessage().decode()

    create()  # warm: the runtime's and cuBLAS's one-off allocations are not a leak
    rss0, free0 = rss_bytes(), device_free_bytes(api)
    seen, rounds, detail = 0, 0, ""
    try:
        for _ in range(2):
            for n in range(1, 16):  # the constructor makes 15 device allocations
                os.environ["SHORTGPT_CUDA_FAIL_ALLOC"] = str(n)
                err = create()
                rounds += 1
                if err and err[0] == "ERR_CUDA_OOM" and "SHORTGPT_CUDA_FAIL_ALLOC" in err[1]:
                    seen += 1
                elif not detail:
                    detail = f"n={n}: {err}"
    finally:
        del os.environ["SHORTGPT_CUDA_FAIL_ALLOC"]
    ok_after = create() is None  # and a session still builds afterwards
    return seen, rounds, rss_bytes() - rss0, free0 - device_free_bytes(api), ok_after, detail


def as_f32(model):
    """The same values stored as F32 (exact when they came from a BF16 model)."""
    conv = lambda w: W(w.f64.astype(np.float32), F32)
    return {"cfg": model["cfg"], "embed": conv(model["embed"]), "norm": conv(model["norm"]),
            "lmHead": conv(model["lmHead"]), "layers": [{k: conv(v) for k, v in lw.items()} for lw in model["layers"]]}

# ---------------------------------------------------------------- generated architectures


def make_model(rng, arch, dtype, hidden=64, heads=4, kv=2, head_dim=None, inter=96, vocab=101, layers=3, **extra):
    hd = head_dim or hidden // heads
    cfg = dict(hidden=hidden, inter=inter, numHeads=heads, numKvHeads=kv, headDim=hd, vocab=vocab, eps=1e-5,
               ropeTheta=10000.0)
    cfg.update(extra)

    def mat(r, c, scale=None):
        return W(rng.standard_normal((r, c)).astype(np.float32) * (scale or 1 / math.sqrt(c)), dtype)

    def vec(n, around=1.0, spread=0.1):
        return W((around + spread * rng.standard_normal(n)).astype(np.float32), dtype)

    ls = []
    for _ in range(layers):
        lw = {"inputNorm": vec(hidden), "postNorm": vec(hidden), "o": mat(hidden, heads * hd),
              "gate": mat(inter, hidden), "up": mat(inter, hidden), "down": mat(hidden, inter)}
        if arch == "baichuan":
            lw["wPack"] = mat((heads + 2 * kv) * hd, hidden)
        else:
            lw.update(q=mat(heads * hd, hidden), k=mat(kv * hd, hidden), v=mat(kv * hd, hidden))
        if arch == "qwen2":
            lw.update(qBias=vec(heads * hd, 0, 0.2), kBias=vec(kv * hd, 0, 0.2), vBias=vec(kv * hd, 0, 0.2))
        if arch == "qwen3":
            lw.update(qNorm=vec(hd), kNorm=vec(hd))
            cfg["qkNorm"] = True
        ls.append(lw)
    if arch == "mistral":
        cfg["window"] = 7
    emb = W(rng.standard_normal((vocab, hidden)).astype(np.float32), dtype)
    return {"cfg": cfg, "embed": emb, "norm": vec(hidden), "lmHead": mat(vocab, hidden), "layers": ls}


def stories_model(model_dir):
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    c = json.load(open(os.path.join(model_dir, "config.json")))
    cfg = dict(hidden=c["hidden_size"], inter=c["intermediate_size"], numHeads=c["num_attention_heads"],
               numKvHeads=c["num_key_value_heads"], headDim=c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
               vocab=c["vocab_size"], eps=c["rms_norm_eps"], ropeTheta=c.get("rope_theta", 10000.0))
    roles = {"inputNorm": "input_layernorm.weight", "postNorm": "post_attention_layernorm.weight",
             "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight", "v": "self_attn.v_proj.weight",
             "o": "self_attn.o_proj.weight", "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight",
             "down": "mlp.down_proj.weight"}
    layers = [{r: W(t[f"model.layers.{i}.{n}"], F32) for r, n in roles.items()} for i in range(c["num_hidden_layers"])]
    emb = W(t["model.embed_tokens.weight"], F32)
    head = W(t["lm_head.weight"], F32) if "lm_head.weight" in t else emb
    return {"cfg": cfg, "embed": emb, "norm": W(t["model.norm.weight"], F32), "lmHead": head, "layers": layers}

# ---------------------------------------------------------------- comparison


class Report:
    def __init__(self):
        self.failures = 0

    def compare(self, name, got, want, tol_stat, tol_ppl):
        worst = 0.0
        for g, w in zip(got[0], want[0]):
            for key in ("bi", "angular", "relmag"):
                worst = max(worst, abs(g[key] - w[key]))
        ppl_rel = abs(got[1]["perplexity"] - want[1]["perplexity"]) / want[1]["perplexity"]
        ok = worst <= tol_stat and ppl_rel <= tol_ppl and len(got[0]) == len(want[0])
        self.failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name:<44} max|d stat| {worst:.2e} (tol {tol_stat:.0e})  "
              f"ppl rel {ppl_rel:.2e} (tol {tol_ppl:.0e})", flush=True)

    def expect(self, name, ok, detail=""):
        self.failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name:<44} {detail}", flush=True)


def golden_reference(stories, golden_dir):
    g = json.load(open(os.path.join(golden_dir, "stories260k.json")))
    seqs = json.load(open(os.path.join(golden_dir, "stories260k-tokens.json")))
    if isinstance(seqs, dict):
        seqs = seqs.get("sequences") or seqs.get("tokens")
    want = ([{"bi": l["bi"], "angular": l["angular"], "relmag": l["relmag"]} for l in g["layers"]],
            {"perplexity": g["perplexity"], "logitsSum": g["logitsSum"]})
    return seqs, want, g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/Release/libshortgpt_cuda.so")
    ap.add_argument("--stories", help="the stories260k model folder")
    ap.add_argument("--golden", help="the golden folder (stories260k.json, stories260k-tokens.json)")
    ap.add_argument("--reference-only", action="store_true")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a few small cases (for compute-sanitizer runs)")
    args = ap.parse_args()
    rep = Report()

    if args.reference_only:  # validates this script's float64 reference on the CPU, no GPU needed
        seqs, want, _ = golden_reference(args.stories, args.golden)
        got = reference(stories_model(args.stories), seqs)
        rep.compare("float64 reference vs golden stories260k", got, want, 1e-9, 1e-9)
        sys.exit(1 if rep.failures else 0)

    api = load_api(args.lib)
    info = probe(api)
    print(json.dumps({"build": api.buildInfo().decode(), **info}), flush=True)
    if args.probe:
        return
    if not info["usable"]:
        print(f"SKIP all CUDA parity: CUDA not usable: {info['reason']}")
        sys.exit(2)

    rng = np.random.default_rng(7)
    seqs_for = lambda vocab: [list(rng.integers(0, vocab, n)) for n in (37, 5, 64, 1, 130)]
    archs = [("llama", {}), ("qwen2", {}), ("qwen3", dict(head_dim=32)), ("mistral", {}), ("baichuan", {}),
             ("llama", dict(ropeType=ROPE_LLAMA3, ropeFactor=8.0, ropeLow=1.0, ropeHigh=4.0, ropeOriginal=64, ropeTheta=500000.0)),
             ("llama", dict(ropeType=ROPE_LINEAR, ropeFactor=4.0)),
             ("llama", dict(hidden=256, heads=2, kv=1, head_dim=128)),
             ("llama", dict(hidden=256, heads=2, kv=2, head_dim=256)),
             ("llama", dict(hidden=64, heads=8, kv=4, head_dim=8))]
    if args.quick:  # every kernel once, small: memcheck/racecheck make each launch 10-100x slower
        archs = [("qwen3", dict(head_dim=32)), ("mistral", {}), ("baichuan", {}), ("qwen2", dict(hidden=128, heads=2, kv=1, head_dim=64))]
    for arch, extra in archs:
        for dtype, gemm, tol, tag in ((F32, GEMM_EXACT, 1e-4, "f32"), (BF16, GEMM_TF32, 2e-3, "bf16"), (F16, GEMM_TF32, 2e-3, "f16")):
            model = make_model(rng, arch, dtype, **extra)
            seqs = seqs_for(model["cfg"]["vocab"])
            want = reference(model, seqs)
            name = f"{arch} {tag} {','.join(f'{k}={v}' for k, v in extra.items())}"[:44]
            rep.compare(name, engine(api, model, seqs, gemm=gemm), want, tol, 1e-3)
    if args.quick:
        print(f"{rep.failures} failure(s)")
        sys.exit(1 if rep.failures else 0)
    # Chunking (batchTokens) changes how rows are grouped, not the per-token results.
    model = make_model(rng, "qwen2", F32)
    seqs = seqs_for(model["cfg"]["vocab"])
    rep.compare("chunked (batchTokens 40)", engine(api, model, seqs, batch_tokens=40), reference(model, seqs), 1e-4, 1e-3)
    # Skipping layers == the residual passing through them.
    rep.compare("skip layer 1", engine(api, model, seqs, skip=(1,)), reference(model, seqs, skip=(1,)), 1e-4, 1e-3)
    # Run to run: identical sums, bit for bit (fixed-order reductions, no float atomics).
    a = engine(api, model, seqs, gemm=GEMM_TF32)
    b = engine(api, model, seqs, gemm=GEMM_TF32)
    rep.expect("bit-identical run to run", [l["raw"] for l in a[0]] == [l["raw"] for l in b[0]] and a[1]["raw"] == b[1]["raw"])
    # Tensor-core attention (16-bit, head_dim 64/128) and the f32 kernel (forced) on long sequences.
    for hd in (64, 128):
        model = make_model(rng, "llama", BF16, hidden=2 * hd, heads=2, kv=1, head_dim=hd, layers=2)
        seqs = [list(rng.integers(0, 101, n)) for n in (300, 77)]
        want = reference(model, seqs)
        rep.compare(f"bf16 tensor-core attention hd {hd}, T=300", engine(api, model, seqs, gemm=GEMM_TF32), want, 2e-3, 1e-3)
        os.environ["SHORTGPT_CUDA_ATTENTION"] = "simt"
        try:
            rep.compare(f"bf16 f32-attention (forced) hd {hd}, T=300", engine(api, model, seqs, gemm=GEMM_TF32), want, 2e-3, 1e-3)
        finally:
            del os.environ["SHORTGPT_CUDA_ATTENTION"]
    # Residual snapshots: read after layer 0, run layer 1, restore, run layer 1 again: same sums.
    model = make_model(rng, "llama", F32, layers=2)
    seqs = seqs_for(model["cfg"]["vocab"])
    rep.expect("residual read/write round trip", residual_round_trip(api, model, seqs))
    # The same with 4 MiB of residuals: a restore that raced the next layer's kernels (a copy on
    # the legacy stream, issue 16) shows up as different sums.
    model = make_model(rng, "llama", F32, hidden=512, heads=4, kv=2, inter=256, layers=2)
    rep.expect("residual round trip, 2048 x 512", residual_round_trip(api, model, [list(rng.integers(0, 101, 512)) for _ in range(4)]))
    # A constructor that fails half-way (injected ERR_CUDA_OOM at each allocation) leaks nothing.
    model = make_model(rng, "llama", F32, layers=1)
    seen, rounds, rss_grew, dev_dropped, ok_after, detail = injected_constructor_failures(api, model, seqs_for(101))
    rep.expect("constructor failures: ERR_CUDA_OOM each time", seen == rounds, f"{seen}/{rounds} {detail}")
    rep.expect("constructor failures leak no pinned memory", rss_grew < (512 << 20),
               f"RSS +{rss_grew / 2**20:.0f} MiB over {rounds} failures (a leak: +128 MiB each)")
    rep.expect("constructor failures leak no device memory", dev_dropped < (64 << 20) and ok_after,
               f"device free -{dev_dropped / 2**20:.0f} MiB; a session builds afterwards: {ok_after}")
    # F32 weights computed in BF16 are converted on the device through a fixed 64 MiB buffer, in
    # pieces: lm_head [36000, 512] (70 MiB in F32) takes two uneven ones. BF16 values stored as
    # F32 convert exactly, so the BF16 reference applies.
    big = make_model(rng, "llama", BF16, hidden=512, heads=4, kv=2, vocab=36000, layers=1)
    seqs = [list(rng.integers(0, 36000, n)) for n in (60, 23)]
    rep.compare("f32 -> bf16 conversion in 64 MiB pieces", engine(api, as_f32(big), seqs, gemm=GEMM_BF16),
                reference(big, seqs), 2e-3, 1e-3)
    # Out of memory is ERR_CUDA_OOM naming the bytes and the remedy.
    huge = make_model(rng, "llama", BF16, layers=1)
    huge["cfg"]["hidden"] = 1 << 20  # activations alone: 1M x tokens x 4 bytes
    try:
        engine(api, huge, [list(range(50))] * 4000)
        rep.expect("ERR_CUDA_OOM", False, "no error")
    except CudaError as e:
        rep.expect("ERR_CUDA_OOM", e.code == "ERR_CUDA_OOM" and "--batch-tokens" in str(e), str(e)[:160])
    if args.stories and args.golden:
        seqs, want, g = golden_reference(args.stories, args.golden)
        model = stories_model(args.stories)
        got = engine(api, model, seqs, gemm=GEMM_EXACT)
        rep.compare("stories260k f32 exact vs golden", got, want, 1e-4, 1e-3)
        rep.compare("stories260k tf32 vs golden", engine(api, model, seqs, gemm=GEMM_TF32), want, 2e-3, 1e-3)
        for key, ppl in g.get("perplexitySkipping", {}).items():
            skip = tuple(int(x) for x in key.split(","))
            _, p = engine(api, model, seqs, gemm=GEMM_EXACT, skip=skip)
            rel = abs(p["perplexity"] - ppl) / ppl
            rep.expect(f"stories260k skipping {key}", rel <= 1e-3, f"ppl {p['perplexity']:.6f} vs {ppl:.6f} (rel {rel:.1e})")
    print(f"{rep.failures} failure(s)")
    sys.exit(1 if rep.failures else 0)


if __name__ == "__main__":
    main()
