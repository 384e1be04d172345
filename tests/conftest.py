"""Test setup: 8 simulated CPU devices, quiet TensorFlow, no GPU for TF."""

import os

from processes import FAST_COMPILE

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# One compilation cache for the session: tests that build the same network and steps
# (every tiny training run) compile them once.
jax.config.update("jax_compilation_cache_dir",
                  tempfile.mkdtemp(prefix="cost_jax_test_jax_cache_"))
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
                     data_dir=str(data_dir), num_workers=2,
                     decode_options=DecodeOptions(short_side=SHORT_SIDE), **kwargs)
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope="session")
def kinetics3(kinetics_files, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds_k3")
  return _build_kinetics3(kinetics_files, data_dir), kinetics_files[2]


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
