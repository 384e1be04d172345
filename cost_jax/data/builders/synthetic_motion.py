"""`synthetic_motion`: clips whose class is only in the order of their frames.

Every video has three segments of `segment_frames` frames, each with one object on a
noisy background: a disc moving horizontally, a bar rotating, rings expanding or
contracting (the look of something approaching or receding). The class is the direction
of each: (right | left) x (clockwise | counter-clockwise) x (approaching | receding),
8 classes.

Every motion is periodic and continuous, with a uniformly random phase: the disc wraps
around the frame (a torus), the bar's angle goes round the circle, the rings are born at
the centre and leave at the rim. So each frame, and the set of frames of any sampled
clip, has the same distribution for every class: only the order of frames tells the
class, and a network that pools frames without regard to order cannot beat chance (1/8).
(Bounded motions leak: a growing square's smallest sizes only appear early in "approach"
clips, which a 2-D network learns; a size that cycles with jumps hides the direction.)
Horizontal flips change the class (right <-> left, cw <-> ccw): train with
`config.input.flip = False`.

Generated in-process: no files, no download; the `small` config builds in seconds.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from cost_jax.data.builders.common import video_features
from cost_jax.data.video_io import encode_jpeg

TRANSLATION = ("right", "left")
ROTATION = ("cw", "ccw")
SCALING = ("approach", "recede")
CLASS_NAMES = tuple(f"{t}_{r}_{s}" for t in TRANSLATION for r in ROTATION for s in SCALING)
FPS = 25.0


@dataclasses.dataclass
class SyntheticMotionConfig(tfds.core.BuilderConfig):
  num_train: int = 1024
  num_validation: int = 128
  num_test: int = 128
  size: int = 64              # frames are size x size pixels
  segment_frames: int = 8     # frames per segment; a video has 3 segments


def _grid(size):
  y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
  return y, x


def _segment_translation(rng, size, n, forward):
  """A disc moving horizontally, wrapping around the frame (a torus in x)."""
  y, x = _grid(size)
  r = rng.uniform(0.08, 0.12) * size
  step = rng.uniform(0.03, 0.05) * size * (1 if forward else -1)
  cy = rng.uniform(r, size - r)
  masks = []
  for cx in (rng.uniform(0, size) + step * np.arange(n)) % size:
    dx = np.abs(x - cx)
    dx = np.minimum(dx, size - dx)
    masks.append(dx ** 2 + (y - cy) ** 2 <= r ** 2)
  return masks


def _segment_rotation(rng, size, n, forward):
  y, x = _grid(size)
  half_len, half_width = rng.uniform(0.22, 0.3) * size, rng.uniform(0.04, 0.06) * size
  cy, cx = rng.uniform(half_len, size - half_len, 2)
  step = rng.uniform(np.pi / 16, np.pi / 10)
  # Clockwise on screen (y down) is increasing angle.
  angles = rng.uniform(0, 2 * np.pi) + step * np.arange(n)
  if not forward:
    angles = angles[::-1]
  masks = []
  for a in angles:
    u = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
    v = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
    masks.append((np.abs(u) <= half_len) & (np.abs(v) <= half_width))
  return masks


def _segment_scaling(rng, size, n, forward):
  """Concentric rings in a disc, expanding (approaching) or contracting (receding).

  Rings are born at the centre and leave at the rim, so the motion is periodic and
  continuous: the ring phase advances by under a quarter of the spacing per sampled frame
  (every 3rd), which keeps the direction free of aliasing.
  """
  y, x = _grid(size)
  outer = rng.uniform(0.25, 0.3) * size
  spacing = rng.uniform(0.22, 0.28) * size
  step = rng.uniform(0.018, 0.024) * size * (1 if forward else -1)  # pixels per frame
  cy, cx = rng.uniform(outer, size - outer, 2)
  radius = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
  offsets = rng.uniform(0, spacing) + step * np.arange(n)
  return [(radius <= outer) & (((radius - o) % spacing) < spacing / 2) for o in offsets]


def render_video(label: int, seed, size: int = 64, segment_frames: int = 8) -> np.ndarray:
  """The uint8 video `(3 * segment_frames, size, size, 3)` of class `label`."""
  rng = np.random.default_rng(seed)
  t, r, s = (label >> 2) & 1, (label >> 1) & 1, label & 1
  segments = (_segment_translation(rng, size, segment_frames, t == 0),
              _segment_rotation(rng, size, segment_frames, r == 0),
              _segment_scaling(rng, size, segment_frames, s == 0))
  frames = []
  for masks in segments:
    background = rng.uniform(20, 60, 3)
    colour = rng.uniform(150, 255, 3)
    for mask in masks:
      noise = rng.normal(0, 8, (size, size, 1))
      frame = np.where(mask[..., None], colour, background) + noise
      frames.append(np.clip(frame, 0, 255).astype(np.uint8))
  return np.stack(frames)


class SyntheticMotion(tfds.core.GeneratorBasedBuilder):
  """Order-only video classes, generated in-process (see the module docstring)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First version.",
                   "1.1.0": "Periodic, continuous motions: no order-free cue to the class."}
  BUILDER_CONFIGS = [
      SyntheticMotionConfig(name="small", description="1024/128/128 videos, 64x64"),
      SyntheticMotionConfig(name="tiny", description="64/16/24 videos, 32x32, for tests",
                            num_train=64, num_validation=16, num_test=24, size=32),
  ]

  def _info(self):
    return self.dataset_info_from_configs(
        features=video_features(CLASS_NAMES),
        metadata=tfds.core.MetadataDict(short_side=self.builder_config.size, fps=FPS),
        description=__doc__)

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    return {"train": self._generate_examples(0, c.num_train),
            "validation": self._generate_examples(1, c.num_validation),
            "test": self._generate_examples(2, c.num_test)}

  def _generate_examples(self, split_seed, count):
    c = self.builder_config
    for i in range(count):
      label = i % len(CLASS_NAMES)
      video = render_video(label, (split_seed, i), c.size, c.segment_frames)
      yield f"{split_seed}_{i}", {
          "video": [encode_jpeg(f) for f in video], "label": label,
          "class_name": CLASS_NAMES[label], "video_id": f"synthetic_{split_seed}_{i:06d}",
          "fps": FPS, "num_frames": len(video)}
