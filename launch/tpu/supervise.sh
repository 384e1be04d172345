#!/usr/bin/env bash
# Runs a training job to completion on a spot (or on-demand) TPU VM: creates the VM,
# installs the code, trains; when the VM is preempted it is deleted, created again, and
# training resumes from the last checkpoint in WORKDIR. Stops once WORKDIR/results.json
# exists, or after MAX_ATTEMPTS VM creations. Takes the flags of train.sh, e.g.
#   SPOT=1 WORKDIR=gs://B/runs/x TFDS_DATA_DIR=gs://B/tfds ./launch/tpu/supervise.sh \
#     --accelerator-type=v4-32 -- --config.model.variant=costb
set -euo pipefail
here="$(dirname "$0")"
# shellcheck source=launch/tpu/common.sh
source "$here/common.sh"
parse_flags "$@"
require_gcs WORKDIR
require_gcs TFDS_DATA_DIR
export "${SETTINGS[@]}"

created=0
runs=0
needs_setup=1
while ! run_finished; do
  if ((runs >= 2 * MAX_ATTEMPTS)); then
    echo "gave up after $runs training runs without results.json" >&2
    exit 1
  fi
  state="$(tpu_state)"
  if [[ "$state" != READY ]]; then
    if ((created >= MAX_ATTEMPTS)); then
      echo "gave up after $created VM creations; WORKDIR keeps the checkpoints" >&2
      exit 1
    fi
    if [[ -n "$state" ]]; then
      echo "$TPU_NAME is $state: deleting it to create it again"
      "$here/delete.sh"
    fi
    if ! "$here/create.sh"; then
      echo "creation failed (no capacity?); retrying in $RETRY_SECONDS s" >&2
      sleep "$RETRY_SECONDS"
      continue
    fi
    created=$((created + 1))
    needs_setup=1
  fi
  if ((needs_setup)); then
    "$here/setup.sh"
    needs_setup=0
  fi
  runs=$((runs + 1))
  if "$here/train.sh" -- "${MAIN_ARGS[@]}"; then
    continue  # the loop checks for results.json: a run stopped by SIGTERM resumes
  fi
  echo "training stopped with an error; checking the VM" >&2
  if [[ "$(tpu_state)" == READY ]]; then
    echo "the VM is healthy, so the job itself failed: see ./launch/tpu/logs.sh" >&2
    exit 1
  fi
done
echo "finished: $WORKDIR/results.json"
if [[ "$DELETE_WHEN_DONE" == 1 ]]; then "$here/delete.sh"; fi
