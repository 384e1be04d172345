"""The tf.data input pipeline: choose frame indices, decode only those JPEGs, augment.

Three modes, driven by `config.dataset` and `config.input` (see `configs/kinetics.py`):

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
the normalisation with DESIGN section 3's mean and std. uint8 clips are a quarter of the
bytes of float32 ones to batch and to transfer, and the host is left with little beyond
JPEG decoding.
"""

import dataclasses
import math
import os

import jax
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors, multihost
from cost_jax.data import builders  # noqa: F401  (registers the builders)

AUTOTUNE = tf.data.AUTOTUNE


# ---------------------------------------------------------------------------- sampling

def sample_window(num_video_frames, num_frames: int, stride: int, start):
  """Indices of `num_frames` frames every `stride` from `start`, looping the video."""
  return (start + tf.range(num_frames) * stride) % num_video_frames


def random_start(num_video_frames, num_frames, stride, seed):
  """A uniformly random start such that the window fits when the video is long enough."""
  span = (num_frames - 1) * stride + 1
  high = tf.maximum(num_video_frames - span + 1, 1)
  return tf.random.stateless_uniform([], seed, 0, high, tf.int32)


def centre_start(num_video_frames, num_frames, stride):
  span = (num_frames - 1) * stride + 1
  return tf.maximum((num_video_frames - span) // 2, 0)


def uniform_starts(num_video_frames, num_clips, num_frames, stride):
  """`num_clips` starts spaced uniformly over the video (first at 0, last at the end)."""
  span = (num_frames - 1) * stride + 1
  last = tf.cast(tf.maximum(num_video_frames - span, 0), tf.float32)
  if num_clips == 1:
    return tf.cast(tf.reshape(last / 2, [1]), tf.int32)
  return tf.cast(tf.round(tf.linspace(0.0, last, num_clips)), tf.int32)


# ---------------------------------------------------------------------------- decoding

def decode_frames(jpegs, indices):
  """uint8 `(len(indices), H, W, 3)`: decodes only the chosen frames."""
  chosen = tf.gather(jpegs, indices)
  return tf.map_fn(lambda f: tf.io.decode_jpeg(f, channels=3), chosen,
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
    frame = tf.io.decode_and_crop_jpeg(jpeg, window, channels=3)
    return tf.cond(needs_resize,
                   lambda: to_uint8(tf.image.resize(frame, [out_size, out_size])),
                   lambda: frame)

  frames = tf.map_fn(one, tf.gather(jpegs, indices),
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
  return frames, tf.where(on_host, out_size, size)


def window_for(jpeg, short_side, crop_size):
  """(frame height, width, window side): the source square that becomes a `crop_size`
  crop once the frame's short side is scaled to `short_side`."""
  hw = tf.io.extract_jpeg_shape(jpeg)[:2]
  h, w = hw[0], hw[1]
  side = tf.cast(tf.round(tf.cast(crop_size * tf.minimum(h, w), tf.float32) /
                          tf.cast(short_side, tf.float32)), tf.int32)
  return h, w, tf.clip_by_value(side, 1, tf.minimum(h, w))


# ---------------------------------------------------------------------------- augmenting

def resize_short_side(frames, size):
  """Resizes `(..., H, W, 3)` frames so that min(H, W) == size (bilinear, float32)."""
  shape = tf.shape(frames)
  h, w = tf.cast(shape[-3], tf.float32), tf.cast(shape[-2], tf.float32)
  scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
  new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
  new = tf.maximum(new, size)
  return tf.image.resize(frames, new, method="bilinear", antialias=False)


def spatial_crops(frames, size, num_crops):
  """1 centre crop, or 3 crops (start, centre, end along the long side): (C, T, s, s, 3)."""
  shape = tf.shape(frames)
  h, w = shape[1], shape[2]
  cy, cx = (h - size) // 2, (w - size) // 2
  if num_crops == 1:
    offsets = [(cy, cx)]
  elif num_crops == 3:
    offsets = [tf.cond(h > w, lambda: (0, cx), lambda: (cy, 0)), (cy, cx),
               tf.cond(h > w, lambda: (h - size, cx), lambda: (cy, w - size))]
  else:
    raise errors.ConfigError(f"config.input.num_test_crops={num_crops}: must be 1 or 3")
  return tf.stack([frames[:, y:y + size, x:x + size] for y, x in offsets])


def random_flip(frames, seed):
  """Flips every frame horizontally, or none, with probability 0.5."""
  flip = tf.random.stateless_uniform([], seed + [0, 2]) < 0.5
  return tf.cond(flip, lambda: tf.reverse(frames, axis=[-2]), lambda: frames)


def to_uint8(frames):
  """Rounds resized float frames back to pixels: 4x fewer bytes to batch and transfer."""
  return tf.saturate_cast(frames + 0.5, tf.uint8)  # clamps, then truncates: rounds


# ---------------------------------------------------------------------------- per mode

def train_preprocess(example, seed, cfg):
  """One training clip `(T, crop, crop, 3)` from a raw example; `seed` is `[2]` int64.

  Scaling the short side to a random size in [min_resize, max_resize] and then taking a
  random `crop_size` crop is done the cheap way round: the matching square of the source
  frames is decoded (only it) and resized to `crop_size`, in uint8 out. With
  `cfg.resize_on_device`, squares no larger than the crop are instead padded (zeros,
  bottom and right) to `crop_size` and their side is returned as `side` int32, for
  `on_device.model_input` to resize on the accelerator; larger ones are resized here
  (`side` = `crop_size`).
  """
  jpegs = example["video"]
  n = tf.shape(jpegs)[0]
  start = random_start(n, cfg.num_frames, cfg.frame_stride, seed)
  indices = sample_window(n, cfg.num_frames, cfg.frame_stride, start)
  short = tf.random.stateless_uniform([], seed + [0, 3], max(cfg.min_resize, cfg.crop_size),
                                      max(cfg.max_resize, cfg.crop_size) + 1, tf.int32)
  h, w, side = window_for(jpegs[0], short, cfg.crop_size)
  y = tf.random.stateless_uniform([], seed, 0, h - side + 1, tf.int32)
  x = tf.random.stateless_uniform([], seed + [0, 1], 0, w - side + 1, tf.int32)
  on_device = cfg.resize_on_device
  frames, valid = decode_window(jpegs, indices, y, x, side, cfg.crop_size,
                                resize=not on_device)
  if cfg.flip:  # before padding, so the padding stays bottom right
    frames = random_flip(frames, seed)
  pad = cfg.crop_size - valid
  frames = tf.pad(frames, [[0, 0], [0, pad], [0, pad], [0, 0]])
  frames = tf.ensure_shape(frames, [cfg.num_frames, cfg.crop_size, cfg.crop_size, 3])
  out = {"video": frames, "label": tf.cast(example["label"], tf.int32)}
  if on_device:
    out["side"] = tf.cast(valid, tf.int32)
  return out


def eval_preprocess(example, cfg):
  """The centred validation clip `(T, crop, crop, 3)`: short side `eval_resize`, centre
  crop, computed as a centred source window resized to `crop_size`."""
  jpegs = example["video"]
  n = tf.shape(jpegs)[0]
  start = centre_start(n, cfg.num_frames, cfg.frame_stride)
  h, w, side = window_for(jpegs[0], max(cfg.eval_resize, cfg.crop_size), cfg.crop_size)
  frames, _ = decode_window(jpegs, sample_window(n, cfg.num_frames, cfg.frame_stride, start),
                            (h - side) // 2, (w - side) // 2, side, cfg.crop_size)
  frames = tf.ensure_shape(frames, [cfg.num_frames, cfg.crop_size, cfg.crop_size, 3])
  return {"video": frames, "label": tf.cast(example["label"], tf.int32)}


def test_preprocess(example, cfg):
  """All views of a video, `(clips * crops, T, s, s, 3)`, clip-major."""
  jpegs = example["video"]
  n = tf.shape(jpegs)[0]
  starts = uniform_starts(n, cfg.num_test_clips, cfg.num_frames, cfg.frame_stride)
  indices = tf.reshape(tf.vectorized_map(
      lambda s: sample_window(n, cfg.num_frames, cfg.frame_stride, s), starts), [-1])
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

DatasetNotFoundError = errors.DatasetNotFoundError


# Every field of `config.input` the pipeline and `on_device` read.
INPUT_FIELDS = ("num_frames", "frame_stride", "crop_size", "min_resize", "max_resize",
                "eval_resize", "test_crop_size", "num_test_clips", "num_test_crops", "flip",
                "resize_on_device", "mean", "std")


def check_input_config(input_config) -> None:
  """A `ConfigError` naming the fields of `config.input` that a config lacks (for example
  a config written before the field was added), before any pipeline is built."""
  missing = [f for f in INPUT_FIELDS if f not in input_config]
  if missing:
    raise errors.ConfigError(f"config.input lacks {', '.join(missing)}: add "
                     f"{'it' if len(missing) == 1 else 'them'} to the config file "
                     "(configs/kinetics.py has every field, with its meaning)")


KNOWN_DATASETS = ("synthetic_motion", "kinetics", "moments_in_time", "video_folder")


def _built_version_dir(data_dir: str, name: str) -> epath.Path | None:
  """`DATA_DIR/NAME/VERSION` of the newest complete build, or None."""
  folder = epath.Path(data_dir) / name
  if not folder.is_dir():
    return None
  versions = [d for d in folder.iterdir()
              if (d / "dataset_info.json").exists() and d.name[0].isdigit()]
  return max(versions, key=lambda d: tuple(int(p) for p in d.name.split(".")),
             default=None)


def get_builder(dataset_config) -> tfds.core.DatasetBuilder:
  """The prepared TFDS dataset `config.dataset.name` in `config.dataset.data_dir`.

  Any built dataset is read from its folder (so custom configs such as
  `video_folder/ucf101` need no code). `synthetic_motion` is built on the spot when
  missing (seconds, no download); any other missing dataset is an error saying how to
  build it.
  """
  name = dataset_config.name
  data_dir = dataset_config.data_dir or os.fspath(tfds.core.constants.DATA_DIR)
  base = name.split("/")[0]
  if base not in KNOWN_DATASETS:
    raise DatasetNotFoundError(
        f"config.dataset.name={name!r} is not a known dataset: use one of "
        f"{', '.join(KNOWN_DATASETS)} (with a config, e.g. kinetics/400)")
  if base == "synthetic_motion":  # the code's current version, generated if missing
    return _generate_once(name, data_dir)
  built = _built_version_dir(data_dir, name)
  if built is not None:
    return tfds.builder_from_directory(os.fspath(built))
  raise DatasetNotFoundError(
      f"dataset {name!r} not found in {data_dir}: build it with "
      f"`{prepare_command(name, data_dir)}` (see the README), or point "
      "config.dataset.data_dir at the folder that holds it")


def prepare_command(name: str, data_dir: str) -> str:
  """The `cost_jax.prepare` command line that builds dataset `name` into `data_dir`."""
  base, _, config = name.partition("/")
  flags = {"kinetics": f"--version={config or 400} --videos=VIDEOS --annotations=CSVS",
           "moments_in_time": "--videos=VIDEOS --annotations=CSVS",
           "video_folder": "--videos=VIDEOS" + (f" --config_name={config}"
                                                if config not in ("", "default") else "")
           }.get(base, "")
  return f"python -m cost_jax.prepare {base} {flags} --data_dir={data_dir}".replace("  ", " ")


# How long the other processes of a job wait for process 0 to generate a dataset (s).
BUILD_TIMEOUT_S = 1800


def _generate_once(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """A generated dataset (`synthetic_motion`), built once however many processes ask.

  Process 0 builds it while the others wait; a process that still does not see it then
  (its data_dir is on a disk of its own host) builds its own copy, one process per host
  at a time under a file lock.
  """
  def build():
    with multihost.FileLock(epath.Path(data_dir) / f".{name.replace('/', '_')}.lock"):
      builder = tfds.builder(name, data_dir=data_dir)
      if not builder.is_prepared():
        builder.download_and_prepare()
    return builder

  builder = multihost.run_on_first(f"build/{name}", build, BUILD_TIMEOUT_S,
                                   f"building {name} in {data_dir}")
  if builder is None:  # another process built it; here, or on its own disk
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      builder = build()
  return builder


def require_split(builder, split: str, field: str) -> str:
  """`split` if the dataset has it, else a `DatasetNotFoundError` naming `field`."""
  if has_split(builder, split):
    return split
  raise DatasetNotFoundError(
      f"{field}={split!r}: {builder.info.full_name} has no such split (it has "
      f"{', '.join(builder.info.splits)}); set {field} to one of them")


def has_split(builder, split: str) -> bool:
  try:
    builder.info.splits[split]
  except (KeyError, ValueError):
    return False
  return True


@dataclasses.dataclass(frozen=True)
class HostSplit:
  """This host's part of a split and the padded size every host shares."""
  split: str             # TFDS split string of this host's examples
  num_examples: int      # examples of this host
  max_host_examples: int  # largest count over hosts (evaluation pads to it)
  offset: int            # index in the whole split of this host's first example


def host_split(builder, split: str, process_index: int | None = None,
               process_count: int | None = None) -> HostSplit:
  """Divides `split` evenly over hosts, as `tfds.split_for_jax_process` does."""
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  parts = tfds.even_splits(split, n=count, drop_remainder=False)
  sizes = [builder.info.splits[p].num_examples for p in parts]
  return HostSplit(parts[index], sizes[index], max(sizes), sum(sizes[:index]))


def read_records(builder, split) -> tf.data.Dataset:
  """`{'video': JPEG strings (frames,), 'label'}` of `split` in a fixed order, undecoded."""
  return builder.as_dataset(
      split=split, shuffle_files=False, decoders={"video": tfds.decode.SkipDecoding()},
      read_config=tfds.ReadConfig(interleave_cycle_length=1),
  ).map(lambda ex: {"video": ex["video"], "label": ex["label"]})


def _deterministic():
  options = tf.data.Options()
  options.deterministic = True
  return options


def train_dataset(builder, config, local_batch: int, start_step: int = 0,
                  process_index: int | None = None, process_count: int | None = None,
                  shuffle_buffer: int = 1024) -> tf.data.Dataset:
  """Endless training batches `(local_batch, T, crop, crop, 3)` for this host.

  Each epoch is this host's split in a fixed order, shuffled with a seed of (seed, host,
  epoch); clip randomness is seeded by (seed, host, epoch, position). `start_step` skips
  the batches already trained on, reading (not decoding) at most one epoch.
  """
  part = host_split(builder, config.dataset.train_split, process_index, process_count)
  index = jax.process_index() if process_index is None else process_index
  per_epoch = part.num_examples
  if per_epoch == 0:  # fewer examples than hosts; a batch may span several epochs
    raise errors.ConfigError(f"the train split {config.dataset.train_split!r} has no "
                             f"example for host {index}: use fewer hosts or more videos")
  consumed = start_step * local_batch
  first_epoch, offset = divmod(consumed, per_epoch)
  base = read_records(builder, part.split)
  seed = config.seed

  def epoch(e):
    order_seed = tf.cast(seed * 1_000_003 + index * 7919 + e, tf.int64)
    ds = base.shuffle(min(shuffle_buffer, per_epoch), seed=order_seed,
                      reshuffle_each_iteration=False).enumerate()
    return ds.map(lambda i, ex: (tf.stack([tf.cast(seed * 1000 + index, tf.int64),
                                           e * (1 << 32) + i]), ex))

  ds = tf.data.Dataset.range(first_epoch, 1 << 62).flat_map(epoch).skip(offset)
  ds = ds.map(lambda s, ex: train_preprocess(ex, s, config.input),
              num_parallel_calls=AUTOTUNE)
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(AUTOTUNE)
  return ds.with_options(_deterministic())


def eval_dataset(builder, config, split: str, local_batch: int, mode: str = "validation",
                 process_index: int | None = None, process_count: int | None = None
                 ) -> tuple[tf.data.Dataset, int]:
  """One pass over `split` for this host, every example exactly once.

  The last batch is padded (`mask` 0) and every host yields the same number of batches,
  so a multi-host evaluation step runs in lockstep. Returns (dataset, num_batches).
  """
  if mode not in ("validation", "test"):
    raise ValueError(f"mode must be 'validation' or 'test', got {mode!r}")
  part = host_split(builder, split, process_index, process_count)
  num_batches = max(1, math.ceil(part.max_host_examples / local_batch))
  preprocess = eval_preprocess if mode == "validation" else test_preprocess
  ds = read_records(builder, part.split).enumerate(part.offset).map(
      lambda i, ex: {**preprocess(ex, config.input), "index": tf.cast(i, tf.int32),
                     "mask": tf.constant(1.0)}, num_parallel_calls=AUTOTUNE)
  padding = tf.data.Dataset.from_tensors(
      {k: tf.zeros(s.shape, s.dtype) - (1 if k == "index" else 0)
       for k, s in ds.element_spec.items()})
  ds = ds.concatenate(padding.repeat(num_batches * local_batch - part.num_examples))
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(AUTOTUNE)
  return ds.with_options(_deterministic()), num_batches
