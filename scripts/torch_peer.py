#!/usr/bin/env python3
"""The PyTorch peer of `shortgpt-native bench`: layers scored the way the ShortGPT authors' code
scores them, timed on the same shapes, to quote the engine's speed as a ratio to it.

The authors' way: an eager Hugging Face Llama forward in PyTorch that keeps every layer's hidden
state (as output_hidden_states=True does), then Block Influence per layer from those states,
BI_i = 1 - mean_t cos(h_i[t], h_{i+1}[t]) with h_0 the embedding output and h_{i+1} the residual
stream after layer i (before the final norm, as the engine defines it; a NaN cosine counts as
0.5). The timed region is one such pass: embeddings -> every decoder layer, states kept -> final
RMSNorm [-> lm_head] -> BI of every layer.

Weights are synthetic, drawn as lib/bench/syntheticWeights.ts draws the engine's: normal(0,
0.02), RMSNorm weights 1, lm_head tied to the embeddings; by default every layer uses the same
weights, as the engine's benchmark does (`--layer-weights distinct` gives each its own). The
model is built directly in --dtype on --device: no float32 copy exists first.

  python3 scripts/torch_peer.py --shape S --batch 1 --seq 512 --runs 3 --threads 2          # CPU, fp32
  python3 scripts/torch_peer.py --shape 7B --batch 64 --seq 2048 --device cuda --dtype bf16 --attn sdpa
  python3 scripts/torch_peer.py --shape S --seq 128 --impl transformers   # the same pass in transformers' own LlamaModel

--impl own (default) is this file's modules, written after transformers' modeling_llama (RMSNorm
in float32, rotary tables in float32 cast to the dtype, eager attention = matmul * scale +
causal mask at the dtype's minimum + float32 softmax); --impl transformers runs transformers'
LlamaModel with the same weights and hooks on each decoder layer, so the two can be compared
(their BI lists agree to rounding). --attn manual is the eager path, sdpa is
F.scaled_dot_product_attention (transformers' "sdpa").

Output: one JSON line {"event": "config", ...}, one {"event": "run", "tok_s": ...} per timed run,
then {"event": "summary", "shape", "tok_s_median", ...}; scripts/bench-peers.sh reads the run
lines, scripts/gpu-check.sh the summary. FLOPs are counted as lib/bench/flops.ts counts them
(every projection GEMM and the two causal attention products; lm_head not counted).
"""
import argparse
import json
import statistics
import sys
import time
import zlib

