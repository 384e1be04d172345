"""The Grain input pipeline: no TensorFlow, for training machines that have only JAX.

Reads a dataset's ArrayRecord shards by random access (`grain.sources`), parses each
record (a serialized `tf.train.Example`, with TFDS's TensorFlow-free protobuf) and
decodes only the sampled JPEG frames with simplejpeg (libjpeg-turbo), in `workers`
processes. The clip choices are `sampling`'s, as in the tf.data pipeline, and so is every
element: `video` uint8 `(T, H, W, 3)` or `(V, T, H, W, 3)`, `label` int32, `side`
(train, `resize_on_device`), `index` and `mask` (evaluation); batches are per host.

Train element `i` of a host is a function of (seed, host, epoch, position) only: epoch
`i // n` visits the host's `n` examples in a permutation seeded by (seed, host, epoch),
and the clip's draws are seeded by (seed, host, epoch, position). So a run resumed at
step s starts at element `s * local_batch` and sees exactly what an uninterrupted run saw.
"""

import functools
import os

import grain
import numpy as np
from absl import flags
import simplejpeg
from tensorflow_datasets.proto import tf_example_pb2  # TFDS's copy: no TensorFlow

from cost_jax import runtime
from cost_jax.data import bilinear, sampling

_OPS = sampling.NUMPY


def parse(record: bytes) -> tuple[list[bytes], int]:
  """(JPEG frames, label) of one serialized example."""
  features = tf_example_pb2.Example.FromString(record).features.feature
  return list(features["video"].bytes_list.value), int(features["label"].int64_list.value[0])


def decode(jpegs: list[bytes], indices) -> dict[int, np.ndarray]:
  """uint8 `(H, W, 3)` frames by index, each chosen frame decoded once."""
  return {int(i): simplejpeg.decode_jpeg(jpegs[int(i)], colorspace="RGB")
          for i in dict.fromkeys(np.asarray(indices).tolist())}


def flip_width(frames: np.ndarray) -> np.ndarray:
  """`frames[..., ::-1, :]`, copied one channel at a time: numpy's copy of the whole
  reversed view runs an inner loop over the 3 channels, about 6x slower."""
  out = np.empty_like(frames)
  for c in range(frames.shape[-1]):
    out[..., c] = frames[..., ::-1, c]
  return out


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """Rounds resized float frames back to pixels, as the tf.data pipeline does."""
  return np.clip(frames + 0.5, 0, 255).astype(np.uint8)


def train_clip(jpegs, label, u, cfg, mirror=None) -> dict:
  """One training clip `(T, crop, crop, 3)` from a parsed example and uniform draws `u`
  (see `pipeline.train_preprocess`: windows no larger than the crop are padded and
  resized on the device with `resize_on_device`; a flipped clip takes the label
  `mirror[label]` when `mirror` is given)."""
  first = simplejpeg.decode_jpeg_header(jpegs[0])
  clip = sampling.train_clip(len(jpegs), first[0], first[1], u, cfg, _OPS)
  frames = decode(jpegs, clip.indices)
  y, x, side = int(clip.y), int(clip.x), int(clip.side)
  window = np.stack([frames[int(i)][y:y + side, x:x + side] for i in clip.indices])
  if clip.flip:
    window = flip_width(window)
    label = label if mirror is None else mirror[label]
  size = cfg.crop_size
  if not cfg.resize_on_device or side > size:
    window, side = (window if side == size else
                    to_uint8(bilinear.resize(window, size, size))), size
  pad = size - side
  video = np.pad(window, ((0, 0), (0, pad), (0, pad), (0, 0)))
  out = {"video": video, "label": np.int32(label)}
  if cfg.resize_on_device:
    out["side"] = np.int32(side)
  return out


def validation_clip(jpegs, label, cfg) -> dict:
  """The centred clip `(T, crop, crop, 3)`: short side `eval_resize`, centre crop."""
  first = simplejpeg.decode_jpeg_header(jpegs[0])
  clip = sampling.validation_clip(len(jpegs), first[0], first[1], cfg, _OPS)
  frames = decode(jpegs, clip.indices)
  y, x, side = int(clip.y), int(clip.x), int(clip.side)
  window = np.stack([frames[int(i)][y:y + side, x:x + side] for i in clip.indices])
  if side != cfg.crop_size:
    window = to_uint8(bilinear.resize(window, cfg.crop_size, cfg.crop_size))
  return {"video": window, "label": np.int32(label)}


def test_views(jpegs, cfg) -> np.ndarray:
  """All views of a video, uint8 `(clips * crops, T, s, s, 3)`, clip-major: every frame
  resized to short side s = `test_crop_size`, then 1 or 3 crops of s."""
  clips = sampling.test_indices(len(jpegs), cfg, _OPS)
  frames = decode(jpegs, np.concatenate(clips))
  h, w = next(iter(frames.values())).shape[:2]
  new_h, new_w = (int(v) for v in sampling.short_side_shape(h, w, cfg.test_crop_size, _OPS))
  size = cfg.test_crop_size
  offsets = sampling.crop_offsets(new_h, new_w, size, cfg.num_test_crops, _OPS)
  views = np.empty((len(clips) * len(offsets), len(clips[0]), size, size, 3), np.uint8)
  for c, indices in enumerate(clips):
    clip = np.stack([frames[int(i)] for i in indices])
    if (new_h, new_w) != (h, w):  # else the resize is the identity: skip its float copy
      clip = to_uint8(bilinear.resize(clip, new_h, new_w))
    for k, (y, x) in enumerate(offsets):
      views[c * len(offsets) + k] = clip[:, int(y):int(y) + size, int(x):int(x) + size]
  return views


