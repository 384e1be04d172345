"""Building TFDS datasets from real mp4 files: Kinetics, Moments in Time, video folders."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cost_jax.data.builders import Kinetics, MomentsInTime, VideoFolder
from cost_jax.data.builders.common import DecodeOptions
from conftest import CLASSES, SHORT_SIDE, VIDEOS, _build_kinetics3
import video_files

def _examples(builder, split):
  return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_kinetics_counts_labels_frames_and_short_side(kinetics3):
  builder, paths = kinetics3
  assert builder.info.features["label"].names == list(CLASSES)
  assert builder.info.splits["train"].num_examples == 4
  assert builder.info.splits["validation"].num_examples == 2
  assert builder.info.metadata["short_side"] == SHORT_SIDE
  by_id = {yid: (label, n, h, w, fps) for yid, label, n, h, w, fps in VIDEOS}
  for split in ("train", "validation"):
    for ex in _examples(builder, split):
      yid = ex["video_id"].decode()[:11]
      label, n, h, w, fps = by_id[yid]
      frames, pyav_fps = video_files.count_frames(paths[yid])
      assert ex["label"] == label and ex["class_name"].decode() == CLASSES[label]
      assert ex["num_frames"] == frames == ex["video"].shape[0] == n
      assert ex["fps"] == pytest.approx(pyav_fps) and pyav_fps == fps
      assert min(ex["video"].shape[1:3]) == SHORT_SIDE
      assert ex["video"].dtype == np.uint8


def test_kinetics_skip_report_names_the_bad_entries(kinetics3):
  builder, _ = kinetics3
  report = json.loads((builder.data_path / "skipped.json").read_text())
  reasons = {r["video_id"][:11]: r["reason"] for r in report}
  assert set(reasons) == {"corruptcorr", "missingmiss"}
  assert reasons["missingmiss"] == "missing file"
  assert "cannot open" in reasons["corruptcorr"] or "undecodable" in reasons["corruptcorr"]


def test_kinetics_refuses_a_wrong_class_count(kinetics_files, tmp_path):
  videos, annotations, _ = kinetics_files
  with pytest.raises(ValueError, match="has 3 classes but kinetics/400 has 400"):
    Kinetics(config="400", videos_dir=str(videos), annotations_dir=str(annotations),
             data_dir=str(tmp_path))


def test_interrupted_build_reuses_decoded_videos(kinetics_files, tmp_path, monkeypatch):
  from cost_jax.data.builders import common
  data_dir = tmp_path / "tfds"
  calls = []
  real = common._decode_to_cache
  # First build: keep the cache, as an interrupted build leaves it.
  _build_kinetics3(kinetics_files, data_dir, keep_cache=True)
  cache = data_dir / "_build_cache" / "kinetics" / "3"
  # One file per video file of every split: 6 decoded, and the corrupt one's reason.
  assert (len(list(cache.glob("*.pkl"))), len(list(cache.glob("*.skip")))) == (6, 1)
  # Rebuild from scratch with the cache present: nothing is decoded again.
  import shutil
  shutil.rmtree(data_dir / "kinetics")
  monkeypatch.setattr(common, "_decode_to_cache", lambda *a: calls.append(a) or real(*a))
  builder = _build_kinetics3(kinetics_files, data_dir)
  assert calls == []
  assert builder.info.splits["train"].num_examples == 4
  assert not cache.exists()  # removed after a successful build


def test_a_built_dataset_is_found_by_name(kinetics3):
  from cost_jax import errors
  from cost_jax.data import input as input_lib
  import ml_collections
  builder, _ = kinetics3
  config = ml_collections.ConfigDict({"name": "kinetics/3",
                                      "data_dir": os.fspath(builder.data_dir_root)})
  tf_data = ml_collections.ConfigDict({"backend": "tf_data"})
  restored = input_lib.open_dataset(config, tf_data)
  assert restored.class_names == tuple(CLASSES)
  assert restored.num_examples("validation") == 2
  assert restored.metadata["short_side"] == SHORT_SIDE
  assert restored.tfds_builder().info.splits["train"].num_examples == 4
  config.name = "kinetics/400"
  with pytest.raises(errors.DatasetNotFoundError, match="cost_jax.prepare kinetics"):
    input_lib.open_dataset(config, tf_data)


@pytest.fixture(scope="module")
def moments(tmp_path_factory):
  root = tmp_path_factory.mktemp("mit")
  videos, annotations = root / "Moments_in_Time_Mini", root / "annotations"
  annotations.mkdir()
  (annotations / "moments_categories.txt").write_text(
      "".join(f"{c},{i}\n" for i, c in enumerate(CLASSES)))
  rows = {"training": [], "validation": []}
  for i, (yid, label, n, h, w, fps) in enumerate(VIDEOS):
    folder = "training" if i < 4 else "validation"
    rel = f"{CLASSES[label]}/{yid}.mp4"
    video_files.write_video(str(videos / folder / rel), n, h, w, fps, seed=i)
    rows[folder].append(f"{rel},{CLASSES[label]},3,0\n")
  video_files.write_corrupt(str(videos / "training" / "juggling" / "bad.mp4"))
  rows["training"] += ["juggling/bad.mp4,juggling,3,0\n", "bowling/absent.mp4,bowling,2,1\n"]
  (annotations / "trainingSet.csv").write_text("".join(rows["training"]))
  (annotations / "validationSet.csv").write_text("".join(rows["validation"]))
  data_dir = root / "tfds"
  builder = MomentsInTime(videos_dir=str(videos), annotations_dir=str(annotations),
                          data_dir=str(data_dir), num_workers=2,
                          decode_options=DecodeOptions(short_side=SHORT_SIDE, fps=10))
  builder.download_and_prepare()
  return builder


def _check_build(builder, class_names, split_sizes, skipped):
  """Class names, examples per split, and the video ids of the skip report."""
  assert builder.info.features["label"].names == list(class_names)
  for split, size in split_sizes.items():
    assert builder.info.splits[split].num_examples == size
  report = json.loads((builder.data_path / "skipped.json").read_text())
  assert {r["video_id"] for r in report} == set(skipped)


def test_moments_in_time_layout(moments):
  _check_build(moments, CLASSES, {"train": 4, "validation": 2},
               {"juggling/bad.mp4", "bowling/absent.mp4"})
  for ex in _examples(moments, "train"):
    yid = ex["video_id"].decode().split("/")[1][:11]
    n, fps = next((v[2], v[5]) for v in VIDEOS if v[0] == yid)
    assert ex["fps"] == 10.0
    # Resampled to 10 fps with the nearest source frame for each output time k / 10:
    # source frame n - 1 is the last, so k * fps / 10 < n - 0.5.
    assert ex["num_frames"] == math.ceil((n - 0.5) / (fps / 10))


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("ucf") / "videos"
  for i, (yid, label, n, h, w, fps) in enumerate(VIDEOS):
    video_files.write_video(str(root / CLASSES[label] / f"v_{yid}.avi"), n, h, w, fps,
                            seed=i)
  video_files.write_corrupt(str(root / "juggling" / "v_broken.mp4"))
  (root / "README.txt").write_text("not a class folder")
  splits = root.parent / "splits"
  splits.mkdir()
  (splits / "trainlist01.txt").write_text(
      "".join(f"{CLASSES[v[1]]}/v_{v[0]}.avi {v[1] + 1}\n" for v in VIDEOS[:4]) +
      "juggling/v_broken.mp4 3\n")
  (splits / "testlist01.txt").write_text(
      "".join(f"{CLASSES[v[1]]}/v_{v[0]}.avi\n" for v in VIDEOS[4:]))
  from cost_jax.data.builders.video_folder import VideoFolderConfig
  builder = VideoFolder(config=VideoFolderConfig(name="ucf_mini"), videos_dir=str(root),
                        splits_dir=str(splits), data_dir=str(root.parent / "tfds"),
                        num_workers=2, decode_options=DecodeOptions(short_side=SHORT_SIDE))
  builder.download_and_prepare()
  return builder


def test_video_folder_layout(folder_dataset):
  _check_build(folder_dataset, sorted(CLASSES), {"train": 4, "test": 2},
               {"juggling/v_broken.mp4"})
  for ex in _examples(folder_dataset, "test"):
    assert ex["class_name"].decode() == CLASSES[ex["label"]]
    assert min(ex["video"].shape[1:3]) == SHORT_SIDE


def test_cache_names_are_unique_for_ids_that_sanitise_alike():
  from cost_jax.data.builders.common import _cache_name
  assert _cache_name("x_y/z.mp4") != _cache_name("x/y_z.mp4")
  assert _cache_name("a/b.mp4").startswith("a_b.mp4.")
  assert _cache_name("/videos/cooking egg/é.mp4").startswith("_videos_cooking_egg_é.mp4.")


def test_a_decoder_crash_is_a_skip_not_a_failed_build(tmp_path, monkeypatch):
  from cost_jax.data.builders import common
  def crash(*args, **kwargs):
    raise MemoryError("out of memory in the decoder")
  monkeypatch.setattr(common.video_io, "decode_video", crash)
  reason = common._decode_to_cache("any.mp4", str(tmp_path / "v"), DecodeOptions())
  assert reason == "decoder error MemoryError: out of memory in the decoder"
  assert (tmp_path / "v.skip").read_text() == reason
  assert not (tmp_path / "v.pkl").exists()
