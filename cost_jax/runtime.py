"""Process start-up shared by the command-line tools: hosts, devices, TensorFlow."""

import os

import jax
from absl import logging

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


class _QuietLibraries:
  """Drops the INFO chatter of orbax and TFDS from absl's log; warnings still show."""

  def filter(self, record):
    noisy = any(s in record.pathname for s in ("/orbax/", "/tensorflow_datasets/"))
    return not (noisy and record.levelno < 30)


def prepare():
  """Keeps TensorFlow off the accelerators and joins a multi-host job when in one."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
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
