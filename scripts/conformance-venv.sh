#!/usr/bin/env bash
# Creates (once) the Python virtual environment the transformers conformance suite runs in
# (test/conformance/), and prints its python's path on stdout; progress goes to stderr.
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
venv="${XDG_CACHE_HOME:-$HOME/.cache}/shortgpt-native/venv-torch213-tf518"

log() { echo "conformance-venv: $*" >&2; }

venv_ok() {
  local have
  have=$("$venv/bin/python" -c 'import torch, transformers; print(torch.__version__, transformers.__version__)' 2>/dev/null) || return 1
  [ "$have" = "$TORCH_PIN $TRANSFORMERS_PIN" ]
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
  index="${SHORTGPT_PIP_INDEX_URL:-$("$venv/bin/pip" config list 2>/dev/null | grep -E '^[a-z:.-]*index-url=' | grep -o "file://[^ ']*" | head -n 1 || true)}"
  args=(--disable-pip-version-check --no-input)
  # An unreachable public index costs minutes of retries: with a local mirror, use only that.
  [ -n "$index" ] && args+=(--index-url "$index") && log "index: $index"
  start=$SECONDS
  "$venv/bin/pip" install "${args[@]}" "torch==$TORCH_PIN" "transformers==$TRANSFORMERS_PIN" >&2 \
    || { log "pip install failed (see above)"; exit 1; }
  venv_ok || { log "$venv does not import torch $TORCH_PIN and transformers $TRANSFORMERS_PIN after installing"; exit 1; }
  log "installed in $((SECONDS - start)) s"
fi
echo "$venv/bin/python"
