#!/usr/bin/env bash
# Starts training on every worker at once and streams their output; returns when the run
# ends, stops or fails. Each worker also appends to ~/cost_jax_train.log.
#   WORKDIR=gs://BUCKET/runs/r50_costb TFDS_DATA_DIR=gs://BUCKET/tensorflow_datasets \
#     ./launch/tpu/train.sh --config=configs/kinetics.py -- --config.model.variant=costb
set -euo pipefail
# shellcheck source=launch/tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_flags "$@"
require_gcs WORKDIR
require_gcs TFDS_DATA_DIR

main_args=""
for arg in "${MAIN_ARGS[@]}"; do main_args+=" $(printf '%q' "$arg")"; done
command="cd $REMOTE_DIR && TFDS_DATA_DIR=$TFDS_DATA_DIR python3 -m cost_jax.main \
--config=$CONFIG --workdir=$WORKDIR --config.dataset.data_dir=$TFDS_DATA_DIR$main_args \
2>&1 | tee -a ~/cost_jax_train.log; exit \${PIPESTATUS[0]}"
echo "training on every worker of $TPU_NAME: $CONFIG -> $WORKDIR"
tpu ssh "$TPU_NAME" --worker=all --command="$command"
