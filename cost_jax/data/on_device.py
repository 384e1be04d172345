"""The last input steps, run on the accelerator inside the jitted train and evaluation
steps: the bilinear resize of the train crops that tf.data ships unresized
(`config.input.resize_on_device`) and the normalisation with docs/design.md §3's mean and std.

Pure JAX: no TensorFlow, so that what runs on a device (the steps of `cost_jax.steps`, the
model benchmark) imports without the tf.data stack.
"""

import jax
import jax.numpy as jnp

from cost_jax.data import bilinear


def normalize(video, mean, std):
  """uint8 pixels -> float32 `(x - mean) / std`; runs on the accelerator, inside the
  jitted train and evaluation steps (a JAX function, not a tf.data step)."""
  return (jnp.asarray(video, jnp.float32) - jnp.asarray(mean)) / jnp.asarray(std)


def resize_windows(video, side, size: int):
  """float32 `(B, T, size, size, 3)`: the top-left `side[b]` x `side[b]` square of each
  uint8 clip `(B, T, P, P, 3)` resized bilinearly to `size` (a JAX function).

  The train pipeline ships its crops unresized, padded to P, when they are no larger
  than the crop: the resize is two small matrix products per clip here, instead of the
  costliest host step (a third of the train pipeline's time on the 2-core CPU host of
  the measurement in docs/performance.md).
  """
  padded = video.shape[-2]
  m = jax.vmap(lambda s: bilinear.interpolation_matrix(s, size, padded, jnp))(
      jnp.asarray(side, jnp.float32))
  video = jnp.asarray(video, jnp.float32)
  hp = jax.lax.Precision.HIGHEST  # GPUs/TPUs would otherwise multiply in TF32/bf16
  rows = jnp.einsum("byp,btpqc->btyqc", m, video, precision=hp)
  return jnp.einsum("bxq,btyqc->btyxc", m, rows, precision=hp)


def model_input(batch, input_config):
  """The float32 clips a model sees, from a batch of any mode: train crops still to be
  resized (those with a `side`) are resized, then pixels are normalised."""
  video = batch["video"]
  if "side" in batch:
    video = resize_windows(video, batch["side"], input_config.crop_size)
  return normalize(video, input_config.mean, input_config.std)
