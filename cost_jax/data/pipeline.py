"""The tf.data input pipeline: choose frame indices, decode only those JPEGs, augment.

The `tf_data` backend of `cost_jax.data.input` (which see for the Grain one); the choices
of frames, windows and flips are `sampling`'s. Three modes, driven by `config.dataset`
and `config.input` (see `configs/kinetics.py`):

  train       random window of `num_frames` frames every `frame_stride` (looping short
              videos), random short side in [min_resize, max_resize], random crop
              `crop_size`, optional horizontal flip; the same crop and flip for all frames.
  validation  one centred window, short side `eval_resize`, centre crop `crop_size`.
  test        `num_test_clips` windows spaced uniformly x `num_test_crops` (1: centre,
              3: left/centre/right along the long side) crops of `test_crop_size` after
              short side `test_crop_size`; one element per video with all its views.

Every element is a dict of numpy-able tensors: `video` uint8 pixels, `(T, H, W, 3)`
(train, validation) or `(V, T, H, W, 3)` (test, V = clips x crops), `label` int32;
train elements add `side` int32 when `resize_on_device` is on (below); evaluation
elements add `index` int32 (the video's position in the whole split, so views
and scores can be matched to videos) and `mask` float32 (0 marks padding, whose `index`
is -1). Batches are per host: `(local_batch, ...)`. Train randomness is a function of
(seed, host, epoch, position) only, so a run resumed at step s sees exactly the batches
an uninterrupted run would.

The last steps run on the accelerator inside the jitted steps (`cost_jax.data.on_device`):
the train crop's bilinear resize (with `config.input.resize_on_device`, the default) and
the normalisation with docs/design.md §3's mean and std. uint8 clips are a quarter of the
bytes of float32 ones to batch and to transfer, and the host is left with little beyond
JPEG decoding.
"""

import math

import jax
import tensorflow as tf
import tensorflow_datasets as tfds

from cost_jax.data import sampling

AUTOTUNE = tf.data.AUTOTUNE


# The clip choices (frames, windows, flips, crops) are `sampling`'s, shared with the
# Grain pipeline; here they run on tf tensors.
OPS = sampling.tf_ops()
# libjpeg's accurate integer IDCT: the pixels of PIL and simplejpeg (the Grain backend),
# where TensorFlow's default, a faster approximation, is off by about one level.
DCT = "INTEGER_ACCURATE"


def plain(fn):
  """`fn` for `Dataset.map` as written, without AutoGraph's conversion: the pipeline's
  functions are plain TensorFlow (no Python control flow on tensors), and converting
  them took 2.6 s of every training process's start-up on the 2-core CPU."""
  return tf.autograph.experimental.do_not_convert(fn)


# ---------------------------------------------------------------------------- decoding

