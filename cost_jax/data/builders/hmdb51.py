"""`hmdb51/split1`, `/split2`, `/split3`: HMDB51 (Kuehne et al. 2011) with its official
splits, 51 classes, 6,766 videos (70 train and 30 test videos per class and split).

  python -m cost_jax.prepare hmdb51 --videos=HMDB51_ROOT \
      --annotations=testTrainMulti_7030_splits --split=1 --data_dir=DATA

Annotations: the release's `testTrainMulti_7030_splits/` as published: one file per class
and split, `<class>_test_split<N>.txt`, whose lines are `<video>.avi <code>` (often with
trailing spaces): code 1 puts the video in `train`, 2 in `test`, 0 in neither. Classes are
the class names of those files in sorted order. Videos: `HMDB51_ROOT/<class>/<video>.avi`
(the extracted per-class archives), found whatever the case; a listed video that is
missing or does not decode is listed in `skipped.json`. HMDB51's files often carry
metadata that is not UTF-8, which decoding tolerates (`video_io`).
"""

import collections
import re

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import (FileIndex, VideoDatasetBuilder, VideoItem,
                                           read_lines)
from cost_jax.data.builders.ucf101 import split_configs

SPLIT_FILE = re.compile(r"(.+)_test_split([123])\.txt$")
CODES = {"1": "train", "2": "test"}  # 0: in neither split


def read_split_files(annotations_dir, split: int) -> dict[str, list[tuple[str, str]]]:
  """{class: [(video file name, code)]} of split `split`, classes sorted."""
  folder = epath.Path(annotations_dir)
  if not folder.is_dir():
    raise errors.MissingInputError(f"--annotations={annotations_dir}: no such folder")
  found = collections.defaultdict(list)
  for path in sorted(folder.iterdir()):
    match = SPLIT_FILE.match(path.name)
    if not match or int(match.group(2)) != split:
      continue
    for line in read_lines(path):
      # The code is the last field; a file name may hold spaces.
      parts = line.rsplit(maxsplit=1)
      if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
        raise errors.ConfigError(f"{path}: cannot read the line {line!r}; expected "
                                 "'<video>.avi <0|1|2>' (HMDB51's split files)")
      found[match.group(1)].append((parts[0], parts[1]))
  if not found:
    raise errors.MissingInputError(
        f"no <class>_test_split{split}.txt in {annotations_dir}: --annotations must be "
        "the folder of HMDB51's official split files (testTrainMulti_7030_splits/)")
  return dict(sorted(found.items()))


class Hmdb51(VideoDatasetBuilder):
  """HMDB51 with an official split (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIGS = split_configs("HMDB51")

  def __init__(self, **kwargs):
    self._lists = None
    super().__init__(**kwargs)

  def _split_files(self):
    if self._lists is None:
      self._lists = read_split_files(self._annotations_dir, self.builder_config.split)
    return self._lists

  def _class_names(self):
    if self._annotations_dir is None:
      return None
    return list(self._split_files())

  def _split_items(self):
    index = FileIndex(self._videos_dir)
    items = {"train": [], "test": []}
    for label, (name, videos) in enumerate(self._split_files().items()):
      for video, code in videos:
        if code in CODES:
          entry = f"{name}/{video}"
          items[CODES[code]].append(VideoItem(entry, index.find(entry), label, name))
    return items
