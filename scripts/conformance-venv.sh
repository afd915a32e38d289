#!/usr/bin/env bash
# Creates (once) the Python virtual environment the transformers conformance suite runs in
# (test/conformance/), and prints its python's path on stdout; progress goes to stderr. It also
# holds lm-evaluation-harness (LM_EVAL_PIN) for test/conformance/lm-eval.test.ts: a venv cached
# from before that was added gets it installed into it (checked on every run, like the pins).
#
#   export SHORTGPT_TORCH_PYTHON="$(scripts/conformance-venv.sh)"
#
# The venv lives outside the clone, in ${XDG_CACHE_HOME:-~/.cache}/shortgpt-native/ (where
# test/conformance/torchPython.ts also looks), so CI runs on one machine share it; it is reused
# while it imports the pinned torch and transformers, and rebuilt otherwise. pip installs from the
# first local (file://) index pip is configured with, so it works with no network beyond a local
# mirror; SHORTGPT_PIP_INDEX_URL overrides that, and with neither pip uses its own default index.
# SHORTGPT_VENV_PYTHON picks the interpreter (default python3.11, else python3). Exits non-zero,
# saying why, if the venv cannot be made to work.
set -euo pipefail

TORCH_PIN=2.13.0+cpu
TRANSFORMERS_PIN=5.18.0
# lm_eval is installed --no-deps: its metric extras are not in the local mirror and not needed;
# what HFLM.loglikelihood and lm_eval.api.metrics import is listed in LM_EVAL_DEPS.
LM_EVAL_PIN=0.4.13
LM_EVAL_DEPS=(datasets accelerate more_itertools dill sacrebleu)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/shortgpt-native/venv-torch213-tf518"

log() { echo "conformance-venv: $*" >&2; }

venv_ok() {
  local have
  have=$("$venv/bin/python" -c 'import torch, transformers; print(torch.__version__, transformers.__version__)' 2>/dev/null) || return 1
  [ "$have" = "$TORCH_PIN $TRANSFORMERS_PIN" ]
}

lm_eval_ok() {
  "$venv/bin/python" - "$LM_EVAL_PIN" >/dev/null 2>&1 <<'PY'
import importlib.metadata as m, sys
assert m.version("lm_eval") == sys.argv[1]
import lm_eval.api.metrics, lm_eval.models.huggingface  # what scripts/lm_eval_check.py uses
PY
}

# pip arguments: with a local (file://) mirror configured, only that (an unreachable public index
# costs minutes of retries).
pip_args() {
  local index
  index="${SHORTGPT_PIP_INDEX_URL:-$("$venv/bin/pip" config list 2>/dev/null | grep -E '^[a-z:.-]*index-url=' | grep -o "file://[^ ']*" | head -n 1 || true)}"
  args=(--disable-pip-version-check --no-input)
  [ -n "$index" ] && args+=(--index-url "$index") && log "index: $index"
  return 0
}

mkdir -p "$(dirname "$venv")"
# Two CI runs on one machine must not build the same venv at once.
if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
fi

if ! venv_ok; then
  py="${SHORTGPT_VENV_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
  "${py:-false}" --version >/dev/null 2>&1 || { log "cannot run python '${py}' (set SHORTGPT_VENV_PYTHON to a Python 3 for the venv)"; exit 1; }
  log "creating $venv with $py ($("$py" --version 2>&1)): torch $TORCH_PIN, transformers $TRANSFORMERS_PIN"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip_args
  start=$SECONDS
  "$venv/bin/pip" install "${args[@]}" "torch==$TORCH_PIN" "transformers==$TRANSFORMERS_PIN" >&2 \
    || { log "pip install failed (see above)"; exit 1; }
  venv_ok || { log "$venv does not import torch $TORCH_PIN and transformers $TRANSFORMERS_PIN after installing"; exit 1; }
  log "installed in $((SECONDS - start)) s"
fi
if ! lm_eval_ok; then
  pip_args
  log "installing lm_eval $LM_EVAL_PIN (--no-deps) and ${LM_EVAL_DEPS[*]} into $venv"
  start=$SECONDS
  # The torch and transformers pins ride along so that no dependency moves them.
  "$venv/bin/pip" install "${args[@]}" "torch==$TORCH_PIN" "transformers==$TRANSFORMERS_PIN" "${LM_EVAL_DEPS[@]}" >&2 \
    && "$venv/bin/pip" install "${args[@]}" --no-deps "lm_eval==$LM_EVAL_PIN" >&2 \
    || { log "pip install of lm_eval failed (see above)"; exit 1; }
  lm_eval_ok || { log "$venv does not import lm_eval $LM_EVAL_PIN after installing"; exit 1; }
  venv_ok || { log "installing lm_eval changed torch or transformers in $venv"; exit 1; }
  log "installed in $((SECONDS - start)) s"
fi
echo "$venv/bin/python"
