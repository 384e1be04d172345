"""Test setup: 8 simulated CPU devices, quiet TensorFlow, no GPU for TF."""

import os
import sys

# The README's test command installs with `pip --no-compile`: compiling every module of
# every package took 30 to 50 s of a fresh install; the tests import a small part of them.
# The tests' processes write the bytecode of what they import instead, once, also where
# PYTHONDONTWRITEBYTECODE is set (else every process would compile TensorFlow anew).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from processes import CACHE_DIR, FAST_COMPILE

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# One compilation cache for the session: tests that build the same network and steps
# (every tiny training run) compile them once.
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
# Processes the tests start without `processes.environment` (the notebook's kernel) too.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from cost_jax.data.builders import Kinetics  # noqa: E402
from cost_jax.data.builders.common import DecodeOptions  # noqa: E402
from cost_jax.data.builders.kinetics import KineticsConfig  # noqa: E402
import video_files  # noqa: E402

CLASSES = ("bowling", "cooking egg", "juggling")
# (youtube id, class, frames, height, width, fps)
VIDEOS = [("aaaaaaaaaaa", 0, 12, 48, 64, 25), ("bbbbbbbbbbb", 1, 20, 64, 48, 30),
          ("ccccccccccc", 2, 9, 40, 72, 25), ("ddddddddddd", 0, 15, 48, 64, 30),
          ("eeeeeeeeeee", 1, 11, 36, 36, 25), ("fffffffffff", 2, 17, 48, 80, 24)]
SHORT_SIDE = 32


def _kinetics_name(yid):
  return f"{yid}_000010_000020"


@pytest.fixture(scope="session")
def kinetics_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("kinetics")
  videos, annotations = root / "videos", root / "annotations"
  paths = {}
  for i, (yid, label, n, h, w, fps) in enumerate(VIDEOS):
    # One folder per class, as many Kinetics copies are laid out.
    path = videos / CLASSES[label] / f"{_kinetics_name(yid)}.mp4"
    paths[yid] = video_files.write_video(str(path), n, h, w, fps, seed=i)
  video_files.write_corrupt(str(videos / "juggling" / f"{_kinetics_name('corruptcorr')}.mp4"))
  annotations.mkdir()
  header = "label,youtube_id,time_start,time_end,split,is_cc\n"
  train = [VIDEOS[i] for i in (0, 1, 2, 3)] + [("corruptcorr", 2)] + [("missingmiss", 1)]
  val = [VIDEOS[i] for i in (4, 5)]
  for name, rows, split in (("train.csv", train, "train"), ("validate.csv", val, "val")):
    lines = [f'"{CLASSES[r[1]]}",{r[0]},10,20,{split},0\n' for r in rows]
    (annotations / name).write_text(header + "".join(lines))
  return videos, annotations, paths


def _build_kinetics3(kinetics_files, data_dir, **kwargs):
  videos, annotations, _ = kinetics_files
  config = KineticsConfig(name="3", num_classes=3)
  builder = Kinetics(config=config, videos_dir=str(videos), annotations_dir=str(annotations),
                     # Two decoding processes, not this one: their path is tested here.
                     data_dir=str(data_dir), num_workers=2, videos_per_worker=1,
                     decode_options=DecodeOptions(short_side=SHORT_SIDE), **kwargs)
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope="session")
def kinetics3(kinetics_files, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds_k3")
  return _build_kinetics3(kinetics_files, data_dir), kinetics_files[2]


# Modules whose tests share an expensive fixture, by the name of what they share: each
# group runs in one xdist worker, so that the fixture is built once, not once in each
# worker that draws one of its tests (the two-process run of test_multihost takes 45 s
# of both cores). Every other test is scheduled alone.
SHARED_FIXTURES = {"tests/test_multihost.py": "straight", "tests/test_study.py": "tiny_study",
                   "tests/test_datasets.py": "kinetics3", "tests/test_pipeline.py": "kinetics3",
                   "tests/test_official_splits.py": "ucf_split1"}


def pytest_xdist_make_scheduler(config, log):
  # A scheduler of xdist's, not `--dist loadgroup`: its `xdist_group` marks are ignored
  # with pytest 9.2 (pytest-xdist issue 1386).
  from xdist.scheduler import LoadScopeScheduling

  class SharedFixtureScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid):
      return SHARED_FIXTURES.get(nodeid.split("::", 1)[0], nodeid)

  return SharedFixtureScheduling(config, log)


