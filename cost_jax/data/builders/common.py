"""What every video dataset builder shares: features, a parallel restartable build, skips.

Building decodes each video file once, in worker processes (`num_workers`, default every
core, at most one per `VIDEOS_PER_WORKER` videos to decode; fewer than two: in this
process), into a per-file cache file under `DATA_DIR/_build_cache/NAME/CONFIG/` (`.pkl`
frames, or a `.skip` file with the reason it cannot be used); an interrupted build run
again reuses every cached video and only decodes the rest, and videos that another config
of the same dataset already holds (`ucf101/split1` when building `split2`) are copied from
it, not decoded again. Videos that are missing or cannot be decoded are skipped, never
fatal, and listed with their reason in `skipped.json` inside the dataset's version folder;
a split left with no usable video is left out of the dataset, with a notice.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.proto import tf_example_pb2
from tqdm import tqdm

from cost_jax import errors
from cost_jax.data import catalog, video_io

SKIP_REPORT = "skipped.json"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def video_features(class_names=None) -> tfds.features.FeaturesDict:
  """Frames as JPEG, decoded only when read (with `tfds.decode.SkipDecoding`)."""
  label = (tfds.features.ClassLabel(names=list(class_names)) if class_names is not None
           else tfds.features.ClassLabel())
  return tfds.features.FeaturesDict({
      "video": tfds.features.Video(shape=(None, None, None, 3), encoding_format="jpeg"),
      "label": label,
      "class_name": tfds.features.Text(),
      "video_id": tfds.features.Text(),
      "fps": tfds.features.Scalar(np.float32),
      "num_frames": tfds.features.Scalar(np.int32),
  })


@dataclasses.dataclass(frozen=True)
class VideoItem:
  """One video to build: its key (unique in the split), file, and label."""
  video_id: str
  path: str | None        # None: listed in the annotations but not found on disk
  label: int
  class_name: str
  problem: str = ""       # why it cannot be used, known before decoding (not a video)


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  short_side: int = 256   # pixels; 0 keeps the stored size
  fps: float = 0.0        # 0 keeps the native frame rate
  jpeg_quality: int = 90


def _write_atomically(path: epath.Path, data: bytes):
  """Written whole, then renamed: a cache file is always complete (local or gs://)."""
  tmp = epath.Path(f"{path}.tmp{os.getpid()}")
  tmp.write_bytes(data)
  tmp.replace(path)


def _decode_to_cache(path: str, cache_stem: str, options: DecodeOptions) -> str | None:
  """Worker: decodes one video into `cache_stem.pkl`, or writes why it cannot be used
  into `cache_stem.skip`; returns that reason or None."""
  try:
    video = video_io.decode_video(path, options.short_side, options.fps,
                                  options.jpeg_quality)
  except video_io.VideoError as e:
    reason = str(e)
  except Exception as e:  # noqa: BLE001  a decoder crash on one file must not stop the build
    reason = f"decoder error {type(e).__name__}: {e}"
  else:
    _write_atomically(epath.Path(cache_stem + ".pkl"), pickle.dumps(
        {"frames": video.frames, "fps": video.fps}, protocol=pickle.HIGHEST_PROTOCOL))
    return None
  _write_atomically(epath.Path(cache_stem + ".skip"), reason.encode())
  return reason


def _cache_name(key: str) -> str:
  """A file stem for `key`: readable, and unique through a hash of the exact key."""
  readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[-80:]
  return f"{readable}.{hashlib.sha1(key.encode()).hexdigest()[:10]}"


# A decoding worker is started for every this many videos to decode (at most
# `num_workers`; fewer than two: the videos are decoded in this process). Starting one
# took 4.8 s on the 2-core CPU (it imports TensorFlow), decoding a generated 10 s 340x256
# clip 0.18 s.
VIDEOS_PER_WORKER = 16


class VideoDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the file-based builders: parallel decode, cache, skip report.

  Subclasses implement `_class_names()` (None when only reading) and
  `_split_items() -> {split: [VideoItem]}`, and may override `_assign_splits` to choose
  splits once it is known which videos decode. `videos_dir` and `annotations_dir` (the
  dataset's official files) are None when a built dataset is only read.
  `videos_per_worker` (default `VIDEOS_PER_WORKER`) sets how many videos to decode make
  a worker process worth starting.
  """

  def __init__(self, *, videos_dir=None, annotations_dir=None,
               decode_options: DecodeOptions | None = None,
               num_workers: int | None = None, keep_cache: bool = False,
               videos_per_worker: int = VIDEOS_PER_WORKER, **kwargs):
    self._videos_dir, self._annotations_dir = videos_dir, annotations_dir
    self._decode_options = decode_options or DecodeOptions()
    self._num_workers = num_workers or os.cpu_count() or 1
    self._videos_per_worker = max(1, videos_per_worker)
    self._keep_cache = keep_cache
    self._skipped: list[dict] = []
    super().__init__(**kwargs)

  def _class_names(self):
    raise NotImplementedError

  def _split_items(self) -> dict[str, list[VideoItem]]:
    raise NotImplementedError

  def _assign_splits(self, items: dict[str, list[VideoItem]],
                     usable: Callable[[VideoItem], bool]) -> dict[str, list[VideoItem]]:
    """The final splits, once `usable(item)` tells which videos decoded; by default the
    splits of `_split_items`."""
    del usable
    return items

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=video_features(self._class_names()),
        metadata=tfds.core.MetadataDict(short_side=self._decode_options.short_side,
                                        fps=self._decode_options.fps))

  @property
  def cache_dir(self) -> epath.Path:
    root = epath.Path(self._data_dir_root)
    return root / "_build_cache" / self.name / (self.builder_config.name
                                                if self.builder_config else "default")

  def _cache_stem(self, item: VideoItem) -> epath.Path:
    return self.cache_dir / _cache_name(item.path)  # a file decodes the same in any split

  def _problem(self, item: VideoItem) -> str | None:
    """Why `item` cannot be used (from the small `.skip` files only), or None."""
    if item.problem:
      return item.problem
    if item.path is None:
      return "missing file"
    skip = epath.Path(f"{self._cache_stem(item)}.skip")
    return skip.read_text() if skip.exists() else None

  def _sibling_builds(self) -> list[catalog.BuiltDataset]:
    """The other configs of this dataset already built in the data dir with the same
    decode options (e.g. `ucf101/split1` when building `split2`): they hold decoded
    videos this build can take instead of decoding them again."""
    if not self.builder_config:
      return []
    root = epath.Path(self._data_dir_root)
    found = []
    for folder in sorted((root / self.name).glob("*")):
      if folder.name == self.builder_config.name or not folder.is_dir():
        continue
      built = catalog.find(f"{self.name}/{folder.name}", os.fspath(root))
      options = self._decode_options
      if built is not None and built.metadata.get("short_side") == options.short_side \
          and float(built.metadata.get("fps", 0)) == float(options.fps):
        found.append(built)
    return found

  def _take_from_siblings(self, wanted: dict[str, str]) -> int:
    """Writes the cache file of every video of `wanted` ({video id: path}) that a
    sibling build holds, from its stored frames; returns how many."""
    taken = 0
    for built in self._sibling_builds():
      for split in built.splits:
        for record in built.records(split):
          features = tf_example_pb2.Example.FromString(record).features.feature
          vid = features["video_id"].bytes_list.value[0].decode()
          if vid not in wanted:
            continue
          frames = list(features["video"].bytes_list.value)
          fps = float(features["fps"].float_list.value[0])
          _write_atomically(epath.Path(f"{self.cache_dir / _cache_name(wanted.pop(vid))}.pkl"),
                            pickle.dumps({"frames": frames, "fps": fps},
                                         protocol=pickle.HIGHEST_PROTOCOL))
          taken += 1
      if taken:
        print(f"{self.name}: took {taken} decoded videos from {built.name} (same "
              "short side and frame rate), no decoding", file=sys.stderr)
    return taken

  def _decode_all(self, items: list[VideoItem]):
    """Decodes every listed video not in the cache yet, on `num_workers` processes;
    videos that a sibling build (`_sibling_builds`) holds are taken from it."""
    self.cache_dir.mkdir(parents=True, exist_ok=True)
    cached = lambda p: any(epath.Path(f"{self.cache_dir / _cache_name(p)}{ext}").exists()
                           for ext in (".pkl", ".skip"))
    usable = [it for it in items if it.path is not None and not it.problem]
    files = {it.path for it in usable}
    wanted = {it.video_id: it.path for it in usable if not cached(it.path)}
    taken = self._take_from_siblings(wanted) if wanted else 0
    todo = sorted(p for p in files if not cached(p))
    workers = min(self._num_workers, len(todo) // self._videos_per_worker)
    print(f"{self.name}: {len(files)} video files, {len(files) - len(todo) - taken} "
          f"already decoded, {taken} taken from another build, decoding {len(todo)} "
          + (f"with {workers} workers" if workers > 1 else "in this process"),
          file=sys.stderr)
    if not todo:
      return
    if workers <= 1:  # too few videos to be worth a worker's start-up (small trees, tests)
      for path in tqdm(todo, desc="decoding", unit="video"):
        _decode_to_cache(path, os.fspath(self.cache_dir / _cache_name(path)),
                         self._decode_options)
      return
    context = multiprocessing.get_context("spawn")  # TF in the parent does not fork well
    with concurrent.futures.ProcessPoolExecutor(workers, context) as pool:
      futures = [pool.submit(_decode_to_cache, path,
                             os.fspath(self.cache_dir / _cache_name(path)),
                             self._decode_options) for path in todo]
      for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                         desc="decoding", unit="video"):
        future.result()

  def _split_generators(self, dl_manager):
    del dl_manager
    listed = self._split_items()
    self._decode_all([it for items in listed.values() for it in items])
    splits = self._assign_splits(listed, lambda it: self._problem(it) is None)
    generators = {}
    for split, items in splits.items():
      keys = [item.video_id for item in items]
      if len(set(keys)) != len(keys):
        raise ValueError(f"split {split!r} lists some videos twice; video ids must be "
                         "unique")
      problems = {it.video_id: self._problem(it) for it in items}
      for item in items:
        if problems[item.video_id]:
          self._skip(split, item, problems[item.video_id])
      if all(problems.values()):
        print(f"{self.name}: no usable video for the {split!r} split "
              f"({len(items)} listed): the dataset is built without it", file=sys.stderr)
        continue
      generators[split] = self._generate_examples(
          [it for it in items if not problems[it.video_id]])
    if not generators:
      reasons = sorted({r["reason"] for r in self._skipped})
      raise errors.UserError(
          f"{self.name}: none of the {len(self._skipped)} listed videos can be used "
          f"(e.g. {'; '.join(reasons[:3])}): check --videos")
    return generators

  def _generate_examples(self, items):
    for item in items:
      with epath.Path(f"{self._cache_stem(item)}.pkl").open("rb") as f:
        record = pickle.load(f)
      yield item.video_id, {
          "video": record["frames"], "label": item.label, "class_name": item.class_name,
          "video_id": item.video_id, "fps": record["fps"],
          "num_frames": len(record["frames"])}

  def _skip(self, split, item, reason):
    self._skipped.append({"split": split, "video_id": item.video_id, "path": item.path,
                          "reason": reason})

  def _download_and_prepare(self, dl_manager, download_config):
    self._skipped = []
    super()._download_and_prepare(dl_manager, download_config)
    # Inside download_and_prepare, data_dir is the temporary folder renamed at the end.
    (epath.Path(self.data_dir) / SKIP_REPORT).write_text(json.dumps(self._skipped, indent=1))
    if self._skipped:
      print(f"{self.name}: skipped {len(self._skipped)} videos; see {SKIP_REPORT} in "
            "the dataset folder", file=sys.stderr)
    if not self._keep_cache:
      self.cache_dir.rmtree(missing_ok=True)


def read_lines(path) -> list[str]:
  """The non-blank lines of a text file as its owners publish them: CRLF or LF line
  ends, spaces around, a UTF-8 byte-order mark, and bytes that are not UTF-8 (read as
  Latin-1) all tolerated."""
  data = epath.Path(path).read_bytes()
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError:
    text = data.decode("latin-1")
  return [line.strip() for line in text.splitlines() if line.strip()]


def list_entry(line: str) -> str:
  """'class/video.avi 3' -> 'class/video.avi': a split list's entry without its trailing
  label number (names may contain spaces)."""
  parts = line.strip().rsplit(maxsplit=1)
  return parts[0] if len(parts) == 2 and parts[1].isdigit() else line.strip()


class FileIndex:
  """The files below a folder by relative path, matched without regard to case: the
  official lists of UCF101 and the files they name disagree in case for one class
  (`HandstandPushups/v_HandstandPushups_...` lists `v_HandStandPushups_...` files)."""

  def __init__(self, root):
    self.root = epath.Path(root)
    if not self.root.is_dir():
      raise errors.MissingInputError(f"--videos={root}: no such folder")
    self._paths = {}
    for dirpath, _, files in sorted(tf.io.gfile.walk(str(root))):
      rel_dir = os.path.relpath(dirpath, str(root)) if "://" not in str(root) else (
          dirpath[len(str(root)):].strip("/") or ".")
      for name in sorted(files):
        rel = name if rel_dir == "." else f"{rel_dir}/{name}"
        self._paths.setdefault(rel.replace(os.sep, "/").lower(), str(self.root / rel))

  def find(self, relative: str) -> str | None:
    """The path of `relative` (any case, `/` or `\\` separated), or None."""
    return self._paths.get(relative.replace("\\", "/").strip("/").lower())

  def __len__(self):
    return len(self._paths)


def index_video_files(root: str) -> dict[str, str]:
  """Every video file below `root` (local or gs://), by name without extension (the
  first one wins)."""
  index = {}
  for dirpath, _, files in sorted(tf.io.gfile.walk(str(root))):
    for name in sorted(files):
      path = epath.Path(dirpath) / name
      if path.suffix.lower() in VIDEO_EXTENSIONS:
        index.setdefault(path.stem, str(path))
  return index
