"""The clip sampling math, once for both input backends: which frames, which window of
each frame, whether to flip. Backend-free: every function takes `ops` (`NUMPY`, or
`tf_ops()` inside a tf.data graph) and, for random choices, uniform draws `u` in [0, 1)
that the backend makes from its own seeded generator.

Train: a window of `num_frames` frames every `frame_stride` starting anywhere it fits
(looping videos shorter than the window), a short side drawn from
[min_resize, max_resize], the square of the source frame that becomes a `crop_size`
crop at that scale, anywhere in the frame, flipped with probability 0.5. Validation: the
centred window and square. Test: `num_test_clips` windows spaced uniformly, and 1 or 3
crops (start, centre, end along the long side).
"""

import dataclasses

import numpy as np

NUM_TRAIN_DRAWS = 5  # start, short side, y, x, flip


class _NumpyOps:
  arange = staticmethod(lambda n: np.arange(n, dtype=np.int64))
  maximum, minimum = staticmethod(np.maximum), staticmethod(np.minimum)
  floor_int = staticmethod(lambda x: np.floor(x).astype(np.int64))
  round_int = staticmethod(lambda x: np.round(x).astype(np.int64))  # half to even
  to_float = staticmethod(lambda x: np.asarray(x, np.float64))
  to_int = staticmethod(lambda x: np.asarray(x, np.int64))
  stack = staticmethod(np.stack)


NUMPY = _NumpyOps()


def tf_ops():
  """The same operations on tf tensors (int32 and float32), for tf.data graphs."""
  import tensorflow as tf

  class _TfOps:
    arange = staticmethod(lambda n: tf.range(n, dtype=tf.int32))
    maximum, minimum = staticmethod(tf.maximum), staticmethod(tf.minimum)
    floor_int = staticmethod(lambda x: tf.cast(tf.floor(x), tf.int32))
    round_int = staticmethod(lambda x: tf.cast(tf.round(x), tf.int32))  # half to even
    to_float = staticmethod(lambda x: tf.cast(x, tf.float32))
    to_int = staticmethod(lambda x: tf.cast(x, tf.int32))
    stack = staticmethod(tf.stack)

  return _TfOps()


def span(num_frames: int, stride: int) -> int:
  """Frames a window covers, first to last."""
  return (num_frames - 1) * stride + 1


def window(num_video_frames, num_frames: int, stride: int, start, ops):
  """Indices of `num_frames` frames every `stride` from `start`, looping the video."""
  return (start + ops.arange(num_frames) * stride) % num_video_frames


def uniform_int(u, low, high, ops):
  """An integer in [low, high) from a uniform draw `u` in [0, 1)."""
  return low + ops.minimum(ops.floor_int(u * ops.to_float(high - low)), high - low - 1)


def random_start(num_video_frames, num_frames: int, stride: int, u, ops):
  """A uniformly random start such that the window fits when the video is long enough."""
  return uniform_int(u, 0, ops.maximum(num_video_frames - span(num_frames, stride) + 1, 1),
                     ops)


def centre_start(num_video_frames, num_frames: int, stride: int, ops):
  return ops.maximum((num_video_frames - span(num_frames, stride)) // 2, 0)


def uniform_starts(num_video_frames, num_clips: int, num_frames: int, stride: int, ops):
  """`num_clips` starts spaced uniformly over the video (first at 0, last at the end)."""
  last = ops.to_float(ops.maximum(num_video_frames - span(num_frames, stride), 0))
  if num_clips == 1:
    return ops.stack([ops.round_int(last / 2)])
  return ops.round_int(ops.to_float(ops.arange(num_clips)) * (last / (num_clips - 1)))


def window_side(height, width, short_side, crop_size: int, ops):
  """The side of the source square that becomes a `crop_size` crop once the frame's
  short side is scaled to `short_side` (at least 1, at most the short side)."""
  short = ops.minimum(height, width)
  side = ops.round_int(ops.to_float(crop_size * short) / ops.to_float(short_side))
  return ops.minimum(ops.maximum(side, 1), short)


@dataclasses.dataclass
class TrainClip:
  """Where one training clip comes from: frame indices `(T,)`, the square window
  `(y, x, side)` of each frame, and whether to flip it."""
  indices: object
  y: object
  x: object
  side: object
  flip: object


def train_clip(num_video_frames, height, width, u, cfg, ops) -> TrainClip:
  """The random choices of a training clip from `NUM_TRAIN_DRAWS` uniform draws `u`."""
  start = random_start(num_video_frames, cfg.num_frames, cfg.frame_stride, u[0], ops)
  low = max(cfg.min_resize, cfg.crop_size)
  short = uniform_int(u[1], low, max(cfg.max_resize, cfg.crop_size) + 1, ops)
  side = window_side(height, width, short, cfg.crop_size, ops)
  return TrainClip(window(num_video_frames, cfg.num_frames, cfg.frame_stride, start, ops),
                   uniform_int(u[2], 0, height - side + 1, ops),
                   uniform_int(u[3], 0, width - side + 1, ops), side,
                   u[4] < 0.5 if cfg.flip else u[4] < 0)


def validation_clip(num_video_frames, height, width, cfg, ops) -> TrainClip:
  """The centred clip: centred window, centred square for short side `eval_resize`."""
  start = centre_start(num_video_frames, cfg.num_frames, cfg.frame_stride, ops)
  side = window_side(height, width, max(cfg.eval_resize, cfg.crop_size), cfg.crop_size,
                     ops)
  return TrainClip(window(num_video_frames, cfg.num_frames, cfg.frame_stride, start, ops),
                   (height - side) // 2, (width - side) // 2, side, False)


def test_indices(num_video_frames, cfg, ops):
  """`(clips * T,)` frame indices of the test clips, clip-major."""
  starts = uniform_starts(num_video_frames, cfg.num_test_clips, cfg.num_frames,
                          cfg.frame_stride, ops)
  return [window(num_video_frames, cfg.num_frames, cfg.frame_stride, starts[c], ops)
          for c in range(cfg.num_test_clips)]


def crop_offsets(height, width, size: int, num_crops: int, ops):
  """[(y, x)] of 1 centre crop, or of 3 crops (start, centre, end along the long side),
  of `size` in a frame of `height` x `width`."""
  cy, cx = (height - size) // 2, (width - size) // 2
  if num_crops == 1:
    return [(cy, cx)]
  if num_crops != 3:
    raise ValueError(f"config.input.num_test_crops={num_crops}: must be 1 or 3")
  tall = ops.to_int(height > width)  # 1: the crops move along the height
  return [(cy * (1 - tall), cx * tall), (cy, cx),
          (tall * (height - size) + (1 - tall) * cy, tall * cx + (1 - tall) * (width - size))]


def short_side_shape(height, width, size: int, ops):
  """(h, w) with the short side scaled to `size`, rounded, never below `size`."""
  scale = ops.to_float(size) / ops.to_float(ops.minimum(height, width))
  return (ops.maximum(ops.round_int(ops.to_float(height) * scale), size),
          ops.maximum(ops.round_int(ops.to_float(width) * scale), size))
