#!/usr/bin/env bash
# Creates the TPU VM: ./launch/tpu/create.sh [--tpu-name=NAME --zone=ZONE
#   --accelerator-type=v4-32 --runtime-version=... --spot=1]
set -euo pipefail
# shellcheck source=launch/tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_flags "$@"

args=(--accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION")
if [[ "$SPOT" == 1 ]]; then args+=(--spot); fi
echo "creating $TPU_NAME ($ACCELERATOR_TYPE, $RUNTIME_VERSION, spot=$SPOT) in $ZONE"
tpu create "$TPU_NAME" "${args[@]}"
