"""`ucf101/split1`, `/split2`, `/split3`: UCF101 (Soomro et al. 2012) with its official
train/test splits, 101 classes, 13,320 videos.

  python -m cost_jax.prepare ucf101 --videos=UCF-101 --annotations=ucfTrainTestlist \
      --split=1 --data_dir=DATA

Annotations: the release's `ucfTrainTestlist/` as published (CRLF line ends):
`classInd.txt` (`1 ApplyEyeMakeup`, the class order: labels are its numbers minus one),
`trainlist0N.txt` (`ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`) and `testlist0N.txt`
(`ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`). Split N holds exactly the videos of
`trainlist0N.txt` (`train`) and `testlist0N.txt` (`test`); the three splits are three
ways of dividing the same 13,320 videos, never to be mixed. Videos: `UCF-101/<class>/
<video>.avi`, found whatever the case of the list entry (the lists and the files disagree
for `HandstandPushups`). A listed video that is missing or does not decode is listed in
`skipped.json`. The label is the class folder of the entry.
"""

import dataclasses
import re

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import (FileIndex, VideoDatasetBuilder, VideoItem,
                                           list_entry, read_lines)

SPLITS = (1, 2, 3)


@dataclasses.dataclass
class SplitConfig(tfds.core.BuilderConfig):
  """One of a dataset's official splits (1, 2 or 3)."""
  split: int = 1


def split_configs(description: str) -> list[SplitConfig]:
  return [SplitConfig(name=f"split{n}", split=n, description=f"{description}, split {n}")
          for n in SPLITS]


def read_class_index(path) -> list[str]:
  """Class names of `classInd.txt` (`index name` per line), ordered by index."""
  pairs = []
  for line in read_lines(path):
    match = re.fullmatch(r"(\d+)\s+(.+)", line)
    if not match:
      raise errors.ConfigError(f"{path}: cannot read the line {line!r}; expected "
                               "'<index> <class>' (UCF101's classInd.txt)")
    pairs.append((int(match.group(1)), match.group(2).strip()))
  if not pairs:
    raise errors.ConfigError(f"{path} lists no classes: check --annotations")
  return [name for _, name in sorted(pairs)]


def read_list(path) -> list[str]:
  """The video entries of a train or test list (`class/video.avi [label]` per line)."""
  return [list_entry(line) for line in read_lines(path)]


class Ucf101(VideoDatasetBuilder):
  """UCF101 with an official split (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIGS = split_configs("UCF101")
  ANNOTATIONS = "ucfTrainTestlist"

  def _file(self, name: str) -> epath.Path:
    path = epath.Path(self._annotations_dir) / name
    if not path.exists():
      raise errors.MissingInputError(
          f"{path} not found: --annotations must be the folder of UCF101's official "
          f"split files ({self.ANNOTATIONS}/ with classInd.txt, trainlist01.txt, ...)")
    return path

  def _class_names(self):
    if self._annotations_dir is None:
      return None
    return read_class_index(self._file("classInd.txt"))

  def _split_items(self):
    names = self._class_names()
    label_of = {n.lower(): i for i, n in enumerate(names)}
    index = FileIndex(self._videos_dir)
    n = self.builder_config.split
    items = {}
    for split, list_name in (("train", f"trainlist0{n}.txt"), ("test", f"testlist0{n}.txt")):
      items[split] = []
      for entry in dict.fromkeys(read_list(self._file(list_name))):
        folder = entry.replace("\\", "/").split("/")[0]
        if folder.lower() not in label_of:
          raise errors.ConfigError(
              f"{list_name} lists {entry!r}, whose class {folder!r} is not in "
              "classInd.txt: check --annotations")
        label = label_of[folder.lower()]
        items[split].append(VideoItem(entry, index.find(entry), label, names[label]))
    return items
