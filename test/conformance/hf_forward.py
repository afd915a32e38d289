#!/usr/bin/env python3
"""Hugging Face transformers' float64 forward, for test/conformance/transformers.test.ts.

Reads one JSON request (a file named on the command line, or stdin), prints one JSON result on
stdout (everything else goes to stderr). One process serves every checkpoint of the suite, so
torch is imported once.

Request:
  {"threads": 1,
   "models": [{"id": "...", "dir": "/path/to/checkpoint",
               "sequences": [[token ids], ...],        # run one at a time (batch 1, no padding)
               "delete": [[1], [0, 2]],                # NLL with these layers deleted from model.layers
               "pruned": [{"dir": "/path/to/rewritten", "delete": [1, 3]}]}]}

Result, per model: for every decoder layer the per-token cosine/angle/relative-magnitude sums
between its input and output residual stream (forward hooks, before the final norm), the next-token
NLL of the whole model and of each `delete` variant, and for each `pruned` checkpoint what
from_pretrained reported while loading it and the largest |logit| difference against the original
with those layers deleted from model.layers.

The model is the real transformers class (AutoModelForCausalLM.from_pretrained, eager attention)
converted to float64 with model.to(torch.float64). Deleting layers keeps each kept layer's own
config.layer_types entry (see Deleted). transformers has no Baichuan class (Baichuan is
remote code), so Baichuan checkpoints go through `load_baichuan`: transformers' LlamaForCausalLM
with W_pack split into q/k/v, and Baichuan 2's NormHead (BaichuanForCausalLM: lm_head rows
L2-normalised before use) applied to lm_head; Baichuan 1 (BaiChuanForCausalLM) has a plain head.
"""
import json
import math
import os
import sys
import time


def main():
    started = time.time()
    request = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    # Whatever transformers prints must not corrupt the JSON on stdout.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    import torch
    import transformers

    imported = time.time()
    # One thread: the models are tiny, and spinning worker threads only slow a busy machine down.
    torch.set_num_threads(int(request.get("threads", 1)))
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    results = [run_model(torch, m) for m in request["models"]]
    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "seconds": time.time() - started,
        "importSeconds": imported - started,
        "models": results,
    }
    real_stdout.write(json.dumps(out))
    real_stdout.write("\n")


def read_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def is_baichuan(config):
    return config.get("model_type") == "baichuan"


def load(torch, model_dir):
    """(float64 model in eval mode, loader description, from_pretrained's loading info)."""
    config = read_config(model_dir)
    if is_baichuan(config):
        model, info = load_baichuan(torch, model_dir, config)
        loader = "LlamaForCausalLM + W_pack split" + (" + NormHead" if normalized_head(config) else "")
    else:
        from transformers import AutoModelForCausalLM

        # Eager experts too: transformers 5's default MoE kernel (grouped_mm) has no float64 path;
        # the eager one is MixtralExperts / Qwen3MoeExperts.forward as written in the modeling file.
        model, info = AutoModelForCausalLM.from_pretrained(
            model_dir, attn_implementation="eager", experts_implementation="eager", output_loading_info=True
        )
        loader = "AutoModelForCausalLM -> " + type(model).__name__
    model = model.to(torch.float64).eval()
    return model, loader, {k: sorted(str(x) for x in v) for k, v in info.items() if v}


def normalized_head(config):
    # Baichuan 2 7B's class is BaichuanForCausalLM (NormHead); Baichuan 1's is BaiChuanForCausalLM.
    return config.get("architectures", [""])[0] == "BaichuanForCausalLM"


