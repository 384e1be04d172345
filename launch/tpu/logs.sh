#!/usr/bin/env bash
# Collects ~/cost_jax_train.log of every worker into LOG_DIR/TPU_NAME/worker-N.log.
set -euo pipefail
# shellcheck source=launch/tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_flags "$@"

n="$(num_workers)"
mkdir -p "$LOG_DIR/$TPU_NAME"
for ((w = 0; w < n; w++)); do
  tpu scp "$TPU_NAME:cost_jax_train.log" "$LOG_DIR/$TPU_NAME/worker-$w.log" --worker="$w"
done
echo "$n worker logs in $LOG_DIR/$TPU_NAME"
