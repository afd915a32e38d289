#!/usr/bin/env bash
# Run HERE (the development machine) before scripts/gpu-check.sh runs on the GPU machine: copies
# what the check needs from ../shared into .gpu/ (ignored by git, ~1.1 MB), which the device
# call must name in `carry`. The GPU machine receives only this repository.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${SHORTGPT_SHARED:-$root/../shared}"
mkdir -p "$root/.gpu/stories260k" "$root/.gpu/golden"
cp "$shared/models/stories260k/config.json" "$shared/models/stories260k/model.safetensors" "$root/.gpu/stories260k/"
cp "$shared/golden/stories260k.json" "$shared/golden/stories260k-tokens.json" "$root/.gpu/golden/"
cp "$shared/peers/torch_peer.py" "$root/.gpu/"
du -sh "$root/.gpu"
echo "now: device run with carry [\".gpu\"] and command: bash scripts/gpu-check.sh"
