#!/usr/bin/env bash
# Copies this checkout (its committed HEAD) to every worker and installs it with JAX for
# TPU: ./launch/tpu/setup.sh [--tpu-name=NAME --zone=ZONE]
set -euo pipefail
# shellcheck source=launch/tpu/common.sh
source "$(dirname "$0")/common.sh"
parse_flags "$@"

repo="$(cd "$(dirname "$0")/../.." && pwd)"
archive="$(mktemp -t cost_jax.XXXXXX.tar.gz)"
trap 'rm -f "$archive"' EXIT
git -C "$repo" archive --format=tar.gz -o "$archive" HEAD
echo "copying $(git -C "$repo" rev-parse --short HEAD) to every worker of $TPU_NAME"
tpu scp "$archive" "$TPU_NAME:cost_jax.tar.gz" --worker=all
tpu ssh "$TPU_NAME" --worker=all --command="rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR \
&& tar -xzf cost_jax.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR \
&& python3 -m pip install -q -r requirements.txt '$JAX_TPU'"
