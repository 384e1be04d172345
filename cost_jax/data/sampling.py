"""The clip sampling math, once for both input backends: which frames, which window of
each frame, whether to flip. Backend-free: every function takes `ops` (`NUMPY`, or
`tf_ops()` inside a tf.data graph) and, for random choices, uniform draws `u` in [0, 1)
that the backend makes from its own seeded generator.

Frames (`config.input.sampling`):
  "stride"    `num_frames` frames every `frame_stride` (the paper's 8 x 8): in training a
              window starting anywhere it fits (looping videos shorter than it); for
              validation the centred window; for the test `num_test_clips` windows
              spaced uniformly over the video.
  "segments"  the video cut into `num_frames` equal segments (TSN, TSM; the usual
              Something-Something v2 recipe): one random frame of each in training, the
              middle one for validation, and for the test clip c of `num_test_clips` the
              frame at (c + 1/2) / num_test_clips of every segment.
Space: in training a short side drawn from [min_resize, max_resize], the square of the
source frame that becomes a `crop_size` crop at that scale, anywhere in the frame,
flipped with probability 0.5 (`flip`; a flipped clip of a class whose name is its
mirror's, such as "... from left to right", takes the mirror class's label with
`mirror_classes`, see `mirror_labels`). Validation: the centred square. Test: 1 or 3
crops (start, centre, end along the long side).
"""

import dataclasses
import itertools
import re

import numpy as np
from absl import logging

SAMPLINGS = ("stride", "segments")
# What configs written before a field existed get.
DEFAULTS = {"sampling": "stride", "mirror_classes": False}
_SPATIAL_DRAWS = 5  # window start (stride sampling), short side, y, x, flip


def option(cfg, name: str):
  """`cfg.<name>` of `config.input`, or its default (`DEFAULTS`) in older configs."""
  return cfg[name] if name in cfg else DEFAULTS[name]


def num_train_draws(cfg) -> int:
  """How many uniform draws a training clip takes: the spatial ones, and one per frame
  with segment sampling."""
  return _SPATIAL_DRAWS + (cfg.num_frames if option(cfg, "sampling") == "segments" else 0)


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
  """The random choices of a training clip from `num_train_draws(cfg)` uniform draws `u`."""
  low = max(cfg.min_resize, cfg.crop_size)
  short = uniform_int(u[1], low, max(cfg.max_resize, cfg.crop_size) + 1, ops)
  side = window_side(height, width, short, cfg.crop_size, ops)
  return TrainClip(_frames_of(num_video_frames, cfg, ops, u=u),
                   uniform_int(u[2], 0, height - side + 1, ops),
                   uniform_int(u[3], 0, width - side + 1, ops), side,
                   u[4] < 0.5 if cfg.flip else u[4] < 0)


def validation_clip(num_video_frames, height, width, cfg, ops) -> TrainClip:
  """The centred clip: centred frames, centred square for short side `eval_resize`."""
  side = window_side(height, width, max(cfg.eval_resize, cfg.crop_size), cfg.crop_size,
                     ops)
  return TrainClip(_frames_of(num_video_frames, cfg, ops),
                   (height - side) // 2, (width - side) // 2, side, False)


def segment_frames(num_video_frames, num_segments: int, position, ops):
  """One frame of each of `num_segments` equal segments, at `position` (a draw in
  [0, 1) per segment, or one fraction for all) within each; short videos repeat frames."""
  n = ops.to_float(num_video_frames)
  offsets = (ops.to_float(ops.arange(num_segments)) + position) * (n / num_segments)
  return ops.minimum(ops.floor_int(offsets), num_video_frames - 1)


def _frames_of(num_video_frames, cfg, ops, u=None, clip: int = 0, num_clips: int = 0):
  """Frame indices `(T,)` for `cfg.sampling`: random in training (draws `u`), the
  centred clip for validation (`num_clips` 0), else test clip `clip` of `num_clips`."""
  t, stride = cfg.num_frames, cfg.frame_stride
  if option(cfg, "sampling") == "segments":
    position = (ops.to_float(u[_SPATIAL_DRAWS:]) if u is not None
                else (clip + 0.5) / max(num_clips, 1))
    return segment_frames(num_video_frames, t, position, ops)
  if u is not None:
    start = random_start(num_video_frames, t, stride, u[0], ops)
  elif not num_clips:
    start = centre_start(num_video_frames, t, stride, ops)
  else:
    start = uniform_starts(num_video_frames, num_clips, t, stride, ops)[clip]
  return window(num_video_frames, t, stride, start, ops)


def test_indices(num_video_frames, cfg, ops):
  """`(clips * T,)` frame indices of the test clips, clip-major."""
  return [_frames_of(num_video_frames, cfg, ops, clip=c, num_clips=cfg.num_test_clips)
          for c in range(cfg.num_test_clips)]


# Words whose meaning a horizontal flip turns into another's.
_MIRROR_WORDS = {"left": ("right",), "right": ("left",), "cw": ("ccw",), "ccw": ("cw",),
                 "clockwise": ("counterclockwise", "counter-clockwise", "anticlockwise",
                               "anti-clockwise"),
                 **{w: ("clockwise",) for w in ("counterclockwise", "counter-clockwise",
                                                "anticlockwise", "anti-clockwise")}}
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def _mirrored_names(name: str):
  """Every reading of `name` with its mirror words swapped (case kept)."""
  parts = _WORD.split(name)
  words = _WORD.findall(name)
  choices = []
  for w in words:
    swaps = _MIRROR_WORDS.get(w.lower())
    keep_case = lambda s, w=w: s.capitalize() if w[0].isupper() else s
    choices.append([keep_case(s) for s in swaps] if swaps else [w])
  for pick in itertools.product(*choices):
    yield "".join(p + w for p, w in zip(parts, pick + ("",)))


def flip_labels(cfg, class_names) -> np.ndarray | None:
  """The labels flipped training clips take (`mirror_labels`), when `cfg.flip` and
  `cfg.mirror_classes` are on and some class has a mirror; else None (labels stay)."""
  if not (cfg.flip and option(cfg, "mirror_classes")):
    return None
  mirror, unpaired = mirror_labels(class_names)
  if unpaired:
    logging.warning("flipped clips of %d classes keep their label, their mirror class "
                    "being missing: %s", len(unpaired), "; ".join(unpaired[:5]))
  return mirror if np.any(mirror != np.arange(len(mirror))) else None


def mirror_labels(class_names) -> tuple[np.ndarray, list[str]]:
  """(mirror `(C,)` int32, unpaired): the label a horizontally flipped clip of each class
  takes, and the classes whose name reads differently in a mirror but whose mirror class
  is missing (they keep their label). Found from the names alone: "Pushing something
  from left to right" <-> "Pushing something from right to left", `right_cw_approach` <->
  `left_ccw_approach`; classes without left, right, (counter-)clockwise map to themselves."""
  index = {n: i for i, n in enumerate(class_names)}
  mirror, unpaired = np.arange(len(class_names), dtype=np.int32), []
  for i, name in enumerate(class_names):
    readings = [m for m in _mirrored_names(name) if m != name]
    if not readings:
      continue
    found = next((index[m] for m in readings if m in index), None)
    if found is None:
      unpaired.append(name)
    else:
      mirror[i] = found
  return mirror, unpaired


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
