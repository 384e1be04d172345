"""What every video dataset builder shares: features, a parallel restartable build, skips.

Building decodes each video once, in worker processes (`num_workers`, default every core),
into a per-video cache file under `DATA_DIR/_build_cache/NAME/CONFIG/`; an interrupted build
run again reuses every cached video and only decodes the rest. Videos that are missing or
cannot be decoded are skipped, never fatal, and listed with their reason in
`skipped.json` inside the dataset's version folder.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import pickle
import sys

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from tqdm import tqdm

from cost_jax.data import video_io

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


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  short_side: int = 256   # pixels; 0 keeps the stored size
  fps: float = 0.0        # 0 keeps the native frame rate
  jpeg_quality: int = 90


def _decode_to_cache(path: str, cache_file: str, options: DecodeOptions) -> str | None:
  """Worker: decodes one video into `cache_file`; returns the skip reason or None."""
  try:
    video = video_io.decode_video(path, options.short_side, options.fps,
                                  options.jpeg_quality)
    record = {"frames": video.frames, "fps": video.fps}
  except video_io.VideoError as e:
    record = {"skip": str(e)}
  except Exception as e:  # noqa: BLE001  a decoder crash on one file must not stop the build
    record = {"skip": f"decoder error {type(e).__name__}: {e}"}
  # Written whole, then renamed: a cache file is always complete (local or gs://).
  tmp = epath.Path(cache_file + f".tmp{os.getpid()}")
  tmp.write_bytes(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
  tmp.replace(cache_file)
  return record.get("skip")


def _cache_name(video_id: str) -> str:
  """A file name for `video_id`: readable, and unique through a hash of the exact id."""
  readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)[-80:]
  return f"{readable}.{hashlib.sha1(video_id.encode()).hexdigest()[:10]}.pkl"


class VideoDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the file-based builders: parallel decode, cache, skip report.

  Subclasses implement `_class_names()` (None when only reading) and
  `_split_items() -> {split: [VideoItem]}`, and set `metadata` through `_metadata()`.
  """

  def __init__(self, *, decode_options: DecodeOptions | None = None,
               num_workers: int | None = None, keep_cache: bool = False, **kwargs):
    self._decode_options = decode_options or DecodeOptions()
    self._num_workers = num_workers or os.cpu_count() or 1
    self._keep_cache = keep_cache
    self._skipped: list[dict] = []
    super().__init__(**kwargs)

  def _class_names(self):
    raise NotImplementedError

  def _split_items(self) -> dict[str, list[VideoItem]]:
    raise NotImplementedError

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

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, items)
            for split, items in self._split_items().items()}

  def _generate_examples(self, split, items):
    cache = self.cache_dir / split
    cache.mkdir(parents=True, exist_ok=True)
    keys = [item.video_id for item in items]
    if len(set(keys)) != len(keys):
      raise ValueError(f"split {split!r} lists some videos twice; video ids must be unique")
    todo = [it for it in items
            if it.path is not None and not (cache / _cache_name(it.video_id)).exists()]
    print(f"{self.name} {split}: {len(items)} videos, {len(items) - len(todo)} already "
          f"decoded or missing, decoding {len(todo)} with {self._num_workers} workers",
          file=sys.stderr)
    if todo:
      context = multiprocessing.get_context("spawn")  # TF in the parent does not fork well
      with concurrent.futures.ProcessPoolExecutor(self._num_workers, context) as pool:
        futures = [pool.submit(_decode_to_cache, it.path, os.fspath(cache /
                                                                    _cache_name(it.video_id)),
                               self._decode_options) for it in todo]
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc=f"decoding {split}", unit="video"):
          future.result()
    for item in items:
      if item.path is None:
        self._skip(split, item, "missing file")
        continue
      with (cache / _cache_name(item.video_id)).open("rb") as f:
        record = pickle.load(f)
      if "skip" in record:
        self._skip(split, item, record["skip"])
        continue
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
    print(f"{self.name}: skipped {len(self._skipped)} videos; see {SKIP_REPORT} in "
          "the dataset folder", file=sys.stderr)
    if not self._keep_cache:
      self.cache_dir.rmtree(missing_ok=True)


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
