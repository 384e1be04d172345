"""Built datasets as they lie on disk, read without TensorFlow.

A TFDS build is a version folder `DATA_DIR/NAME/CONFIG/VERSION/` holding
`dataset_info.json` (splits, shard lengths, file format), `label.labels.txt` (class
names), `metadata.json` (stored short side, fps) and the shards, TFRecord or ArrayRecord
files of serialized `tf.train.Example`s. Both input backends find datasets, size splits
and divide them over hosts here, so that they agree on every count.
"""

import dataclasses
import functools
import json
import os
import re
import struct
from typing import Iterator

from etils import epath

from cost_jax import errors
from cost_jax.data import sampling

KNOWN_DATASETS = ("synthetic_motion", "kinetics", "moments_in_time", "something_something_v2",
                  "ucf101", "hmdb51", "video_folder")
FILE_FORMATS = {"tf_data": "tfrecord", "grain": "array_record"}

# Every field of `config.input` the pipelines and `on_device` read.
INPUT_FIELDS = ("backend", "workers", "num_frames", "frame_stride", "crop_size", "min_resize",
                "max_resize", "eval_resize", "test_crop_size", "num_test_clips",
                "num_test_crops", "flip", "resize_on_device", "mean", "std")


def check_input_config(input_config) -> None:
  """A `ConfigError` naming the fields of `config.input` that a config lacks (for example
  a config written before the field was added; `sampling.DEFAULTS` fills the fields
  added since runs were first recorded), or a value that does not exist."""
  missing = [f for f in INPUT_FIELDS if f not in input_config]
  if missing:
    raise errors.ConfigError(f"config.input lacks {', '.join(missing)}: add "
                             f"{'it' if len(missing) == 1 else 'them'} to the config file "
                             "(configs/kinetics.py has every field, with its meaning)")
  if input_config.backend not in FILE_FORMATS:
    raise errors.ConfigError(f"config.input.backend={input_config.backend!r} is unknown: "
                             f"use one of {', '.join(FILE_FORMATS)}")
  if sampling.option(input_config, "sampling") not in sampling.SAMPLINGS:
    raise errors.ConfigError(f"config.input.sampling={input_config.sampling!r} is "
                             f"unknown: use one of {', '.join(sampling.SAMPLINGS)}")


def prepare_command(name: str, data_dir: str, file_format: str = "tfrecord") -> str:
  """The `cost_jax.prepare` command line that builds dataset `name` into `data_dir`."""
  base, _, config = name.partition("/")
  split = config[len("split"):] if config.startswith("split") else "1"
  flags = {"kinetics": f"--version={config or 400} --videos=VIDEOS --annotations=CSVS",
           "moments_in_time": "--videos=VIDEOS --annotations=CSVS",
           "something_something_v2": "--videos=VIDEOS --annotations=JSONS",
           "ucf101": f"--videos=UCF-101 --annotations=ucfTrainTestlist --split={split}",
           "hmdb51": "--videos=HMDB51 --annotations=testTrainMulti_7030_splits "
                     f"--split={split}",
           "video_folder": "--videos=VIDEOS" + (f" --config_name={config}"
                                                if config not in ("", "default") else ""),
           "synthetic_motion": f"--config_name={config}" if config else "",
           }.get(base, "")
  fmt = " --file_format=array_record" if file_format == "array_record" else ""
  return (f"python -m cost_jax.prepare {base} {flags} --data_dir={data_dir}{fmt}"
          ).replace("  ", " ")


@dataclasses.dataclass(frozen=True)
class HostSplit:
  """This host's part of a split and the padded size every host shares."""
  split: str             # the split's name
  start: int             # this host's examples: [start, stop) of the split
  stop: int
  max_host_examples: int  # largest count over hosts (evaluation pads to it)
  offset: int            # position of this host's first example in the sliced split

  @property
  def num_examples(self) -> int:
    return self.stop - self.start

  @property
  def tfds_split(self) -> str:
    return f"{self.split}[{self.start}:{self.stop}]"


