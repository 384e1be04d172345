"""`video_folder`: any tree `ROOT/<class>/<video>` (UCF101, HMDB51, your own data).

Classes are the sorted folder names. Splits come from an optional folder of split lists
(`train*.txt`, `val*.txt`, `test*.txt`, one `class/video.ext` per line; a trailing label
number, as in UCF101's lists, is ignored); without one, a fixed 10% of each class (chosen
by a hash of the path) is the validation split and the rest is train. Build several such
datasets side by side with `--config_name` (e.g. `video_folder/ucf101`).
"""

import dataclasses
import hashlib

import tensorflow_datasets as tfds
from etils import epath

from cost_jax.data.builders.common import VIDEO_EXTENSIONS, VideoDatasetBuilder, VideoItem


@dataclasses.dataclass
class VideoFolderConfig(tfds.core.BuilderConfig):
  validation_fraction: float = 0.1


def list_videos(root) -> dict[str, list[str]]:
  """{class: [relative paths]} below `root` (local or gs://)."""
  classes = {}
  for folder in sorted(epath.Path(root).iterdir()):
    if not folder.is_dir():
      continue
    videos = sorted(f"{folder.name}/{f.name}" for f in folder.iterdir()
                    if f.suffix.lower() in VIDEO_EXTENSIONS)
    if videos:
      classes[folder.name] = videos
  if not classes:
    raise FileNotFoundError(f"no <class>/<video> files below {root}: check --videos")
  return classes


def _strip_label(line: str) -> str:
  """'class/video.avi 3' -> 'class/video.avi'; class names may contain spaces."""
  parts = line.strip().rsplit(maxsplit=1)
  return parts[0] if len(parts) == 2 and parts[1].isdigit() else line.strip()


def _in_validation(path: str, fraction: float) -> bool:
  digest = hashlib.sha1(path.encode()).digest()
  return int.from_bytes(digest[:4], "big") / 2 ** 32 < fraction


class VideoFolder(VideoDatasetBuilder):
  """Class-per-folder videos (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIGS = [VideoFolderConfig(name="default")]

  def __init__(self, *, videos_dir=None, splits_dir=None, **kwargs):
    self._videos_dir, self._splits_dir = videos_dir, splits_dir
    self._classes = None
    super().__init__(**kwargs)

  def _class_names(self):
    if self._videos_dir is None:
      return None
    if self._classes is None:
      self._classes = list_videos(self._videos_dir)
    return list(self._classes)

  def _split_lists(self) -> dict[str, list[str]]:
    lists = {}
    for path in sorted(epath.Path(self._splits_dir).glob("*.txt")):
      name = path.name.lower()
      split = next((s for s, p in (("train", "train"), ("validation", "val"),
                                   ("test", "test")) if name.startswith(p)), None)
      if split is None:
        continue
      lists.setdefault(split, []).extend(
          _strip_label(line) for line in path.read_text().splitlines() if line.strip())
    if "train" not in lists:
      raise FileNotFoundError(f"no train*.txt split list in {self._splits_dir}")
    return lists

  def _split_items(self):
    names = self._class_names()
    label_of = {n: i for i, n in enumerate(names)}
    root = self._videos_dir
    if self._splits_dir:
      lists = self._split_lists()
    else:
      fraction = self.builder_config.validation_fraction
      every = [v for videos in self._classes.values() for v in videos]
      lists = {"train": [v for v in every if not _in_validation(v, fraction)],
               "validation": [v for v in every if _in_validation(v, fraction)]}
    items = {}
    for split, paths in lists.items():
      items[split] = []
      for rel in dict.fromkeys(paths):  # unique, in order
        cls = rel.replace("\\", "/").split("/")[0]
        path = str(epath.Path(root) / rel)
        found = cls in label_of and epath.Path(path).exists()
        items[split].append(VideoItem(rel, path if found else None, label_of.get(cls, -1),
                                      cls))
    return items
