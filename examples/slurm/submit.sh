#!/bin/bash
# Submits the scoring array (one task per shard) and the merge + prune job that waits for it.
# Usage: ./submit.sh   (settings in config.sh, or exported: MODEL=... SHARDS=16 ./submit.sh)
set -euo pipefail
cd "$(dirname "$0")"
source ./config.sh
array=$(sbatch --parsable --array="0-$((SHARDS - 1))" score-array.sbatch)
array=${array%%;*}
final=$(sbatch --parsable --dependency="afterok:${array}" merge-prune.sbatch)
echo "scoring: job array ${array} (${SHARDS} tasks); merge + prune: job ${final%%;*} after it"
