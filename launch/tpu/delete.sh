#!/usr/bin/env bash
# Deletes the TPU VM (checkpoints and logs stay in WORKDIR on Cloud Storage).
set -euo pipefail
# shellcheck source=launch/tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_flags "$@"

echo "deleting $TPU_NAME in $ZONE"
tpu delete "$TPU_NAME" --quiet
