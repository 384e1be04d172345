"""`kinetics/400`, `kinetics/600`, `kinetics/700` from annotation CSVs and a videos folder.

Annotations: a folder with one CSV per split (a name containing `train`, `val` or `test`,
e.g. `train.csv`, `validate.csv`, `kinetics_400_val.csv`), columns `label, youtube_id,
time_start, time_end, split` (an `is_cc` column is ignored). The test split is built only
when its CSV has labels. Videos: any tree below the videos folder (flat, per split or per
class) named `{youtube_id}_{time_start:06d}_{time_end:06d}.ext` or `{youtube_id}.ext`.
Videos of a CSV row that are absent count as missing and are listed in `skipped.json`.
"""

import csv
import dataclasses

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import VideoDatasetBuilder, VideoItem, index_video_files

SPLIT_PATTERNS = (("train", "train"), ("validation", "val"), ("test", "test"))


@dataclasses.dataclass
class KineticsConfig(tfds.core.BuilderConfig):
  num_classes: int = 400


def find_split_files(annotations_dir) -> dict[str, epath.Path]:
  """{split: csv path}, matched on the file name (see the module docstring)."""
  files = {}
  for path in sorted(epath.Path(annotations_dir).glob("*.csv")):
    name = path.name.lower()
    for split, pattern in SPLIT_PATTERNS:
      if pattern in name and split not in files:
        files[split] = path
        break
  if "train" not in files:
    raise errors.MissingInputError("no training CSV (a *.csv whose name contains 'train') "
                                   f"in {annotations_dir}: check --annotations")
  return files


def read_rows(path) -> list[dict]:
  with epath.Path(path).open() as f:
    rows = list(csv.DictReader(f))
  if rows and "youtube_id" not in rows[0]:
    raise errors.ConfigError(f"{path} has columns {list(rows[0])}; expected label, "
                             "youtube_id, time_start, time_end")
  return rows


def video_id(row) -> str:
  start, end = int(float(row["time_start"])), int(float(row["time_end"]))
  return f"{row['youtube_id']}_{start:06d}_{end:06d}"


class Kinetics(VideoDatasetBuilder):
  """Kinetics-400/600/700 from local videos (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIGS = [KineticsConfig(name=str(n), num_classes=n) for n in (400, 600, 700)]

  def __init__(self, **kwargs):
    self._rows = None
    super().__init__(**kwargs)

  def _split_rows(self) -> dict[str, list[dict]]:
    if self._rows is None:
      self._rows = {}
      for split, path in find_split_files(self._annotations_dir).items():
        rows = read_rows(path)
        if split == "test" and not all(r.get("label") for r in rows):
          continue  # an unlabelled test set cannot be evaluated
        self._rows[split] = rows
    return self._rows

  def _class_names(self):
    if self._annotations_dir is None:
      return None  # reading a built dataset: names come from its folder
    names = sorted({r["label"] for r in self._split_rows()["train"]})
    expected = self.builder_config.num_classes
    if len(names) != expected:
      raise errors.ConfigError(
          f"the training CSV in {self._annotations_dir} has {len(names)} classes but "
          f"kinetics/{self.builder_config.name} has {expected}: check --annotations and "
          "--version")
    return names

  def _split_items(self):
    if self._videos_dir is None:
      raise ValueError("building kinetics needs videos_dir and annotations_dir")
    index = index_video_files(self._videos_dir)
    names = self._class_names()
    label_of = {n: i for i, n in enumerate(names)}
    items = {}
    for split, rows in self._split_rows().items():
      items[split] = []
      seen = set()
      for row in rows:
        vid = video_id(row)
        if vid in seen or row["label"] not in label_of:
          continue
        seen.add(vid)
        path = index.get(vid) or index.get(row["youtube_id"])
        items[split].append(VideoItem(vid, path, label_of[row["label"]], row["label"]))
    return items
