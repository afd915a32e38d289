# Settings shared by the Slurm scripts in this folder: edit, or export before `./submit.sh`.
# Every path must be on a filesystem all nodes see (the partials meet in PARTIALS).
MODEL="${MODEL:-/shared/models/Llama-3.1-70B}"      # a Hugging Face checkpoint directory
CALIB="${CALIB:-/shared/data/pg19-sample.txt}"       # calibration data (file or folder)
SHARDS="${SHARDS:-8}"                                # array tasks = shards of the windows
PARTIALS="${PARTIALS:-/shared/shortgpt/partials}"    # one partial-scores file per shard
SCORES="${SCORES:-/shared/shortgpt/scores.json}"     # the merged scores
OUT="${OUT:-/shared/models/Llama-3.1-70B-pruned}"    # the pruned checkpoint
REMOVE="${REMOVE:-20}"                               # layers to remove
# The data options must be identical in every shard (merge refuses partials that differ).
DATA_OPTIONS=(--samples 1024 --seq-len 2048 --seed 0)
# How tasks run the CLI: an installed package (npm install -g shortgpt-native) or npx.
SHORTGPT="${SHORTGPT:-npx --yes shortgpt-native}"
