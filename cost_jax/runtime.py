"""Process start-up: XLA's CPU flags (on import of `cost_jax`, see `set_xla_cpu_flags`),
and for the command-line tools hosts, devices and TensorFlow (`prepare`)."""

import ctypes
import importlib.metadata
import os
import re

import jax
from absl import logging

# XLA:CPU settings that measure faster (docs/performance.md): convolutions through XLA's
# own (Eigen) kernels instead of YNNPACK, which on the project's 2-core CPU took 1.4x to
# 1.5x their time for the 2-D convolutions that `conv_impl='2d'` runs.
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
# The jaxlib releases checked to know these flags: XLA ends the process at start-up on a
# flag it does not know, so other releases get none of them.
_FLAGS_CHECKED = ((0, 10, 2), (0, 12, 0))


# mallopt's parameters (malloc.h).
_MALLOPT = {"trim_threshold": -1, "mmap_threshold": -3, "mmap_max": -4}
# JAX's environment variable for CPU dispatch: when set, the choice stays the user's.
_ASYNC_DISPATCH_ENV = "JAX_CPU_ENABLE_ASYNC_DISPATCH"


def keep_freed_memory(environ=os.environ) -> bool:
  """Makes glibc's malloc keep the memory the process frees, for large blocks too, and
  reuse it.

  By default every block over 32 MB (an activation of a training step, a decoded video)
  is mapped afresh and returned at once, and freed memory at the top of the heap goes
  back to the system, so each use pays a page fault and a zeroed page per 4 KB: on the
  2-core CPU, `x * 2 + 1` of a 51 MB array took 17.7 ms with fresh pages and 4.3 ms
  reusing them. Large blocks come from the heap instead, and freed memory stays with the
  process (trimming off, `mallopt(M_TRIM_THRESHOLD, -1)`), so it holds its peak memory.
  A `MALLOC_MMAP_MAX_` or `MALLOC_TRIM_THRESHOLD_` that the user set keeps precedence.
  Returns whether the setting was made (glibc only)."""
  if _user_set_malloc(environ):
    return False
  return set_malloc(mmap_max=0, trim_threshold=-1)


def _user_set_malloc(environ) -> bool:
  return "MALLOC_MMAP_MAX_" in environ or "MALLOC_TRIM_THRESHOLD_" in environ


def malloc_environ(environ=os.environ) -> dict[str, str]:
  """The environment that gives a child process (not importing `cost_jax`) the malloc
  settings of `keep_freed_memory`, or the user's `MALLOC_` variables where set."""
  if _user_set_malloc(environ):
    return {}
  # glibc reads these at start-up; a threshold past any heap stands for mallopt's -1.
  return {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**62)}


def set_malloc(**settings: int) -> bool:
  """glibc's `mallopt` for each of `trim_threshold`, `mmap_threshold`, `mmap_max`
  (bytes, or a count for `mmap_max`). Returns whether every setting was made (False
  without glibc, whose defaults then stay)."""
  try:
    mallopt = ctypes.CDLL(None).mallopt
  except (AttributeError, OSError):
    return False
  return all([bool(mallopt(_MALLOPT[name], value)) for name, value in settings.items()])


def run_steps_on_calling_thread(environ=os.environ) -> bool:
  """Runs CPU computations on the thread that calls them (`jax_cpu_enable_async_dispatch`
  off), unless `JAX_CPU_ENABLE_ASYNC_DISPATCH` is set. Must run before JAX starts its CPU
  backend.

  With asynchronous dispatch a train step runs on a thread of XLA's, whose malloc arena
  maps every block larger than its 64 MB heaps afresh (the step's 1.5 GB of temporary
  buffers for the R50 at 8x112^2, batch 8), so `keep_freed_memory` cannot keep it: the
  2-core CPU spent a sixth of its time in the kernel, faulting in and zeroing fresh
  pages. On the calling thread the step's buffers come from the main heap and are
  reused: the C2D train step took 0.84x its time (`docs/performance.md`). Python waits
  for each CPU computation instead of queueing the next; input pipelines prefetch on
  their own threads either way. GPU and TPU dispatch is unaffected. Returns whether the
  setting was made."""
  if _ASYNC_DISPATCH_ENV in environ:
    return False
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return True


def _jaxlib_version() -> tuple[int, ...]:
  try:
    text = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ()
  return tuple(int(v) for v in re.findall(r"\d+", text)[:3])


def set_xla_cpu_flags(environ=os.environ) -> list[str]:
  """Adds `CPU_XLA_FLAGS` to `XLA_FLAGS`, which XLA reads when JAX starts its backend
  (at the first computation, not at `import jax`), so it must run before that. A flag
  that `XLA_FLAGS` already sets keeps the user's value: to run with YNNPACK's
  convolutions, set `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=+individual_convolution`.
  They only change XLA's CPU backend, so GPU and TPU runs are unaffected. Returns the
  flags added."""
  low, high = _FLAGS_CHECKED
  if not low <= _jaxlib_version() < high:
    return []
  current = environ.get("XLA_FLAGS", "")
  added = [f for f in CPU_XLA_FLAGS if f.split("=")[0] not in current]
  if added:
    environ["XLA_FLAGS"] = " ".join([current] + added).strip()
  return added

# Any of these means the launcher started one process per host of a larger job.
_MULTIHOST_ENV = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS", "MEGASCALE_COORDINATOR_ADDRESS")


def _is_multihost() -> bool:
  if any(os.environ.get(k) for k in _MULTIHOST_ENV):
    return True
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  return "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def _distributed_args() -> dict:
  """Explicit coordinator, process count and id (e.g. from launch/gpu/train_slurm.sbatch);
  without them JAX detects the cluster (Cloud TPU, SLURM) by itself."""
  env = os.environ
  if not env.get("JAX_COORDINATOR_ADDRESS") or "JAX_PROCESS_ID" not in env:
    return {}
  return {"coordinator_address": env["JAX_COORDINATOR_ADDRESS"],
          "num_processes": int(env["JAX_NUM_PROCESSES"]),
          "process_id": int(env["JAX_PROCESS_ID"])}


# Warnings TFDS logs about itself on every first build, which name nothing a user can
# change: its Video feature reads its own deprecated `FeatureConnector.dtype`, and a
# dataset folder being built has no dataset_info.json yet.
_TFDS_SELF_NOTICES = ("`FeatureConnector.dtype` is deprecated", "has no dataset_info.json")


class _QuietLibraries:
  """Drops the INFO chatter of JAX's backend probing, orbax and TFDS from absl's log, and
  TFDS's notices about itself; their other warnings still show."""

  def filter(self, record):
    noisy = any(s in record.pathname for s in ("/orbax/", "/tensorflow_datasets/",
                                               "/jax/_src/xla_bridge"))
    if noisy and "/tensorflow_datasets/" in record.pathname and any(
        n in record.getMessage() for n in _TFDS_SELF_NOTICES):
      return False
    return not (noisy and record.levelno < 30)


def prepare():
  """Keeps TensorFlow off the accelerators and joins a multi-host job when in one."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # TensorFlow's C++ INFO lines (oneDNN notices) stay out unless the user asks for them.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  try:
    import tensorflow as tf
  except ImportError:
    pass  # the Grain input backend needs no TensorFlow
  else:
    # tf.data only needs the CPU; a TF that grabbed the GPU would starve JAX of memory.
    tf.config.set_visible_devices([], "GPU")
  if _is_multihost():
    jax.distributed.initialize(**_distributed_args())
  logging.info("process %d of %d, %d local / %d global devices (%s)", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(),
               jax.devices()[0].device_kind)
