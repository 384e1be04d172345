#!/usr/bin/env bash
# Trains on every GPU of one machine: one process drives them all (JAX sees each GPU as a
# device and shards the batch over them).
#   WORKDIR=/runs/r50_costb ./launch/gpu/train_single_node.sh -- --config.model.variant=costb
# Settings (environment): CONFIG (configs/kinetics.py), WORKDIR (required, local or gs://),
# TFDS_DATA_DIR (TFDS's default if unset), CUDA_VISIBLE_DEVICES (all GPUs if unset).
set -euo pipefail
: "${CONFIG:=configs/kinetics.py}"
: "${WORKDIR:?set WORKDIR to the run directory}"
if [[ "${1:-}" == "--" ]]; then shift; fi

cd "$(dirname "$0")/../.."
args=(--config="$CONFIG" --workdir="$WORKDIR")
if [[ -n "${TFDS_DATA_DIR:-}" ]]; then args+=(--config.dataset.data_dir="$TFDS_DATA_DIR"); fi
# Let XLA take most of the GPU memory up front; tf.data never touches the GPUs.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
exec python -m cost_jax.main "${args[@]}" "$@"