def load_baichuan(torch, model_dir, config):
    """Baichuan 7B (1 and 2) as transformers' Llama: the same decoder (RMSNorm, RoPE theta 10000,
    SwiGLU, no biases), with the fused W_pack = [q; k; v] rows split into q_proj, k_proj, v_proj."""
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = config["num_attention_heads"]
    llama_config = LlamaConfig(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=heads,
        hidden_act=config.get("hidden_act", "silu"),
        max_position_embeddings=config.get("model_max_length", config.get("max_position_embeddings", 4096)),
        rms_norm_eps=config["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
    )
    model = LlamaForCausalLM(llama_config)
    state = {}
    for name in safetensors_files(model_dir):
        state.update(load_file(os.path.join(model_dir, name)))
    hidden = config["hidden_size"]
    converted = {}
    for name, tensor in state.items():
        if name.endswith(".self_attn.W_pack.weight"):
            prefix = name[: -len("W_pack.weight")]
            q, k, v = tensor.split(hidden, dim=0)
            converted[prefix + "q_proj.weight"] = q
            converted[prefix + "k_proj.weight"] = k
            converted[prefix + "v_proj.weight"] = v
        else:
            converted[name] = tensor
    model = model.to(torch.float64)
    converted = {k: v.to(torch.float64) for k, v in converted.items()}
    if normalized_head(config):
        # NormHead: F.normalize(weight) (rows to unit L2 norm), done once in eval mode.
        converted["lm_head.weight"] = torch.nn.functional.normalize(converted["lm_head.weight"])
    missing, unexpected = model.load_state_dict(converted, strict=False)
    # rotary inv_freq buffers are not persistent, so a complete checkpoint leaves nothing missing.
    return model, {"missing_keys": missing, "unexpected_keys": unexpected}


def safetensors_files(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


def decoder_layers(model):
    return model.model.layers


class LayerTaps:
    """Forward hooks on every decoder layer: the residual stream entering and leaving it."""

    def __init__(self, torch, layers):
        self.torch = torch
        self.inputs = {}
        self.outputs = {}
        self.handles = []
        for i, layer in enumerate(layers):
            self.handles.append(layer.register_forward_pre_hook(self.pre(i), with_kwargs=True))
            self.handles.append(layer.register_forward_hook(self.post(i), with_kwargs=True))

    def pre(self, i):
        def hook(_module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            self.inputs[i] = h.detach().clone()

        return hook

    def post(self, i):
        def hook(_module, _args, _kwargs, output):
            h = output[0] if isinstance(output, (tuple, list)) else output
            self.outputs[i] = h.detach().clone()

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def layer_sums(torch, a, b, sums):
    """Adds one sequence's per-token statistics between layer input a and output b ([T, hidden]).
    A cosine that is undefined (a zero state) counts as 0.5, as the ShortGPT authors' code does;
    the relative magnitude of an all-zero output is 0 when nothing changed, else 1."""
    dot = (a * b).sum(-1)
    na = (a * a).sum(-1)
    nb = (b * b).sum(-1)
    nd = ((b - a) ** 2).sum(-1)
    defined = (na > 0) & (nb > 0)
    cos = torch.where(defined, dot / torch.sqrt(torch.where(defined, na * nb, 1.0)), torch.full_like(dot, 0.5))
    angle = torch.acos(cos.clamp(-1.0, 1.0)) / math.pi
    relmag = torch.where(nb > 0, torch.sqrt(nd) / torch.sqrt(torch.where(nb > 0, nb, 1.0)), (nd > 0).to(dot.dtype))
    sums["sumCos"] += float(cos.sum())
    sums["sumAngular"] += float(angle.sum())
    sums["sumRelMag"] += float(relmag.sum())
    sums["nanCount"] += int((~defined).sum())
    sums["tokens"] += a.shape[0]


def logits_of(torch, model, seq):
    ids = torch.tensor([seq], dtype=torch.long)
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits[0].to(torch.float64)


def nll_of(torch, model, sequences):
    total = 0.0
    predictions = 0
    logits_sum = 0.0
    for seq in sequences:
        logits = logits_of(torch, model, seq)
        logits_sum += float(logits.sum())
        if len(seq) < 2:
            continue
        logp = torch.log_softmax(logits[:-1], dim=-1)
        target = torch.tensor(seq[1:], dtype=torch.long)
        total += float(-logp.gather(1, target[:, None]).sum())
        predictions += len(seq) - 1
    mean = total / predictions if predictions else float("nan")
    return {"sumNll": total, "predictions": predictions, "meanNll": mean,
            "perplexity": math.exp(mean) if predictions else float("nan"), "logitsSum": logits_sum}


class Deleted:
    """model.layers without the given indices, restored on exit.

    Models that pick a layer's attention mask and RoPE by position in model.layers from
    config.layer_types (Gemma 2/3, SmolLM3: `self.config.layer_types[i]` in the model's loop)
    get that list sliced the same way, so every kept layer keeps its own attention type: the
    original with those layers skipped, which is what the engine's skip and the rewrite compute.
    """

    def __init__(self, torch, model, delete):
        self.torch, self.model, self.delete = torch, model, set(delete)

    def __enter__(self):
        self.saved = decoder_layers(self.model)
        kept = [layer for i, layer in enumerate(self.saved) if i not in self.delete]
        self.model.model.layers = self.torch.nn.ModuleList(kept)
        config = self.model.model.config
        self.saved_types = getattr(config, "layer_types", None)
        if self.saved_types is not None and len(self.saved_types) == len(self.saved):
            config.layer_types = [t for i, t in enumerate(self.saved_types) if i not in self.delete]
        return self.model

    def __exit__(self, *exc):
        self.model.model.layers = self.saved
        if self.saved_types is not None:
            self.model.model.config.layer_types = self.saved_types


def run_model(torch, req):
    started = time.time()
    model, loader, info = load(torch, req["dir"])
    sequences = req["sequences"]
    layers = decoder_layers(model)
    result = {"id": req.get("id", req["dir"]), "loader": loader, "loadingInfo": info,
              "numHiddenLayers": len(layers), "dtypes": sorted({str(p.dtype) for p in model.parameters()})}

    taps = LayerTaps(torch, layers)
    sums = [{"tokens": 0, "sumCos": 0.0, "sumAngular": 0.0, "sumRelMag": 0.0, "nanCount": 0} for _ in layers]
    try:
        for seq in sequences:
            taps.inputs.clear()
            taps.outputs.clear()
            logits_of(torch, model, seq)
            for i in range(len(layers)):
                layer_sums(torch, taps.inputs[i][0], taps.outputs[i][0], sums[i])
    finally:
        taps.remove()
    result["layers"] = [
        dict(s, layer=i, blockInfluence=1 - s["sumCos"] / s["tokens"], angularDistance=s["sumAngular"] / s["tokens"],
             relativeMagnitude=s["sumRelMag"] / s["tokens"])
        for i, s in enumerate(sums)
    ]
    # The hooks saw the whole model: chained, each layer's input is the previous layer's output.
    result["nll"] = nll_of(torch, model, sequences)

    result["deleted"] = []
    for delete in req.get("delete", []):
        with Deleted(torch, model, delete):
            result["deleted"].append(dict(nll_of(torch, model, sequences), delete=delete))

    result["pruned"] = []
    for p in req.get("pruned", []):
        pruned, pruned_loader, pruned_info = load(torch, p["dir"])
        worst = 0.0
        scale = 0.0
        with Deleted(torch, model, p["delete"]):
            for seq in sequences:
                want = logits_of(torch, model, seq)
                got = logits_of(torch, pruned, seq)
                worst = max(worst, float((got - want).abs().max()))
                scale = max(scale, float(want.abs().max()))
        result["pruned"].append({
            "dir": p["dir"], "delete": p["delete"], "loader": pruned_loader, "loadingInfo": pruned_info,
            "numHiddenLayers": len(decoder_layers(pruned)), "configLayers": pruned.config.num_hidden_layers,
            "maxAbsLogitDiff": worst, "maxAbsLogit": scale,
        })
    result["seconds"] = time.time() - started
    return result


if __name__ == "__main__":
    main()
