"""The benchmarks researchers report, built from their official files as published:
UCF101 and HMDB51 with their numbered splits (exactly the listed videos, no leak between
train and test), Something-Something v2 from its JSON files; and the videos real
datasets hold (MPEG-4 part 2 in AVI, VP9 in webm, metadata that is not UTF-8, variable
frame rates)."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

import processes
import video_files
from conftest import HMDB_CLASSES, SSV2_LABELS, UCF_CLASSES, _ucf_file
from cost_jax.data import video_io
from cost_jax.data.builders import Hmdb51, SomethingSomethingV2, Ucf101, common
from cost_jax.data.builders.common import DecodeOptions

OPTIONS = DecodeOptions(short_side=24)


def _build(cls, tree, data_dir, config=None):
  videos, annotations = tree
  builder = cls(config=config, videos_dir=str(videos), annotations_dir=str(annotations),
                data_dir=str(data_dir), num_workers=1, decode_options=OPTIONS)
  builder.download_and_prepare()
  return builder


def _examples(builder, split):
  ds = builder.as_dataset(split=split, decoders={"video": tfds.decode.SkipDecoding()})
  return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()}
          for ex in tfds.as_numpy(ds)]


def _skipped(builder):
  return {r["video_id"]: r["reason"]
          for r in json.loads((builder.data_path / "skipped.json").read_text())}


@pytest.fixture(scope="module")
def ucf_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("ucf_tfds")


@pytest.fixture(scope="module")
def ucf_split1(ucf101_tree, ucf_data_dir):
  return _build(Ucf101, ucf101_tree, ucf_data_dir, "split1")


def _listed(cls, g, c):
  return _ucf_file(cls, g, c).replace("HandStand", "Handstand")


def test_ucf101_split_holds_exactly_its_official_lists(ucf_split1):
  assert ucf_split1.info.features["label"].names == list(UCF_CLASSES)  # classInd order
  train, test = _examples(ucf_split1, "train"), _examples(ucf_split1, "test")
  want_train = {_listed(c, g, k) for c in UCF_CLASSES for g in (2, 3) for k in (1, 2)}
  want_test = {_listed(c, 1, k) for c in UCF_CLASSES for k in (1, 2)}
  assert {e["video_id"] for e in train} == want_train
  assert {e["video_id"] for e in test} == want_test
  for e in train + test:
    assert e["class_name"] == UCF_CLASSES[e["label"]] == e["video_id"].split("/")[0]
  # Found on disk in another case; the missing one reported.
  assert any(e["class_name"] == "HandstandPushups" for e in test)
  assert _skipped(ucf_split1) == {"YoYo/v_YoYo_g09_c01.avi": "missing file"}
  # The clip with Latin-1 metadata decoded, with every frame.
  clip = next(e for e in test if e["video_id"] == _listed("ApplyEyeMakeup", 1, 1))
  assert clip["num_frames"] == 10


def test_a_second_split_reuses_the_first_splits_videos(ucf101_tree, ucf_data_dir,
                                                      ucf_split1, monkeypatch):
  decoded = []
  decode = common.video_io.decode_video
  monkeypatch.setattr(common.video_io, "decode_video",
                      lambda path, *a, **k: decoded.append(path) or decode(path, *a, **k))
  split2 = _build(Ucf101, ucf101_tree, ucf_data_dir, "split2")
  assert decoded == []  # every video of split 2 is in split 1's build
  assert {e["video_id"] for e in _examples(split2, "test")} == {
      _listed(c, 2, k) for c in UCF_CLASSES for k in (1, 2)}
  first = {e["video_id"]: e["video"] for s in ("train", "test")
           for e in _examples(ucf_split1, s)}
  for e in _examples(split2, "train"):
    assert list(e["video"]) == list(first[e["video_id"]])
  # Splits 1 and 2 test different groups: what split 2 trains on, split 1 tested.
  assert {e["video_id"] for e in _examples(split2, "train")} & set(first) == set(first) - {
      e["video_id"] for e in _examples(split2, "test")}


def test_hmdb51_codes_one_train_two_test_zero_neither(hmdb51_tree, tmp_path):
  builder = _build(Hmdb51, hmdb51_tree, tmp_path, "split1")
  assert builder.info.features["label"].names == sorted(HMDB_CLASSES)
  train, test = _examples(builder, "train"), _examples(builder, "test")
  ids = lambda es, i: {e["video_id"] for e in es if e["video_id"].endswith(f"_{i}.avi")}
  assert len(test) == 3 and ids(test, 1) == {e["video_id"] for e in test}
  assert len(train) == 6 and ids(train, 2) | ids(train, 3) == {e["video_id"] for e in train}
  assert not ids(train, 0) and not ids(test, 0)  # code 0: in neither
  for e in train + test:
    assert e["class_name"] == sorted(HMDB_CLASSES)[e["label"]]
  # The clips whose metadata is not UTF-8 are in, with every frame.
  assert all(e["num_frames"] == 12 for e in train if e["video_id"].endswith("_2.avi"))


def test_something_something_v2_classes_come_from_templates(ssv2_tree, tmp_path, capfd):
  builder = _build(SomethingSomethingV2, ssv2_tree, tmp_path)
  names = builder.info.features["label"].names
  assert names == list(SSV2_LABELS)  # labels.json's order, the class without videos too
  assert "test" not in builder.info.splits
  assert "has no labels (the test labels are not public): not built" in capfd.readouterr().err
  train, validation = _examples(builder, "train"), _examples(builder, "validation")
  assert len(train) == 6 and len(validation) == 3
  assert _skipped(builder) == {"1099": "missing file"}
  videos, annotations = ssv2_tree
  entries = json.loads((annotations / "something-something-v2-train.json").read_text())
  by_id = {e["id"]: e for e in entries}
  for e in train:
    template = by_id[e["video_id"]]["template"]
    assert e["label"] == int(SSV2_LABELS[template.replace("[", "").replace("]", "")])
    # VP9 decoded frame for frame.
    assert e["num_frames"] == video_files.count_frames(str(videos / f"{e['video_id']}.webm"))[0]
    assert e["fps"] == 12.0


def test_video_folder_refuses_lists_that_leak_in_one_line(ucf101_tree, tmp_path):
  videos, lists = ucf101_tree
  out = processes.run("cost_jax.prepare", "video_folder", f"--videos={videos}",
                      f"--splits={lists}", f"--data_dir={tmp_path}", timeout=120)
  assert out.returncode == 2, out.stderr[-2000:]
  line, = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert ("holds 3 test lists (testlist01.txt, testlist02.txt, testlist03.txt)" in line
          and "python -m cost_jax.prepare ucf101|hmdb51" in line and "--split=N" in line)
  assert "Traceback" not in out.stderr
  # One list per split, but a video in both.
  from cost_jax import errors
  from cost_jax.data.builders import VideoFolder
  twice = tmp_path / "lists"
  twice.mkdir()
  (twice / "trainlist01.txt").write_bytes((lists / "trainlist01.txt").read_bytes())
  (twice / "testlist01.txt").write_text(f"{_listed('YoYo', 2, 1)}\n")
  builder = VideoFolder(videos_dir=str(videos), splits_dir=str(twice),
                        data_dir=str(tmp_path / "d"), num_workers=1)
  with pytest.raises(errors.ConfigError, match="listed in both testlist01.txt and "
                     "trainlist01.txt"):
    builder.download_and_prepare()


def test_variable_frame_rates_resample_by_timestamp(tmp_path):
  times = np.cumsum([0, 0.04, 0.04, 0.12, 0.04, 0.2, 0.04])  # seconds
  path = video_files.write_encoded(tmp_path / "vfr.mp4", len(times), 32, 32, codec="libx264",
                                   times=times)
  native = video_io.decode_video(path, 0, encode=False)
  assert len(native.frames) == len(times)  # every frame, whatever the rate
  resampled = video_io.decode_video(path, 0, fps=25, encode=False)
  levels = [f.mean() for f in native.frames]  # frame t is 6 levels brighter than t - 1
  source = [int(np.argmin([abs(f.mean() - l) for l in levels])) for f in resampled.frames]
  # Slot k (time k / 25) shows the frame nearest in time, until half a frame after the
  # last.
  last = times[-1] + 0.5 / native.source_fps
  expected = [int(np.argmin(np.abs(times - k / 25))) for k in range(int(np.ceil(last * 25)))]
  assert source == expected