def random_variables(model, x, seed=1):
  """Variables of `model` for inputs like `x`, drawn here with NumPy instead of by
  `model.init`, which XLA compiles for longer than the network itself (the tests check
  what networks compute, not how they initialise): kernels normal with variance
  1 / fan-in, BatchNorm scales 1 and offsets 0, running means 0 and variances 1."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    # NumPy, then one transfer: `jnp.ones` and the like compile a program per shape.
    name = jax.tree_util.keystr(path)
    if name.endswith(("['scale']", "['var']")):
      return np.ones(leaf.shape, leaf.dtype)
    if name.endswith(("['bias']", "['mean']")):
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) if leaf.ndim > 1 else 1
    return rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape).astype(leaf.dtype)

  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.device_put(jax.tree_util.tree_map_with_path(draw, shapes))


def tiny_config(dataset, **overrides):
  """The demo config shrunk to `synthetic_motion/tiny`-sized clips and a width-8 net,
  reading `dataset` (a `catalog.BuiltDataset`)."""
  from configs import demo
  config = demo.get_config()
  config.dataset.name = dataset.name
  config.dataset.data_dir = os.fspath(dataset.data_dir)
  config.model.width = 8
  i = config.input
  i.num_frames, i.frame_stride, i.crop_size = 4, 6, 24
  i.min_resize, i.max_resize, i.eval_resize, i.test_crop_size = 24, 28, 24, 24
  i.num_test_clips, i.num_test_crops = 2, 1
  config.batch_size = config.eval_batch_size = 16
  config.num_train_steps = 6
  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 3
  config.optimizer.warmup_epochs = 0.0
  config.update_from_flattened_dict(overrides)
  return config


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory):
  """`synthetic_motion/tiny` (64/16/24 videos of 32x32), generated on the spot."""
  import ml_collections
  from cost_jax.data import input as input_lib
  config = ml_collections.ConfigDict({"name": "synthetic_motion/tiny",
                                      "data_dir": str(tmp_path_factory.mktemp("synth"))})
  return input_lib.open_dataset(config, ml_collections.ConfigDict({"backend": "tf_data"}))


@pytest.fixture(scope="session")
def synthetic_tiny_array_record(tmp_path_factory):
  """`synthetic_motion/tiny` generated as ArrayRecord shards, for the Grain backend."""
  import ml_collections
  from cost_jax.data import input as input_lib
  config = ml_collections.ConfigDict({"name": "synthetic_motion/tiny",
                                      "data_dir": str(tmp_path_factory.mktemp("synth_ar"))})
  return input_lib.open_dataset(config, ml_collections.ConfigDict({"backend": "grain"}))


# ------------------------------------------------------------- official benchmark trees
# Tiny trees in the official layouts, with the annotation files as their owners publish
# them, built once per session.

UCF_CLASSES = ("YoYo", "ApplyEyeMakeup", "HandstandPushups")  # classInd.txt's order


def _ucf_file(cls, g, c):
  # UCF101's own files spell one class differently from its lists.
  stem = "HandStandPushups" if cls == "HandstandPushups" else cls
  return f"{cls}/v_{stem}_g{g:02d}_c{c:02d}.avi"


@pytest.fixture(scope="session")
def ucf101_tree(tmp_path_factory):
  """3 classes x 3 groups x 2 clips, MPEG-4 part 2 in AVI; split N tests group N. The
  lists are CRLF, name HandstandPushups' files in another case, and one missing video;
  one file's metadata is Latin-1."""
  root = tmp_path_factory.mktemp("ucf101")
  videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
  lists.mkdir()
  for k, cls in enumerate(UCF_CLASSES):
    for g in (1, 2, 3):
      for c in (1, 2):
        video_files.write_encoded(videos / _ucf_file(cls, g, c), 9 + g, 32, 40, 25,
                                  seed=10 * k + 2 * g + c, codec="mpeg4",
                                  title="Ó café" if (k, g, c) == (1, 1, 1) else None)
  crlf = lambda lines: "".join(f"{line}\r\n" for line in lines).encode()
  (lists / "classInd.txt").write_bytes(crlf(f"{i + 1} {c}" for i, c in
                                            enumerate(UCF_CLASSES)))
  listed = lambda cls, g, c: _ucf_file(cls, g, c).replace("HandStand", "Handstand")
  for n in (1, 2, 3):
    train = [f"{listed(cls, g, c)} {k + 1}" for k, cls in enumerate(UCF_CLASSES)
             for g in (1, 2, 3) if g != n for c in (1, 2)]
    if n == 1:
      train.append("YoYo/v_YoYo_g09_c01.avi 1")  # listed, not on disk
    test = [listed(cls, n, c) for cls in UCF_CLASSES for c in (1, 2)]
    (lists / f"trainlist0{n}.txt").write_bytes(crlf(train))
    (lists / f"testlist0{n}.txt").write_bytes(crlf(test))
  return videos, lists


