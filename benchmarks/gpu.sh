#!/usr/bin/env bash
# The GPU figures of docs/performance.md in one command, on a machine with an NVIDIA GPU:
# JAX (both convolution implementations, config.model.conv_impl 3d and 2d) and PyTorch
# side by side in one run (R50 at 8x224x224, bfloat16 compute, float32 parameters, batch
# 32 and the largest batch that fits), the model's FLOPs and the MFU, and the targets met or
# not; then JAX again with XLA_FLAGS=--xla_gpu_force_conv_nhwc (on Hopper XLA otherwise
# runs 3-D convolutions in NCDHW, transposing around each one).
#   ./benchmarks/gpu.sh [OUT_DIR]                  (default: docs/benchmarks)
# Needs jax[cuda12], flax, optax, orbax-checkpoint, ml-collections and a CUDA torch:
#   pip install 'jax[cuda12]' flax optax orbax-checkpoint ml-collections torch
# Writes, per run (eager: PyTorch eager; compiled: PyTorch through torch.compile; nhwc:
# JAX only, NHWC convolutions forced), OUT_DIR/bench_RUN.json (every figure), bench_RUN.md
# (the table and the targets) and bench_RUN.log. Settings (environment):
#   VARIANTS (c2d,c3d,c3d_full,costa,costb)  BATCH (32)  DTYPE (bfloat16)
#   CONV_IMPLS (3d,2d)
#   TORCH_COMPILE (1: PyTorch through torch.compile as well as eager; 0: eager only)
#   EXTRA (more flags for cost_jax.bench.model, e.g. --clip=8,112)
#   RUN_TIMEOUT (seconds per run, as timeout(1) takes them: a run cut short still gets
#     its report, of the networks it finished, and the script stops there)
#   DRY_RUN (1: check nothing, print the commands it would run)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/benchmarks}"
python="${PYTHON:-python3}"
variants="${VARIANTS:-c2d,c3d,c3d_full,costa,costb}"
batch="${BATCH:-32}"
dtype="${DTYPE:-bfloat16}"
torch_compile="${TORCH_COMPILE:-1}"
conv_impls="${CONV_IMPLS:-3d,2d}"
read -r -a extra <<< "${EXTRA:-}"
# JAX and PyTorch share the GPU, timed in turns: JAX allocates as it goes instead of
# taking 75% of the memory at start-up.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"

bench=("$python" -m cost_jax.bench.model --config=configs/kinetics.py
       "--variants=$variants" "--conv_impl=$conv_impls" "--batch=$batch" "--dtype=$dtype"
       --find_max_batch "${extra[@]}")
runs=("eager")
if [[ "$torch_compile" == 1 ]]; then runs+=("compiled"); fi
runs+=("nhwc")

# The flags of each run: PyTorch eager or compiled beside JAX; JAX alone with NHWC.
run_flags() {
  case "$1" in
    eager) echo "--torch" ;;
    compiled) echo "--torch --torch_compile" ;;
    nhwc) echo "" ;;
  esac
}
run_env() {
  if [[ "$1" == nhwc ]]; then
    echo "XLA_FLAGS=${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_force_conv_nhwc"
  fi
}

limit=()
if [[ -n "${RUN_TIMEOUT:-}" ]]; then limit=(timeout "$RUN_TIMEOUT"); fi

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  for run in "${runs[@]}"; do
    read -r -a flag <<< "$(run_flags "$run")"
    env_text="$(run_env "$run")"
    echo "${limit[*]:+${limit[*]} }${env_text:+$env_text }${bench[*]} ${flag[*]} --json=$out/bench_$run.json"
    echo "$python -m cost_jax.bench.report $out/bench_$run.json > $out/bench_$run.md"
  done
  exit 0
fi

missing="$("$python" - <<'EOF'
import importlib.util
names = ("jax", "flax", "optax", "orbax.checkpoint", "ml_collections", "torch")
print(" ".join(n for n in names if importlib.util.find_spec(n.split(".")[0]) is None))
EOF
)"
if [[ -n "$missing" ]]; then
  echo "benchmarks/gpu.sh: missing Python packages: $missing" >&2
  echo "  pip install 'jax[cuda12]' flax optax orbax-checkpoint ml-collections torch" >&2
  exit 2
fi
platform="$("$python" -c 'import jax; print(jax.devices()[0].platform)' 2>/dev/null || true)"
if [[ "$platform" != gpu ]]; then
  echo "benchmarks/gpu.sh: JAX sees no GPU (its devices are '${platform:-none}'): run it on" \
       "a machine with an NVIDIA GPU and jax[cuda12] installed" >&2
  exit 2
fi

mkdir -p "$out"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null \
          | head -n 1 || true)"
date="$(date -u +%Y-%m-%d)"
for run in "${runs[@]}"; do
  read -r -a flag <<< "$(run_flags "$run")"
  env_text="$(run_env "$run")"
  rm -f "$out/bench_$run.json"
  status=0
  "${limit[@]}" env ${env_text:+"$env_text"} "${bench[@]}" "${flag[@]}" \
    "--json=$out/bench_$run.json" 2>&1 | tee "$out/bench_$run.log" || status=$?
  # The benchmark rewrites its JSON after every network: a run cut short is reported too.
  if [[ -f "$out/bench_$run.json" ]]; then
    "$python" -m cost_jax.bench.report "$out/bench_$run.json" "--driver=$driver" \
      "--date=$date" > "$out/bench_$run.md"
    echo "-> $out/bench_$run.json, $out/bench_$run.md"
  fi
  if [[ "$status" != 0 ]]; then
    echo "benchmarks/gpu.sh: the $run run stopped with status $status" \
         "(124: RUN_TIMEOUT); its report holds the networks it finished" >&2
    exit "$status"
  fi
done