def decode_frames(jpegs, indices):
  """uint8 `(len(indices), H, W, 3)`: decodes only the chosen frames."""
  chosen = tf.gather(jpegs, indices)
  return tf.map_fn(lambda f: tf.io.decode_jpeg(f, channels=3, dct_method=DCT), chosen,
                   fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def decode_window(jpegs, indices, y, x, size, out_size: int, resize: bool = True):
  """uint8 `(len(indices), s, s, 3)`: only the square window (y, x, size) of each chosen
  frame is decoded. With `resize`, or when the window is larger than `out_size`, it is
  then resized (bilinear) frame by frame to s = `out_size`, which keeps the float
  intermediate small enough to stay in cache; otherwise s = `size` (it is resized on
  the device, see `on_device.resize_windows`). Returns (frames, s)."""
  window = tf.stack([y, x, size, size])
  on_host = tf.logical_or(tf.constant(resize), size > out_size)
  needs_resize = tf.logical_and(on_host, size != out_size)  # e.g. validation at 256 -> 224

  def one(jpeg):
    frame = tf.io.decode_and_crop_jpeg(jpeg, window, channels=3, dct_method=DCT)
    return tf.cond(needs_resize,
                   lambda: to_uint8(tf.image.resize(frame, [out_size, out_size])),
                   lambda: frame)

  frames = tf.map_fn(one, tf.gather(jpegs, indices),
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
  return frames, tf.where(on_host, out_size, size)


def frame_shape(jpeg):
  """(height, width) of a JPEG frame, from its header."""
  hw = tf.io.extract_jpeg_shape(jpeg)
  return hw[0], hw[1]


# ---------------------------------------------------------------------------- augmenting

def resize_short_side(frames, size):
  """Resizes `(..., H, W, 3)` frames so that min(H, W) == size (bilinear, float32)."""
  shape = tf.shape(frames)
  new = sampling.short_side_shape(shape[-3], shape[-2], size, OPS)
  return tf.image.resize(frames, tf.stack(new), method="bilinear", antialias=False)


def spatial_crops(frames, size, num_crops):
  """1 centre crop, or 3 crops (start, centre, end along the long side): (C, T, s, s, 3)."""
  shape = tf.shape(frames)
  offsets = sampling.crop_offsets(shape[1], shape[2], size, num_crops, OPS)
  return tf.stack([frames[:, y:y + size, x:x + size] for y, x in offsets])


def to_uint8(frames):
  """Rounds resized float frames back to pixels: 4x fewer bytes to batch and transfer."""
  return tf.saturate_cast(frames + 0.5, tf.uint8)  # clamps, then truncates: rounds


# ---------------------------------------------------------------------------- per mode

def train_preprocess(example, seed, cfg, mirror=None):
  """One training clip `(T, crop, crop, 3)` from a raw example; `seed` is `[2]` int64;
  `mirror` (`sampling.flip_labels`, or None) the label of each class when flipped.

  Scaling the short side to a random size in [min_resize, max_resize] and then taking a
  random `crop_size` crop is done the cheap way round: the matching square of the source
  frames is decoded (only it) and resized to `crop_size`, in uint8 out. With
  `cfg.resize_on_device`, squares no larger than the crop are instead padded (zeros,
  bottom and right) to `crop_size` and their side is returned as `side` int32, for
  `on_device.model_input` to resize on the accelerator; larger ones are resized here
  (`side` = `crop_size`).
  """
  jpegs = example["video"]
  h, w = frame_shape(jpegs[0])
  u = tf.random.stateless_uniform([sampling.num_train_draws(cfg)], seed)
  clip = sampling.train_clip(tf.shape(jpegs)[0], h, w, u, cfg, OPS)
  on_device = cfg.resize_on_device
  frames, valid = decode_window(jpegs, clip.indices, clip.y, clip.x, clip.side,
                                cfg.crop_size, resize=not on_device)
  # Flipped before padding, so that the padding stays bottom right.
  frames = tf.cond(clip.flip, lambda: tf.reverse(frames, axis=[-2]), lambda: frames)
  pad = cfg.crop_size - valid
  frames = tf.pad(frames, [[0, 0], [0, pad], [0, pad], [0, 0]])
  frames = tf.ensure_shape(frames, [cfg.num_frames, cfg.crop_size, cfg.crop_size, 3])
  label = tf.cast(example["label"], tf.int32)
  if mirror is not None:
    label = tf.where(clip.flip, tf.gather(tf.constant(mirror, tf.int32), label), label)
  out = {"video": frames, "label": label}
  if on_device:
    out["side"] = tf.cast(valid, tf.int32)
  return out


def eval_preprocess(example, cfg):
  """The centred validation clip `(T, crop, crop, 3)`: short side `eval_resize`, centre
  crop, computed as a centred source window resized to `crop_size`."""
  jpegs = example["video"]
  h, w = frame_shape(jpegs[0])
  clip = sampling.validation_clip(tf.shape(jpegs)[0], h, w, cfg, OPS)
  frames, _ = decode_window(jpegs, clip.indices, clip.y, clip.x, clip.side, cfg.crop_size)
  frames = tf.ensure_shape(frames, [cfg.num_frames, cfg.crop_size, cfg.crop_size, 3])
  return {"video": frames, "label": tf.cast(example["label"], tf.int32)}


def test_preprocess(example, cfg):
  """All views of a video, `(clips * crops, T, s, s, 3)`, clip-major."""
  jpegs = example["video"]
  indices = tf.concat(sampling.test_indices(tf.shape(jpegs)[0], cfg, OPS), 0)
  frames = decode_frames(jpegs, indices)  # all clips' frames in one pass
  frames = resize_short_side(frames, cfg.test_crop_size)
  shape = tf.shape(frames)
  clips = tf.reshape(frames, [cfg.num_test_clips, cfg.num_frames, shape[1], shape[2], 3])
  views = tf.map_fn(lambda c: spatial_crops(c, cfg.test_crop_size, cfg.num_test_crops),
                    clips, fn_output_signature=tf.float32)
  views = tf.reshape(views, [cfg.num_test_clips * cfg.num_test_crops, cfg.num_frames,
                             cfg.test_crop_size, cfg.test_crop_size, 3])
  return {"video": to_uint8(views), "label": tf.cast(example["label"], tf.int32)}


# ---------------------------------------------------------------------------- datasets

class KeepJpegs(tfds.decode.SkipDecoding):
  """`SkipDecoding` of a video's frames without its per-frame identity `tf.map_fn` (which
  TFDS calls with a `dtype=` TensorFlow deprecates, and which copies every frame)."""

  def decode_batch_example(self, serialized_example):
    return serialized_example


def read_records(builder, split) -> tf.data.Dataset:
  """`{'video': JPEG strings (frames,), 'label'}` of `split` in a fixed order, undecoded."""
  return builder.as_dataset(
      split=split, shuffle_files=False, decoders={"video": KeepJpegs()},
      read_config=tfds.ReadConfig(interleave_cycle_length=1),
  ).map(plain(lambda ex: {"video": ex["video"], "label": ex["label"]}))


def _deterministic():
  options = tf.data.Options()
  options.deterministic = True
  return options


def train_dataset(dataset, config, local_batch: int, start_step: int = 0,
                  process_index: int | None = None, process_count: int | None = None,
                  shuffle_buffer: int = 1024) -> tf.data.Dataset:
  """Endless training batches `(local_batch, T, crop, crop, 3)` for this host.

  `dataset` is a `catalog.BuiltDataset`. Each epoch is this host's split in a fixed
  order, shuffled with a seed of (seed, host, epoch); clip randomness is seeded by (seed,
  host, epoch, position). `start_step` skips the batches already trained on, reading
  (not decoding) at most one epoch.
  """
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  part = dataset.host_split(config.dataset.train_split, index, count)
  per_epoch = part.num_examples
  consumed = start_step * local_batch
  first_epoch, offset = divmod(consumed, per_epoch)
  base = read_records(dataset.tfds_builder(), part.tfds_split)
  seed = config.seed

  def epoch(e):
    order_seed = tf.cast(seed * 1_000_003 + index * 7919 + e, tf.int64)
    ds = base.shuffle(min(shuffle_buffer, per_epoch), seed=order_seed,
                      reshuffle_each_iteration=False).enumerate()
    return ds.map(plain(lambda i, ex: (tf.stack([tf.cast(seed * 1000 + index, tf.int64),
                                                 e * (1 << 32) + i]), ex)))

  ds = tf.data.Dataset.range(first_epoch, 1 << 62).flat_map(plain(epoch)).skip(offset)
  mirror = sampling.flip_labels(config.input, dataset.class_names)
  ds = ds.map(plain(lambda s, ex: train_preprocess(ex, s, config.input, mirror)),
              num_parallel_calls=AUTOTUNE)
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(AUTOTUNE)
  return ds.with_options(_deterministic())


def eval_dataset(dataset, config, split: str, local_batch: int, mode: str = "validation",
                 process_index: int | None = None, process_count: int | None = None
                 ) -> tuple[tf.data.Dataset, int]:
  """One pass over `split` for this host, every example exactly once.

  The last batch is padded (`mask` 0) and every host yields the same number of batches,
  so a multi-host evaluation step runs in lockstep. Returns (dataset, num_batches).
  """
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  part = dataset.host_split(split, index, count)
  num_batches = max(1, math.ceil(part.max_host_examples / local_batch))
  preprocess = eval_preprocess if mode == "validation" else test_preprocess
  ds = read_records(dataset.tfds_builder(), part.tfds_split).enumerate(part.offset).map(
      plain(lambda i, ex: {**preprocess(ex, config.input), "index": tf.cast(i, tf.int32),
                           "mask": tf.constant(1.0)}), num_parallel_calls=AUTOTUNE)
  padding = tf.data.Dataset.from_tensors(
      {k: tf.zeros(s.shape, s.dtype) - (1 if k == "index" else 0)
       for k, s in ds.element_spec.items()})
  ds = ds.concatenate(padding.repeat(num_batches * local_batch - part.num_examples))
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(AUTOTUNE)
  return ds.with_options(_deterministic()), num_batches