# name: config.json numbers (as lib/bench/shapes.ts PRESETS; 7B = Llama-2-7B for the GPU check)
SHAPES = {
    "S": dict(hidden=576, layers=30, heads=9, kv_heads=3, inter=1536, vocab=49152, theta=10000.0),       # SmolLM-135M
    "M": dict(hidden=2048, layers=16, heads=32, kv_heads=8, inter=8192, vocab=128256, theta=500000.0),  # Llama-3.2-1B
    "7B": dict(hidden=4096, layers=32, heads=32, kv_heads=32, inter=11008, vocab=32000, theta=10000.0),  # Llama-2-7B
}
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
RMS_EPS = 1e-5
WEIGHT_STD = 0.02


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch peer: HF-style eager Llama forward + per-layer Block Influence (see the file's docstring)")
    ap.add_argument("--shape", choices=SHAPES, default="S")
    ap.add_argument("--layers", type=int, help="run only this many decoder layers of the shape")
    ap.add_argument("--batch", type=int, default=1, help="sequences per pass")
    ap.add_argument("--seq", type=int, default=512, help="tokens per sequence")
    ap.add_argument("--runs", type=int, default=3, help="timed passes")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--dtype", choices=DTYPE_NAMES, default="fp32", help="the dtype the model is built and run in")
    ap.add_argument("--attn", choices=["manual", "sdpa"], default="manual", help="eager matmul+mask+softmax, or scaled_dot_product_attention")
    ap.add_argument("--impl", choices=["own", "transformers"], default="own", help="this file's modules, or transformers' LlamaModel")
    ap.add_argument("--layer-weights", choices=["shared", "distinct"], default="shared", help="one layer's weights for every layer (as the engine's bench), or each its own")
    ap.add_argument("--lm-head", choices=["none", "last", "all"], default="none", help="also compute logits (not counted in FLOPs)")
    ap.add_argument("--bi", choices=["rowwise", "ref"], default="rowwise",
                    help="cosines row by row in float32, or as the authors' block_influence: a T x T product per sequence, its diagonal")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for name in ("batch", "seq", "runs", "threads"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if a.warmup < 0:
        ap.error("--warmup must be at least 0")
    if a.layers is not None and not 1 <= a.layers <= SHAPES[a.shape]["layers"]:
        ap.error(f"--layers must be 1..{SHAPES[a.shape]['layers']} for shape {a.shape}")
    return a


def shape_config(args):
    cfg = dict(SHAPES[args.shape])
    if args.layers is not None:
        cfg["layers"] = args.layers
    cfg["head_dim"] = cfg["hidden"] // cfg["heads"]
    return cfg


def flops_per_pass(cfg, batch, seq):
    """lib/bench/flops.ts: 2*tokens*(projection weights) + 4*head_dim*heads*T(T+1)/2, per layer."""
    h, i, hd = cfg["hidden"], cfg["inter"], cfg["head_dim"]
    qd, kvd = cfg["heads"] * hd, cfg["kv_heads"] * hd
    weights = qd * h + 2 * kvd * h + h * qd + 3 * h * i
    per_seq = 2 * seq * weights + 4 * hd * cfg["heads"] * seq * (seq + 1) / 2
    return cfg["layers"] * batch * per_seq


def build_own(torch, cfg, dev, dtype, attn, shared):
    nn = torch.nn
    F = torch.nn.functional
    kw = dict(device=dev, dtype=dtype)

    class RMSNorm(nn.Module):  # LlamaRMSNorm: normalise in float32, scale in the model dtype
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d, **kw))

        def forward(self, x):
            xf = x.to(torch.float32)
            xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
            return self.weight * xf.to(x.dtype)

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def repeat_kv(x, n):
        if n == 1:
            return x
        b, kv, t, d = x.shape
        return x[:, :, None].expand(b, kv, n, t, d).reshape(b, kv * n, t, d)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            h, hd = cfg["hidden"], cfg["head_dim"]
            self.nh, self.nkv, self.hd = cfg["heads"], cfg["kv_heads"], hd
            self.q_proj = nn.Linear(h, self.nh * hd, bias=False, **kw)
            self.k_proj = nn.Linear(h, self.nkv * hd, bias=False, **kw)
            self.v_proj = nn.Linear(h, self.nkv * hd, bias=False, **kw)
            self.o_proj = nn.Linear(self.nh * hd, h, bias=False, **kw)

        def forward(self, x, cos, sin, mask):
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, self.nh, self.hd).transpose(1, 2)
            k = self.k_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
            v = self.v_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = repeat_kv(k, self.nh // self.nkv), repeat_kv(v, self.nh // self.nkv)
            if attn == "sdpa":
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # transformers' eager_attention_forward
                w = torch.matmul(q, k.transpose(2, 3)) * self.hd ** -0.5 + mask
                o = torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype), v)
            return self.o_proj(o.transpose(1, 2).reshape(b, t, self.nh * self.hd))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            h, i = cfg["hidden"], cfg["inter"]
            self.gate_proj = nn.Linear(h, i, bias=False, **kw)
            self.up_proj = nn.Linear(h, i, bias=False, **kw)
            self.down_proj = nn.Linear(i, h, bias=False, **kw)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm(cfg["hidden"])
            self.self_attn = Attention()
            self.post_attention_layernorm = RMSNorm(cfg["hidden"])
            self.mlp = MLP()

        def forward(self, x, cos, sin, mask):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg["vocab"], cfg["hidden"], **kw)
            one = DecoderLayer() if shared else None
            self.layers = nn.ModuleList(one if shared else DecoderLayer() for _ in range(cfg["layers"]))
            self.norm = RMSNorm(cfg["hidden"])
            hd = cfg["head_dim"]
            self.inv_freq = 1.0 / (cfg["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32, device=dev) / hd))

        def forward(self, ids):
            b, t = ids.shape
            dt = self.embed_tokens.weight.dtype
            freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos()[None, None].to(dt), emb.sin()[None, None].to(dt)
            mask = None
            if attn == "manual":
                mask = torch.full((t, t), torch.finfo(dt).min, dtype=dt, device=ids.device).triu(1)[None, None]
            x = self.embed_tokens(ids)
            hidden = [x]
            for layer in self.layers:
                x = layer(x, cos, sin, mask)
                hidden.append(x)
            return hidden

    return Llama()


def build_transformers(torch, cfg, dev, dtype, attn):
    from transformers import LlamaConfig, LlamaModel
    config = LlamaConfig(hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                         num_key_value_heads=cfg["kv_heads"], intermediate_size=cfg["inter"], vocab_size=cfg["vocab"],
                         rope_theta=cfg["theta"], rms_norm_eps=RMS_EPS, max_position_embeddings=max(4096, cfg.get("seq", 0)),
                         tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
    config._attn_implementation = "eager" if attn == "manual" else "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in the dtype, not converted later
    try:
        with torch.device(dev):
            model = LlamaModel(config)
    finally:
        torch.set_default_dtype(previous)
    states = []
    model.embed_tokens.register_forward_hook(lambda _m, _i, out: states.append(out))
    for layer in model.layers:  # each decoder layer's output residual, before the final norm
        layer.register_forward_hook(lambda _m, _i, out: states.append(out[0] if isinstance(out, tuple) else out))

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.embed_tokens = model.embed_tokens
            self.norm = model.norm

        def forward(self, ids):
            states.clear()
            self.model(input_ids=ids, use_cache=False)  # runs the final norm too, as the authors' pass does
            return list(states)

    return Wrapped()


def init_weights(torch, model, seed, shared, dev):
    """normal(0, 0.02), norm weights 1; each tensor from a generator seeded by its name, so the
    two implementations get the same values (with shared weights, every layer the same)."""
    import re
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
                continue
            key = re.sub(r"layers\.\d+\.", "layers.*.", name) if shared else name
            key = re.sub(r"^model\.", "", key)
            g = torch.Generator(device=dev)
            g.manual_seed((seed * 1000003 + zlib.crc32(key.encode())) & 0x7FFFFFFF)
            p.normal_(0.0, WEIGHT_STD, generator=g)


def block_influence(torch, hidden, mode, batch):
    """Per layer, 1 - mean cos(h_i, h_{i+1}) over every token of every sequence (NaN -> 0.5)."""
    bis = []
    for a, b in zip(hidden[:-1], hidden[1:]):
        if mode == "ref":  # the authors' block_influence, one sequence at a time
            sims = []
            for s in range(batch):
                x, y = a[s], b[s]
                sim = (x @ y.T) / (x.norm(dim=-1, keepdim=True) * y.norm(dim=-1, keepdim=True))
                sims.append(sim.diagonal().nan_to_num(nan=0.5).float())
            sim = torch.cat(sims)
        else:
            x = a.reshape(-1, a.shape[-1]).float()
            y = b.reshape(-1, b.shape[-1]).float()
            sim = ((x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))).nan_to_num(nan=0.5)
        bis.append((1 - sim).mean().item())
    return bis


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    if args.attn == "sdpa" and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        raise SystemExit(f"torch_peer: --attn sdpa needs PyTorch >= 2.0 (this is {torch.__version__}); use --attn manual")
    dev = torch.device(args.device)
    dtype = getattr(torch, DTYPE_NAMES[args.dtype])
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(args.threads)
    cfg = shape_config(args)
    cfg["seq"] = args.seq
    shared = args.layer_weights == "shared"

    t0 = time.perf_counter()
    with torch.no_grad():
        if args.impl == "own":
            model = build_own(torch, cfg, dev, dtype, args.attn, shared)
        else:
            model = build_transformers(torch, cfg, dev, dtype, args.attn)
        model.eval()
        init_weights(torch, model, args.seed, shared, dev)
    sync()
    init_s = time.perf_counter() - t0
    params = list(model.parameters())  # deduplicated: a shared layer counts once
    wrong = sorted({str(p.dtype) for p in params} - {str(dtype)})
    if wrong:
        raise SystemExit(f"torch_peer: parameters in {wrong}, not {dtype}: the model was not built in --dtype {args.dtype}")
    param_bytes = sum(p.numel() * p.element_size() for p in params)

    g = torch.Generator(device=dev)
    g.manual_seed(args.seed + 1)
    ids = torch.randint(0, cfg["vocab"], (args.batch, args.seq), device=dev, generator=g)
    ntok = args.batch * args.seq
    flops = flops_per_pass(cfg, args.batch, args.seq)
    blas = torch.__config__.show()
    blas = blas.split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in blas else "?"
    print(json.dumps(dict(event="config", torch=torch.__version__, impl=args.impl, threads=torch.get_num_threads(), device=str(dev),
                          dtype=args.dtype, param_dtype=str(params[0].dtype).replace("torch.", ""), param_bytes=param_bytes,
                          shape=args.shape, layers=cfg["layers"], batch=args.batch, seq=args.seq, attn=args.attn,
                          layer_weights=args.layer_weights, lm_head=args.lm_head, bi=args.bi, init_s=round(init_s, 2),
                          gflop_per_pass=round(flops / 1e9, 3), blas=blas)), flush=True)

    times, bis = [], []
    with torch.inference_mode():
        for r in range(args.warmup + args.runs):
            sync()
            t0 = time.perf_counter()
            hidden = model(ids)
            x = model.norm(hidden[-1]) if args.impl == "own" else None  # transformers' LlamaModel ran its norm itself
            if args.lm_head != "none":
                x = model.norm(hidden[-1]) if x is None else x
                x = x[:, -1:] if args.lm_head == "last" else x
                _ = x @ model.embed_tokens.weight.T  # tied lm_head
            bis = block_influence(torch, hidden, args.bi, args.batch)
            sync()
            dt = time.perf_counter() - t0
            del hidden, x
            if r >= args.warmup:
                times.append(dt)
                print(json.dumps(dict(event="run", run=r - args.warmup, seconds=round(dt, 4), tok_s=round(ntok / dt, 2),
                                      gflops=round(flops / dt / 1e9, 2), bi_first3=[round(v, 6) for v in bis[:3]])), flush=True)
    tok = sorted(ntok / t for t in times)
    med = statistics.median(tok)
    print(json.dumps(dict(event="summary", shape=args.shape, layers=cfg["layers"], batch=args.batch, seq=args.seq, device=str(dev),
                          dtype=args.dtype, impl=args.impl, torch=torch.__version__, threads=args.threads, attn=args.attn,
                          lm_head=args.lm_head, runs=args.runs, tok_s_median=round(med, 2), tok_s_min=round(tok[0], 2),
                          tok_s_max=round(tok[-1], 2), gflops_median=round(med * flops / ntok / 1e9, 2),
                          bi=[round(v, 7) for v in bis])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
