"""Videos with PyAV: decode, resize the short side, resample fps, encode JPEG; write mp4.

Used by the dataset builders (in worker processes), `cost_jax.predict` and the notebook.
"""

import dataclasses
import fractions
import io
import math
import os

import av
import numpy as np
from etils import epath
from PIL import Image


class VideoError(Exception):
  """A video that cannot be used; the message says why."""


@dataclasses.dataclass
class DecodedVideo:
  frames: list            # JPEG bytes per frame, or uint8 (H, W, 3) arrays
  fps: float              # frames per second of `frames`
  source_fps: float
  height: int
  width: int


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
  """(h, w) with the short side equal to `short_side` and the aspect kept; 0 keeps size.

  Both sides are rounded to even numbers, which video codecs and JPEG chroma prefer.
  """
  if short_side <= 0:
    return height, width
  scale = short_side / min(height, width)
  even = lambda v: max(2, int(round(v * scale / 2)) * 2)
  return (short_side, even(width)) if height <= width else (even(height), short_side)


def decode_video(path, short_side: int = 256, fps: float = 0.0, jpeg_quality: int = 90,
                 encode: bool = True, max_frames: int = 0) -> DecodedVideo:
  """Decodes every frame of `path` (a file path or file object).

  Args:
    short_side: resize so that the shorter side has this many pixels (0: keep).
    fps: resample to this frame rate by picking the nearest frames (0: keep native).
    jpeg_quality: JPEG quality when `encode`.
    encode: return JPEG bytes (for datasets) or uint8 arrays (for prediction).
    max_frames: stop after this many output frames (0: no limit).
  Raises:
    VideoError: missing, empty, truncated to nothing, or undecodable.
  """
  if isinstance(path, (str, os.PathLike)) and "://" in str(path):
    try:  # gs:// and other remote paths: PyAV reads from a file object
      path = epath.Path(path).open("rb")
    except Exception as e:  # noqa: BLE001  gfile raises its own NotFoundError
      raise VideoError(f"cannot open: {e}") from e
  if isinstance(path, (str, os.PathLike)) and os.path.isfile(path) \
      and os.path.getsize(path) == 0:
    raise VideoError("empty file (0 bytes)")
  try:
    # Container and stream metadata (titles, encoder names) are often not UTF-8 in real
    # datasets (HMDB51): undecodable bytes are replaced, the pixels are unaffected.
    container = av.open(path, metadata_errors="replace")
  except FileNotFoundError as e:
    raise VideoError("missing file") from e
  except (av.error.FFmpegError, OSError, ValueError) as e:
    raise VideoError(f"cannot open: {e}") from e
  with container:
    if not container.streams.video:
      raise VideoError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate
    source_fps = float(rate) if rate else 0.0
    if source_fps <= 0:
      raise VideoError("unknown frame rate")
    out_fps = fps if fps > 0 else 0.0
    frames, size = [], None
    full = lambda: bool(max_frames) and len(frames) >= max_frames

    def emit(frame, until: float):
      """Fills the output slots k with k / out_fps < `until` (seconds) with `frame`;
      at the native rate, one slot."""
      count = 1 if not out_fps else math.ceil(until * out_fps - 1e-9) - len(frames)
      if count > 0:
        rgb = frame.to_ndarray(format="rgb24", height=size[0], width=size[1])
        frames.extend([encode_jpeg(rgb, jpeg_quality) if encode else rgb] * count)

    # Resampled, output slot k (time k / out_fps) takes the frame nearest in time: a
    # frame fills the slots before the midpoint between its timestamp and the next
    # frame's (the last frame, half a source frame beyond its own), so that variable
    # frame rates resample by their timestamps; at a constant rate it is the frame
    # nearest to k * source_fps / out_fps.
    pending, start = None, 0.0
    try:
      for n, frame in enumerate(container.decode(stream)):
        if size is None:
          size = resized_shape(frame.height, frame.width, short_side)
        t = frame.time if frame.time is not None else n / source_fps
        if pending is None:
          start = t
        else:
          emit(pending[0], (pending[1] + t) / 2 - start)
          if full():
            break
        pending = (frame, t)
    except (av.error.FFmpegError, OSError, ValueError) as e:
      if pending is None:
        raise VideoError(f"undecodable: {e}") from e
      # A truncated file: keep what decoded before the damage.
    if pending is not None and not full():
      emit(pending[0], pending[1] - start + 0.5 / source_fps)
    del frames[max_frames or len(frames):]
  if not frames:
    raise VideoError("no decodable frames")
  return DecodedVideo(frames, out_fps or source_fps, source_fps, size[0], size[1])


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
  """uint8 (H, W, 3) -> JPEG bytes."""
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def write_video(path, frames: np.ndarray, fps: float = 25) -> str:
  """Writes uint8 frames `(T, H, W, 3)` as an H.264 mp4 at `fps` (a local path)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with av.open(str(path), "w") as container:
    rate = fractions.Fraction(fps).limit_denominator(1001)
    stream = container.add_stream("libx264", rate=rate)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)
