"""Writes small real video files with PyAV for the dataset tests."""

import fractions
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
  with av.open(path, metadata_errors="replace") as container:
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


def _frames(num_frames, height, width, seed, step=6):
  """Frame t is `step` levels brighter than frame t - 1 (distinct after encoding)."""
  rng = np.random.default_rng(seed)
  ramp = 120 * (1 - np.arange(width) / width)
  return np.clip([np.broadcast_to(40 + step * t + ramp[None, :, None], (height, width, 3))
                  + rng.integers(0, 6, (height, width, 3)) for t in range(num_frames)],
                 0, 255).astype(np.uint8)


def write_encoded(path, num_frames, height, width, fps=25, seed=0, codec="mpeg4",
                  title=None, title_encoding="latin-1", times=None):
  """A video as other encoders write them: `codec` 'mpeg4' (MPEG-4 part 2, in .avi as
  UCF101 and HMDB51 ship) or 'libvpx-vp9' (in .webm, as Something-Something v2 ships),
  the container's title metadata written in `title_encoding` (latin-1 bytes are not
  UTF-8), and with `times` (seconds per frame) a variable frame rate."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  frames = _frames(num_frames, height, width, seed)
  rate = fractions.Fraction(fps).limit_denominator(1001)
  with av.open(str(path), "w", metadata_encoding=title_encoding) as container:
    if title is not None:
      container.metadata["title"] = title
    stream = container.add_stream(codec, rate=rate)
    stream.height, stream.width = height, width
    stream.pix_fmt = "yuv420p"
    if times is not None:
      stream.time_base = fractions.Fraction(1, 1000)
    for i, frame in enumerate(frames):
      video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
      if times is not None:
        video_frame.pts, video_frame.time_base = round(times[i] * 1000), stream.time_base
      for packet in stream.encode(video_frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)
