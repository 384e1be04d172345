"""`moments_in_time`: Moments in Time v1 (339 classes, 3-second videos).

Annotations folder: `moments_categories.txt` (`name,index` per line), `trainingSet.csv` and
`validationSet.csv` (`relative/path.mp4,label,...` per line; a header line is tolerated).
Videos folder: the release's `training/` and `validation/` folders, each holding the
relative paths of the CSVs (paths directly below the videos folder are found too).
"""

import csv

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import VideoDatasetBuilder, VideoItem

SPLITS = {"train": ("trainingSet.csv", "training"),
          "validation": ("validationSet.csv", "validation")}


def read_categories(path) -> list[str]:
  """Class names ordered by their index."""
  pairs = []
  with epath.Path(path).open() as f:
    for row in csv.reader(f):
      if len(row) >= 2 and row[1].strip().isdigit():
        pairs.append((int(row[1]), row[0].strip()))
  if not pairs:
    raise errors.ConfigError(f"{path} lists no categories; expected lines 'name,index'")
  return [name for _, name in sorted(pairs)]


class MomentsInTime(VideoDatasetBuilder):
  """Moments in Time v1 from local videos (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def _class_names(self):
    if self._annotations_dir is None:
      return None
    return read_categories(epath.Path(self._annotations_dir) / "moments_categories.txt")

  def _split_items(self):
    names = self._class_names()
    label_of = {n: i for i, n in enumerate(names)}
    root = epath.Path(self._videos_dir)
    items = {}
    for split, (csv_name, folder) in SPLITS.items():
      csv_path = epath.Path(self._annotations_dir) / csv_name
      if not csv_path.exists():
        if split == "train":
          raise errors.MissingInputError(f"{csv_path} not found: check --annotations")
        continue
      items[split], seen = [], set()
      with csv_path.open() as f:
        for row in csv.reader(f):
          if len(row) < 2 or row[1].strip() not in label_of or row[0] in seen:
            continue  # header or unknown label
          seen.add(row[0])
          candidates = (root / folder / row[0], root / row[0])
          path = next((str(p) for p in candidates if p.exists()), None)
          label = row[1].strip()
          items[split].append(VideoItem(row[0], path, label_of[label], label))
    return items
