"""Writes small real video files with PyAV for the dataset tests."""

import os

import av
import numpy as np


def write_video(path, num_frames, height, width, fps=25, seed=0):
  """An H.264 video whose frame t darkens from left to right, with a level rising in t.

  Any crop of any frame is brighter in its left half, so a flip is always visible.
  """
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  with av.open(path, "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for t in range(num_frames):
      ramp = 150 * (1 - np.arange(width) / width)
      frame = np.broadcast_to(40 + 2 * t + ramp[None, :, None], (height, width, 3))
      frame = frame + rng.integers(0, 6, (height, width, 3))
      frame = np.clip(frame, 0, 255).astype(np.uint8)  # at most 235 for t < 20
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


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
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with av.open(path, "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path