HMDB_CLASSES = ("cartwheel", "brush_hair", "climb_stairs")


@pytest.fixture(scope="session")
def hmdb51_tree(tmp_path_factory):
  """3 classes x 4 videos, MPEG-4 in AVI; split files with trailing spaces and codes
  0/1/2 (video i of a class: split n tests it if i == n, and never uses video 0 in
  split 1); one cartwheel clip's metadata is not UTF-8, as in the real release."""
  root = tmp_path_factory.mktemp("hmdb51")
  videos, splits = root / "hmdb51", root / "testTrainMulti_7030_splits"
  splits.mkdir()
  for k, cls in enumerate(HMDB_CLASSES):
    # Video 3's name holds a space, as a user's copy may.
    names = [f"Clip{' ' if i == 3 else '_'}{i}_{cls}_f_cm_np2_le_med_{i}.avi" for i in range(4)]
    for i, name in enumerate(names):
      video_files.write_encoded(videos / cls / name, 10 + i, 30, 40, 30, seed=40 + 4 * k + i,
                                codec="mpeg4", title="Tr\xe4ume \xd3" if i == 2 else None)
    for n in (1, 2, 3):
      codes = ["2" if i == n else ("0" if (n, i) == (1, 0) else "1") for i in range(4)]
      (splits / f"{cls}_test_split{n}.txt").write_text(
          "".join(f"{name} {code} \n" for name, code in zip(names, codes)))
  return videos, splits


SSV2_LABELS = {"Approaching something with your camera": "0",
               "Pushing something from left to right": "1",
               "Pushing something from right to left": "2",
               "Putting something, something and something on the table": "3",
               "Holding something next to something": "4"}


@pytest.fixture(scope="session")
def ssv2_tree(tmp_path_factory):
  """Something-Something v2's JSON files and VP9 webm videos (12 fps): 6 train and 3
  validation videos, one missing; class 0 has no video."""
  import json
  root = tmp_path_factory.mktemp("ssv2")
  videos, annotations = root / "20bn-something-something-v2", root / "annotations"
  annotations.mkdir()
  templates = ["Pushing [something] from left to right",
               "Pushing [something] from right to left",
               "Putting [something], [something] and [something] on the table",
               "Holding [something] next to [something]"]
  def entry(i, t):
    return {"id": str(1000 + i), "template": templates[t],
            "label": templates[t].replace("[something]", "a potato").lower(),
            "placeholders": ["a potato"]}
  train = [entry(i, i % 4) for i in range(6)]
  validation = [entry(6 + i, i) for i in range(3)] + [entry(99, 3)]  # 1099: missing
  for i, e in enumerate(train + validation[:3]):
    video_files.write_encoded(videos / f"{e['id']}.webm", 8 + i % 3, 24, 32, 12,
                              seed=60 + i, codec="libvpx-vp9")
  prefix = "something-something-v2-"
  (annotations / f"{prefix}labels.json").write_text(json.dumps(SSV2_LABELS, indent=1))
  (annotations / f"{prefix}train.json").write_text(json.dumps(train))
  (annotations / f"{prefix}validation.json").write_text(json.dumps(validation))
  (annotations / f"{prefix}test.json").write_text(json.dumps([{"id": "5000"}]))
  return videos, annotations
