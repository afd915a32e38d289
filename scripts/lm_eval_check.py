#!/usr/bin/env python3
"""Scores a multiple-choice task file with lm-evaluation-harness itself, for comparison with
`shortgpt-native eval MODEL --tasks FILE` (test/conformance/lm-eval.test.ts runs both).

    python scripts/lm_eval_check.py MODEL_DIR TASK.jsonl [--skip-layers 2,3] > harness.json

MODEL_DIR is a Hugging Face checkpoint folder (run offline: HF_HUB_OFFLINE=1 is set here);
TASK.jsonl holds {"context", "choices", "gold"} per line (the native task format). The requests
are what a harness `multiple_choice` task with the default target_delimiter " " builds:
(context, " " + choice) per choice, scored by HFLM(pretrained=MODEL_DIR).loglikelihood on the
CPU in float32; acc and acc_norm follow lm_eval/api/task.py process_results (argmax of the
loglikelihoods, and of loglikelihood / len(choice)), the standard errors
lm_eval.api.metrics.mean_stderr. --skip-layers deletes those decoder layers from the loaded
model (the harness then scores the pruned model). Prints one JSON document:
{"lm_eval": version, "items", "acc", "accStderr", "accNorm", "accNormStderr",
 "results": [{"loglikelihoods", "pred", "predNorm", "gold"}]}.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("task")
    ap.add_argument("--skip-layers", default="")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="float32", help="float32 (default, what a user runs) or float64")
    args = ap.parse_args()

    import importlib.metadata

    import numpy as np
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import mean_stderr
    from lm_eval.models.huggingface import HFLM

    torch.manual_seed(0)
    items = [json.loads(line) for line in open(args.task, encoding="utf-8") if line.strip()]
    lm = HFLM(pretrained=args.model, device="cpu", dtype=args.dtype, batch_size=args.batch_size)
    skip = sorted({int(x) for x in args.skip_layers.split(",") if x.strip()})
    if skip:
        layers = lm.model.model.layers
        kept = [layer for i, layer in enumerate(layers) if i not in skip]
        lm.model.model.layers = torch.nn.ModuleList(kept)
        for i, layer in enumerate(kept):  # attention caches index layers by position
            layer.self_attn.layer_idx = i
        lm.model.config.num_hidden_layers = len(kept)

    requests = []
    for i, item in enumerate(items):
        for j, choice in enumerate(item["choices"]):
            requests.append(Instance(request_type="loglikelihood", doc=item, arguments=(item["context"], " " + choice), idx=j, metadata=("task", i, 1)))
    outputs = lm.loglikelihood(requests, disable_tqdm=True)

    results, accs, norms = [], [], []
    k = 0
    for item in items:
        n = len(item["choices"])
        lls = np.array([float(ll) for ll, _ in outputs[k : k + n]])
        k += n
        completion_len = np.array([float(len(c)) for c in item["choices"]])
        pred = int(np.argmax(lls))
        pred_norm = int(np.argmax(lls / completion_len))
        gold = int(item["gold"])
        accs.append(1.0 if pred == gold else 0.0)
        norms.append(1.0 if pred_norm == gold else 0.0)
        results.append({"loglikelihoods": lls.tolist(), "pred": pred, "predNorm": pred_norm, "gold": gold})
    doc = {
        "lm_eval": importlib.metadata.version("lm_eval"),
        "items": len(items),
        "acc": float(np.mean(accs)),
        "accStderr": float(mean_stderr(accs)),
        "accNorm": float(np.mean(norms)),
        "accNormStderr": float(mean_stderr(norms)),
        "skipLayers": skip,
        "results": results,
    }
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
