"""`something_something_v2`: Something-Something v2 (Goyal et al. 2017), 174 classes of
hand-object interactions told apart by their motion, 168,913 train and 24,777
validation videos.

  python -m cost_jax.prepare something_something_v2 --videos=DIR --annotations=DIR \
      --data_dir=DATA

Annotations: the release's JSON files as published: `something-something-v2-labels.json`
(`{"Approaching something with your camera": "0", ...}`: the classes, in the order of
their index, every class also one without videos), `something-something-v2-train.json`
and `-validation.json` (`[{"id": "78687", "label": "holding potato next to vicks vaporub
bottle", "template": "Holding [something] next to [something]", "placeholders": [...]}]`).
An example's class is its `template` with the brackets removed, looked up in the labels;
the filled-in `label` text is a description, not a class. `-test.json` lists ids only (the
test labels are not public): it is not built, and the validation split is what papers
report. Videos: `DIR/<id>.webm` (VP9, 12 fps, 240 pixels high); a listed video that is
missing or does not decode is listed in `skipped.json`.
"""

import json
import sys

import tensorflow_datasets as tfds
from etils import epath

from cost_jax import errors
from cost_jax.data.builders.common import FileIndex, VideoDatasetBuilder, VideoItem

PREFIX = "something-something-v2-"
SPLITS = {"train": "train", "validation": "validation"}


def class_of(template: str) -> str:
  """'Holding [something] next to [something]' -> 'Holding something next to something'."""
  return template.replace("[", "").replace("]", "").strip()


def _normal(name: str) -> str:
  return " ".join(name.lower().split())


class SomethingSomethingV2(VideoDatasetBuilder):
  """Something-Something v2 (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def _json(self, part: str):
    path = epath.Path(self._annotations_dir) / f"{PREFIX}{part}.json"
    if not path.exists():
      raise errors.MissingInputError(
          f"{path} not found: --annotations must be the folder of Something-Something "
          f"v2's {PREFIX}labels.json, -train.json and -validation.json")
    try:
      return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
      raise errors.ConfigError(f"{path} is not valid JSON ({e}): download it again") from e

  def _class_names(self):
    if self._annotations_dir is None:
      return None
    labels = self._json("labels")
    try:
      order = sorted((int(index), name) for name, index in labels.items())
    except (AttributeError, ValueError) as e:
      raise errors.ConfigError(f"{PREFIX}labels.json must map class names to indices "
                               f"('name': '0'): {e}") from e
    if [i for i, _ in order] != list(range(len(order))):
      raise errors.ConfigError(f"{PREFIX}labels.json: the indices are not 0..{len(order) - 1}")
    return [name for _, name in order]

  def _split_items(self):
    names = self._class_names()
    label_of = {_normal(n): i for i, n in enumerate(names)}
    index = FileIndex(self._videos_dir)
    items = {}
    for split, part in SPLITS.items():
      items[split] = []
      for entry in self._json(part):
        vid = str(entry["id"]).strip()
        label = label_of.get(_normal(class_of(entry.get("template", ""))))
        path = index.find(f"{vid}.webm")
        if label is None:
          items[split].append(VideoItem(
              vid, path, -1, "", f"its template {entry.get('template')!r} is not a class "
              f"of {PREFIX}labels.json"))
          continue
        items[split].append(VideoItem(vid, path, label, names[label]))
    test = epath.Path(self._annotations_dir) / f"{PREFIX}test.json"
    if test.exists():
      print(f"{self.name}: {test.name} has no labels (the test labels are not public): "
            "not built; the validation split is the benchmark", file=sys.stderr)
    return items