@dataclasses.dataclass(frozen=True)
class BuiltDataset:
  """A dataset built by `cost_jax.prepare` (or generated), found in a data dir."""
  name: str
  path: epath.Path                         # the version folder
  class_names: tuple[str, ...]
  shard_lengths: dict                      # {split: (examples per shard, ...)}
  file_format: str                         # 'tfrecord' or 'array_record'
  metadata: dict                           # short_side, fps
  filename_template: str = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"

  @property
  def data_dir(self) -> epath.Path:
    """The TFDS data dir that holds the dataset (`DATA_DIR/NAME[/CONFIG]/VERSION`)."""
    return self.path.parents[len(self.name.split("/"))]

  @property
  def splits(self) -> tuple[str, ...]:
    return tuple(self.shard_lengths)

  def split_range(self, spec: str) -> tuple[str, int, int]:
    """('train', 0, 16) for 'train[:16]'; also 'train', 'train[10:]', 'train[:50%]'."""
    match = re.fullmatch(r"(\w+)(?:\[(-?\d*%?):(-?\d*%?)\])?", spec.strip())
    if not match or match.group(1) not in self.shard_lengths:
      raise errors.DatasetNotFoundError(
          f"split {spec!r}: {self.name} has the splits {', '.join(self.splits)} (a split "
          "may be sliced as name[start:stop], in examples or %)")
    split = match.group(1)
    total = sum(self.shard_lengths[split])

    def bound(text, default):
      if not text:
        return default
      value = int(text.rstrip("%"))
      value = value * total // 100 if text.endswith("%") else value
      return min(max(value + total if value < 0 else value, 0), total)

    return split, bound(match.group(2), 0), bound(match.group(3), total)

  def has_split(self, spec: str) -> bool:
    try:
      self.split_range(spec)
    except errors.DatasetNotFoundError:
      return False
    return True

  def num_examples(self, spec: str) -> int:
    _, start, stop = self.split_range(spec)
    return stop - start

  def host_split(self, spec: str, process_index: int, process_count: int) -> HostSplit:
    """`spec`'s examples divided over hosts in contiguous parts whose sizes differ by at
    most one (the first hosts take the remainder)."""
    split, start, stop = self.split_range(spec)
    total = stop - start
    sizes = [total // process_count + (i < total % process_count)
             for i in range(process_count)]
    offset = sum(sizes[:process_index])
    return HostSplit(split, start + offset, start + offset + sizes[process_index],
                     max(sizes), offset)

  def shard_files(self, split: str) -> list[epath.Path]:
    """The split's shard files, in order."""
    base = self.name.split("/")[0]
    count = len(self.shard_lengths[split])
    return [self.path / self.filename_template.format(
        DATASET=base, SPLIT=split, FILEFORMAT=self.file_format,
        SHARD_X_OF_Y=f"{i:05d}-of-{count:05d}") for i in range(count)]

  def records(self, split: str) -> Iterator[bytes]:
    """The serialized `tf.train.Example`s of `split` in order, from either file format
    (no TensorFlow)."""
    for path in self.shard_files(split):
      if self.file_format == "tfrecord":
        yield from tfrecord_records(path)
        continue
      from array_record.python.array_record_module import ArrayRecordReader
      reader = ArrayRecordReader(os.fspath(path))
      try:
        for i in range(reader.num_records()):
          yield reader.read([i])[0]
      finally:
        reader.close()

  @functools.cached_property
  def _tfds_builder(self):
    import tensorflow_datasets as tfds  # the tf.data backend only
    return tfds.builder_from_directory(os.fspath(self.path))

  def tfds_builder(self):
    """The TFDS builder of this folder (needs TensorFlow: the tf.data backend)."""
    return self._tfds_builder


def tfrecord_records(path) -> Iterator[bytes]:
  """The records of a TFRecord file (length, CRC, data, CRC framing; CRCs not checked)."""
  with epath.Path(path).open("rb") as f:
    while header := f.read(12):
      if len(header) < 12:
        raise errors.UserError(f"{path} is truncated: rebuild the dataset")
      (length,) = struct.unpack("<Q", header[:8])
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        raise errors.UserError(f"{path} is truncated: rebuild the dataset")
      yield data


def version_folder(data_dir: str, name: str) -> epath.Path | None:
  """`DATA_DIR/NAME/VERSION` of the newest complete build, or None."""
  folder = epath.Path(data_dir) / name
  if not folder.is_dir():
    return None
  versions = [d for d in folder.iterdir()
              if (d / "dataset_info.json").exists() and d.name[0].isdigit()]
  return max(versions, key=lambda d: tuple(int(p) for p in d.name.split(".")),
             default=None)


def read(path, name: str) -> BuiltDataset:
  """The dataset in version folder `path`, from its JSON and text files only."""
  path = epath.Path(path)
  info = json.loads((path / "dataset_info.json").read_text())
  labels = path / "label.labels.txt"
  class_names = tuple(line for line in labels.read_text().splitlines() if line) \
      if labels.exists() else ()
  metadata_file = path / "metadata.json"
  metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
  splits = {s["name"]: tuple(int(n) for n in s.get("shardLengths", ())) for s in
            info.get("splits", ())}
  template = next((s["filepathTemplate"] for s in info.get("splits", ())
                   if s.get("filepathTemplate")), BuiltDataset.filename_template)
  return BuiltDataset(name, path, class_names, splits, info.get("fileFormat", "tfrecord"),
                      metadata, template)


def find(name: str, data_dir: str) -> BuiltDataset | None:
  """The newest complete build of `name` in `data_dir`, or None."""
  folder = version_folder(data_dir, name)
  return None if folder is None else read(folder, name)


def check_known(name: str) -> None:
  if name.split("/")[0] not in KNOWN_DATASETS:
    raise errors.DatasetNotFoundError(
        f"config.dataset.name={name!r} is not a known dataset: use one of "
        f"{', '.join(KNOWN_DATASETS)} (with a config, e.g. kinetics/400)")


def require_format(dataset: BuiltDataset, backend: str, data_dir: str) -> BuiltDataset:
  """`dataset` if `backend` reads its files; else a `DatasetNotFoundError` naming the
  command that makes files it reads."""
  wanted = FILE_FORMATS[backend]
  if dataset.file_format == wanted:
    return dataset
  if wanted == "array_record":
    fix = (f"convert it (no decoding): `python -m cost_jax.prepare convert "
           f"--name={dataset.name} --data_dir={data_dir} --out_data_dir=NEW_DIR` and "
           "point config.dataset.data_dir at NEW_DIR, or build it with "
           f"`{prepare_command(dataset.name, data_dir, wanted)}`")
  else:
    fix = (f"build it with `{prepare_command(dataset.name, data_dir, wanted)}`, or read "
           "it with --config.input.backend=grain")
  raise errors.DatasetNotFoundError(
      f"{dataset.name} in {data_dir} is stored as {dataset.file_format}, which "
      f"config.input.backend={backend} does not read: {fix}")
