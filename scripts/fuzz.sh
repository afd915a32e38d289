#!/usr/bin/env bash
# Coverage-guided fuzzing of the checkpoint parsers (safetensors header, shard index, config.json)
# for a bounded time; options and what happens to findings: test/fuzz/run.ts. CI: .ci/run.
#   scripts/fuzz.sh [--seconds 60] [--targets safetensors,shard-index,config] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."
exec node -r ./test/prune/helpers/tsRequire.js test/fuzz/run.ts "$@"
