#!/usr/bin/env bash
# Settings shared by the Cloud TPU scripts. Each is an environment variable with the
# default below, or a flag of any script: --tpu-name=NAME sets TPU_NAME, and so on.
# Arguments after `--` go to `python -m cost_jax.main` (e.g. --config.model.variant=costa).

: "${TPU_NAME:=cost-jax}"                     # the TPU VM
: "${ZONE:=us-central2-b}"                    # a zone that has ACCELERATOR_TYPE
: "${ACCELERATOR_TYPE:=v4-8}"                 # v4-8 is one host; v4-32 is 4 hosts, ...
: "${RUNTIME_VERSION:=tpu-ubuntu2204-base}"   # the TPU VM software image
: "${SPOT:=0}"                                # 1: a spot (preemptible) VM
: "${PROJECT:=}"                              # '' uses gcloud's default project
: "${CONFIG:=configs/kinetics.py}"            # relative to the repository root
: "${WORKDIR:=}"                              # gs://BUCKET/runs/NAME: checkpoints, logs
: "${TFDS_DATA_DIR:=}"                        # gs://BUCKET/tensorflow_datasets
: "${REMOTE_DIR:=cost_jax}"                   # where the code goes on every worker
: "${JAX_TPU:=jax[tpu]}"                      # with requirements.txt, which bounds its version
: "${LOG_DIR:=logs}"                          # where logs.sh collects worker logs
: "${MAX_ATTEMPTS:=20}"                       # supervise.sh: VM creations at most
: "${RETRY_SECONDS:=60}"                      # supervise.sh: pause between attempts
: "${DELETE_WHEN_DONE:=1}"                    # supervise.sh: delete the VM at the end

SETTINGS=(TPU_NAME ZONE ACCELERATOR_TYPE RUNTIME_VERSION SPOT PROJECT CONFIG WORKDIR
          TFDS_DATA_DIR REMOTE_DIR JAX_TPU LOG_DIR MAX_ATTEMPTS RETRY_SECONDS
          DELETE_WHEN_DONE)
MAIN_ARGS=()

# Reads --name=value flags into the settings above; everything after `--` into MAIN_ARGS.
# shellcheck disable=SC2034  # MAIN_ARGS is read by the scripts that source this file
parse_flags() {
  while (($#)); do
    case "$1" in
      --) shift; MAIN_ARGS=("$@"); return ;;
      -h|--help)
        awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
        printf 'Settings (flag --lower-case-name=VALUE or environment variable):\n'
        for name in "${SETTINGS[@]}"; do printf '  %s=%s\n' "$name" "${!name}"; done
        exit 0 ;;
      --*=*)
        local key="${1%%=*}" value="${1#*=}"
        key="${key#--}"; key="${key//-/_}"; key="${key^^}"
        if [[ " ${SETTINGS[*]} " != *" $key "* ]]; then
          echo "unknown flag $1: see --help" >&2; exit 2
        fi
        printf -v "$key" '%s' "$value" ;;
      *) echo "unexpected argument $1: settings are --name=value; pass training flags" \
              "after --" >&2; exit 2 ;;
    esac
    shift
  done
}

tpu() {  # gcloud compute tpus tpu-vm SUBCOMMAND ... in the configured zone and project
  local sub="$1"; shift
  gcloud compute tpus tpu-vm "$sub" "$@" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"}
}

require_gcs() {  # every worker must see the same files: local paths would diverge
  local name="$1" value="${!1}"
  if [[ "$value" != gs://* ]]; then
    echo "$name must be a gs:// path that every TPU worker can reach (got '$value')" >&2
    exit 2
  fi
}

tpu_state() {  # READY, PREEMPTED, ...; empty when the VM does not exist
  tpu describe "$TPU_NAME" --format='value(state)' 2>/dev/null || true
}

num_workers() {
  local ips
  ips="$(tpu describe "$TPU_NAME" --format='value(networkEndpoints[].ipAddress)')"
  awk -F';' '{print NF}' <<<"$ips"
}

run_finished() {  # the run writes results.json after its final test
  gcloud storage ls "$WORKDIR/results.json" >/dev/null 2>&1
}
