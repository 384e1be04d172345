"""Bilinear resizing as matrix products, with the weights of `tf.image.resize` (half-pixel
centres, clamped edges, no antialiasing), for any array library: NumPy on the host (the
Grain pipeline), jax.numpy on the device (`on_device.resize_windows`)."""

import numpy as np


def interpolation_matrix(side, size: int, padded: int, xp=np):
  """`(size, padded)` weights that resize the first `side` of `padded` samples to `size`."""
  x = (xp.arange(size, dtype=xp.float32) + 0.5) * (side / size) - 0.5
  x = xp.clip(x, 0.0, side - 1.0)
  low = xp.floor(x)
  frac = (x - low)[:, None]
  high = xp.minimum(low + 1, side - 1)
  grid = xp.arange(padded, dtype=xp.float32)[None]
  return (1 - frac) * (grid == low[:, None]) + frac * (grid == high[:, None])


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """float32 `(T, height, width, C)` from `(T, H, W, C)` frames (NumPy)."""
  rows = interpolation_matrix(frames.shape[1], height, frames.shape[1])
  cols = interpolation_matrix(frames.shape[2], width, frames.shape[2])
  out = np.einsum("yh,thwc->tywc", rows, frames.astype(np.float32), optimize=True)
  return np.einsum("xw,tywc->tyxc", cols, out, optimize=True)
