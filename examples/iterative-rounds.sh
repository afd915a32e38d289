#!/bin/bash
# The iterative strategy (remove the least influential layer, re-score the shortened model,
# repeat) from sharded scoring, as rounds: each round scores the current model in SHARDS
# processes, merges the partials, and removes one layer with `prune --scores`, whose output is
# the next round's model. prune --strategy iterative does the same in one process; this loop is
# for models whose scoring must be spread out. Here the shards are local processes; on a cluster
# each round is one job array (examples/slurm) or Indexed Job (examples/k8s) plus the merge +
# prune step, and the next round is submitted when that finishes.
#
# Usage: iterative-rounds.sh MODEL CALIB ROUNDS SHARDS WORKDIR [score options, e.g. --samples 256]
# Prints the last round's model directory. --keep-first/--keep-last for prune go in PRUNE_OPTIONS
# (the same K each round: the first and last K layers stay the first and last K).
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 MODEL CALIB ROUNDS SHARDS WORKDIR [score options]" >&2
  exit 2
fi
model=$1 calib=$2 rounds=$3 shards=$4 work=$5
shift 5
SHORTGPT=${SHORTGPT:-npx --yes shortgpt-native}
read -r -a prune_options <<< "${PRUNE_OPTIONS:-}"
mkdir -p "$work"
for ((r = 1; r <= rounds; r++)); do
  pids=()
  for ((i = 0; i < shards; i++)); do
    $SHORTGPT score "$model" --calib "$calib" "$@" --shard "$i/$shards" \
      --partial "$work/round-$r-shard-$i.json" --quiet &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  $SHORTGPT merge "$work"/round-"$r"-shard-*.json --out "$work/round-$r-scores.json" --quiet > /dev/null
  $SHORTGPT prune "$model" --scores "$work/round-$r-scores.json" --remove 1 ${prune_options[@]+"${prune_options[@]}"} \
    --out "$work/round-$r" --quiet > /dev/null
  model="$work/round-$r"
done
echo "$model"
