"""Writes small real video files with PyAV for the dataset tests."""

import os

import av
import numpy as np

from cost_jax.data import video_io


def write_video(path, num_frames, height, width, fps=25, seed=0):
  """An H.264 video whose frame t darkens from left to right, with a level rising in t.

  Any crop of any frame is brighter in its left half, so a flip is always visible.
  """
  rng = np.random.default_rng(seed)
  ramp = 150 * (1 - np.arange(width) / width)
  frames = [np.broadcast_to(40 + 2 * t + ramp[None, :, None], (height, width, 3))
            + rng.integers(0, 6, (height, width, 3)) for t in range(num_frames)]
  # At most 235 for t < 20.
  return video_io.write_video(path, np.clip(frames, 0, 255).astype(np.uint8), fps)


def count_frames(path):
  """(frames, fps) as PyAV sees them, independently of cost_jax."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    return sum(1 for _ in container.decode(stream)), float(stream.average_rate)


def write_corrupt(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
  return path


def write_rendered(path, frames, fps=25):
  """Writes uint8 frames `(T, H, W, 3)` as an H.264 mp4."""
  return video_io.write_video(path, frames, fps)