class _Split:
  """Random access to this host's examples of a split; opened lazily in each worker."""

  def __init__(self, dataset, host):
    self._paths = [os.fspath(p) for p in dataset.shard_files(host.split)]
    self.start, self.size = host.start, host.num_examples

  @functools.cached_property
  def _source(self):
    return grain.sources.ArrayRecordDataSource(self._paths)

  def __getitem__(self, position: int) -> tuple[list[bytes], int]:
    return parse(self._source[self.start + position])

  def __getstate__(self):  # workers open their own readers
    return {k: v for k, v in self.__dict__.items() if k != "_source"}


class TrainElement:
  """Stream position -> training clip (see the module docstring)."""

  def __init__(self, split: _Split, cfg, seed: int, host: int, mirror=None):
    self.split, self.cfg, self.seed, self.host = split, cfg, seed, host
    self.mirror = mirror

  @functools.lru_cache(maxsize=2)
  def _order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, self.host, epoch]).permutation(self.split.size)

  def __call__(self, i: int) -> dict:
    epoch, position = divmod(int(i), self.split.size)
    jpegs, label = self.split[int(self._order(epoch)[position])]
    u = np.random.default_rng([self.seed, self.host, epoch, position]).random(
        sampling.num_train_draws(self.cfg))
    return train_clip(jpegs, label, u, self.cfg, self.mirror)


class EvalElement:
  """Position in this host's padded share -> validation clip or test views, with the
  video's `index` in the split and `mask` 1; padding has index -1 and mask 0."""

  def __init__(self, split: _Split, cfg, mode: str, offset: int):
    self.split, self.cfg, self.mode, self.offset = split, cfg, mode, offset

  def _shape(self):
    c = self.cfg
    if self.mode == "validation":
      return (c.num_frames, c.crop_size, c.crop_size, 3)
    return (c.num_test_clips * c.num_test_crops, c.num_frames, c.test_crop_size,
            c.test_crop_size, 3)

  def __call__(self, j: int) -> dict:
    j = int(j)
    if j >= self.split.size:
      return {"video": np.zeros(self._shape(), np.uint8), "label": np.int32(0),
              "index": np.int32(-1), "mask": np.float32(0)}
    jpegs, label = self.split[j]
    out = (validation_clip(jpegs, label, self.cfg) if self.mode == "validation" else
           {"video": test_views(jpegs, self.cfg), "label": np.int32(label)})
    return {**out, "index": np.int32(self.offset + j), "mask": np.float32(1)}


# glibc's malloc settings in the workers (bytes): blocks up to the first come from the
# heap instead of fresh mmaps, and up to the second of freed heap is kept, not returned.
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 512 << 20


def _keep_freed_memory(worker_index: int = 0, worker_count: int = 1):
  """Makes a worker reuse the memory of the records and frames it has freed.

  Each element allocates a whole record (MBs) and its decoded frames (0.25 MB each) and
  frees them; by default glibc maps large blocks afresh and returns freed heap at once,
  so every element pays page faults on new memory: on the 2-core VM of the data
  benchmark, reading one 3.4 MB record took 14.5 ms with the defaults, 2.0 ms with these.
  """
  del worker_index, worker_count
  runtime.set_malloc(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD)


def _loader(ds: "grain.MapDataset", workers: int):
  """Batches from worker processes (`workers` of them; 0: in this process)."""
  iterable = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
  if workers > 0:
    if not flags.FLAGS.is_parsed():  # Grain's workers read its absl flags (notebooks)
      flags.FLAGS.mark_as_parsed()
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers),
                                    worker_init_fn=_keep_freed_memory)
  return iterable


def workers(cfg) -> int:
  """`config.input.workers`, -1 meaning one per CPU core."""
  return os.cpu_count() or 1 if cfg.workers < 0 else cfg.workers


def train_batches(dataset, config, local_batch: int, host, process_index: int,
                  start_step: int = 0):
  """Endless `(local_batch, ...)` training batches of host `process_index`, whose share
  is `host` (a `catalog.HostSplit`), from the batch after `start_step` steps."""
  element = TrainElement(_Split(dataset, host), config.input, config.seed, process_index,
                         sampling.flip_labels(config.input, dataset.class_names))
  start = start_step * local_batch
  ds = grain.MapDataset.range(start, start + (1 << 40)).map(element).batch(
      local_batch, drop_remainder=True)
  return iter(_loader(ds, workers(config.input)))


def eval_batches(dataset, config, local_batch: int, host, mode: str, num_batches: int):
  """One pass over `host`'s share of a split, padded to `num_batches` batches."""
  element = EvalElement(_Split(dataset, host), config.input, mode, host.offset)
  ds = grain.MapDataset.range(num_batches * local_batch).map(element).batch(
      local_batch, drop_remainder=True)
  return iter(_loader(ds, workers(config.input)))
