"""`video_folder`: any tree `ROOT/<class>/<video>` (UCF101, HMDB51, your own data).

Classes are the sorted names of the folders that hold at least one video file (by
extension, `VIDEO_EXTENSIONS`); other files in them are listed in `skipped.json` as not
videos. Splits come from an optional folder of split lists (one `train*.txt` and
optionally one `val*.txt` and one `test*.txt`, one `class/video.ext` per line; a trailing
label number is ignored); lists that would put a video in two splits (several lists of
one kind, as UCF101's and HMDB51's official folders hold, or a video listed twice) are
refused: `prepare ucf101` and `prepare hmdb51` build their official splits. Without one, once it is known which videos decode, every class with
two or more of them gives `max(1, round(10%))` to the validation split (chosen by a hash
of the path, so rebuilds agree) and the rest to train; a class with one video keeps it
for training. Build several such datasets side by side with `--config_name` (e.g.
`video_folder/ucf101`).
"""

import collections
import dataclasses
import hashlib

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import (VIDEO_EXTENSIONS, VideoDatasetBuilder, VideoItem,
                                           list_entry, read_lines)


@dataclasses.dataclass
class VideoFolderConfig(tfds.core.BuilderConfig):
  validation_fraction: float = 0.1


def list_videos(root) -> tuple[dict[str, list[str]], list[str]]:
  """({class: [relative video paths]}, [relative paths of the other files in class
  folders]) below `root` (local or gs://); hidden files are ignored."""
  root = epath.Path(root)
  if not root.is_dir():
    raise errors.MissingInputError(f"--videos={root}: no such folder")
  classes, others = {}, []
  for folder in sorted(root.iterdir()):
    if not folder.is_dir():
      continue
    files = sorted(f for f in folder.iterdir()
                   if not f.name.startswith(".") and not f.is_dir())
    videos = [f"{folder.name}/{f.name}" for f in files
              if f.suffix.lower() in VIDEO_EXTENSIONS]
    if videos:
      classes[folder.name] = videos
      others += [f"{folder.name}/{f.name}" for f in files
                 if f.suffix.lower() not in VIDEO_EXTENSIONS]
  if not classes:
    raise errors.MissingInputError(
        f"no <class>/<video> files below {root} (videos end in "
        f"{', '.join(VIDEO_EXTENSIONS)}): check --videos")
  return classes, others


def _hash_order(path: str) -> bytes:
  return hashlib.sha1(path.encode()).digest()


def validation_count(num_videos: int, fraction: float) -> int:
  """Videos of a class that go to validation: none below two, else at least one."""
  return 0 if num_videos < 2 else max(1, round(fraction * num_videos))


class VideoFolder(VideoDatasetBuilder):
  """Class-per-folder videos (see the module docstring)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First version.",
                   "1.1.0": "Validation: at least one video of every class with two or "
                            "more; non-video files listed in skipped.json."}
  BUILDER_CONFIGS = [VideoFolderConfig(name="default")]

  def __init__(self, *, splits_dir=None, **kwargs):
    self._splits_dir = splits_dir
    self._classes = self._others = None
    super().__init__(**kwargs)

  def _class_names(self):
    if self._videos_dir is None:
      return None
    if self._classes is None:
      self._classes, self._others = list_videos(self._videos_dir)
    return list(self._classes)

  def _split_lists(self) -> dict[str, list[str]]:
    """{split: [video entries]} of the split lists, refusing any that would put a video
    in two splits: several lists of one kind (UCF101's trainlist01..03.txt are three
    alternative splits, whose union holds every test video) or one video in two lists."""
    files = {}
    for path in sorted(epath.Path(self._splits_dir).glob("*.txt")):
      name = path.name.lower()
      split = next((s for s, p in (("train", "train"), ("validation", "val"),
                                   ("test", "test")) if name.startswith(p)), None)
      if split is not None:
        files.setdefault(split, []).append(path)
    fix = ("build one official split with `python -m cost_jax.prepare ucf101|hmdb51 "
           "--videos=... --annotations=DIR --split=N`, or keep one list per split in --splits")
    for split, paths in files.items():
      if len(paths) > 1:
        raise errors.ConfigError(
            f"--splits={self._splits_dir} holds {len(paths)} {split} lists "
            f"({', '.join(p.name for p in paths)}): they are alternative splits, and "
            f"merging them leaks test videos into training; {fix}")
    if "train" not in files:
      raise errors.MissingInputError(f"no train*.txt split list in {self._splits_dir}: "
                                     "check --splits")
    lists, where = {}, {}
    for split, (path,) in files.items():
      lists[split] = [list_entry(line) for line in read_lines(path)]
      for entry in lists[split]:
        key = entry.replace("\\", "/").lower()
        if where.setdefault(key, path.name) != path.name:
          raise errors.ConfigError(
              f"{entry} is listed in both {where[key]} and {path.name}: a video in two "
              f"splits leaks between them; {fix}")
    return lists

  def _split_items(self):
    names = self._class_names()
    if self._splits_dir:
      lists = self._split_lists()
    else:  # one pool, split by `_assign_splits` once decoded
      lists = {"train": [v for videos in self._classes.values() for v in videos]
                        + self._others}
    label_of = {n: i for i, n in enumerate(names)}
    root = self._videos_dir
    items = {}
    for split, paths in lists.items():
      items[split] = []
      for rel in dict.fromkeys(paths):  # unique, in order
        cls = rel.replace("\\", "/").split("/")[0]
        path = str(epath.Path(root) / rel)
        found = cls in label_of and epath.Path(path).exists()
        suffix = epath.Path(rel).suffix.lower()
        problem = ("" if suffix in VIDEO_EXTENSIONS
                   else f"not a video file (extension {suffix or 'none'!r})")
        items[split].append(VideoItem(rel, path if found else None, label_of.get(cls, -1),
                                      cls, problem))
    return items

  def _assign_splits(self, items, usable):
    if self._splits_dir:
      return items
    fraction = self.builder_config.validation_fraction
    by_class = collections.defaultdict(list)
    for item in items["train"]:
      if usable(item):
        by_class[item.label].append(item)
    validation = set()
    for videos in by_class.values():
      ranked = sorted(videos, key=lambda it: _hash_order(it.video_id))
      validation.update(it.video_id for it in
                        ranked[:validation_count(len(ranked), fraction)])
    return {"train": [it for it in items["train"] if it.video_id not in validation],
            "validation": [it for it in items["train"] if it.video_id in validation]}
