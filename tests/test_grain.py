"""The Grain backend: the same clips as tf.data for the same draws, the same sampling
distribution, exact resumption, and training plus test where TensorFlow cannot be
imported."""

import collections
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import processes
from conftest import tiny_config
from cost_jax import errors, train
from cost_jax.data import grain_pipeline, input as input_lib, sampling

NO_TENSORFLOW = os.path.join(processes.ROOT, "tests", "no_tensorflow")


def _config(dataset, backend, **overrides):
  config = tiny_config(dataset, **{"input.backend": backend, "input.workers": 0,
                                   "input.flip": True, **overrides})
  return config


def _records(dataset, split="train"):
  host = dataset.host_split(split, 0, 1)
  split_reader = grain_pipeline._Split(dataset, host)
  return [split_reader[i] for i in range(split_reader.size)]


@pytest.mark.parametrize("frames", ["stride", "segments"])
def test_same_draws_give_the_same_clip_as_tf_data(synthetic_tiny_array_record, frames):
  """Both backends turn a video and the same uniform draws into the same clip, and a
  flipped clip into its mirror class (synthetic_motion: right_cw_* <-> left_ccw_*)."""
  import tensorflow as tf
  from cost_jax.data import pipeline
  config = _config(synthetic_tiny_array_record, "grain",
                   **{"input.min_resize": 28, "input.max_resize": 40,
                      "input.sampling": frames, "input.flip": True,
                      "input.mirror_classes": True})
  mirror = sampling.flip_labels(config.input, synthetic_tiny_array_record.class_names)
  names = synthetic_tiny_array_record.class_names
  assert [names[m] for m in mirror[:4]] == ["left_ccw_approach", "left_ccw_recede",
                                            "left_cw_approach", "left_cw_recede"]
  checked, flipped = 0, 0
  for n, (jpegs, label) in enumerate(_records(synthetic_tiny_array_record)[:12]):
    seed = tf.constant([7, n], tf.int64)
    u = tf.random.stateless_uniform([sampling.num_train_draws(config.input)], seed).numpy()
    expected = pipeline.train_preprocess({"video": tf.constant(jpegs), "label": label},
                                         seed, config.input, mirror)
    got = grain_pipeline.train_clip(jpegs, label, u.astype(np.float64), config.input,
                                    mirror)
    flip = bool(sampling.train_clip(len(jpegs), 32, 32, u, config.input,
                                    sampling.NUMPY).flip)
    flipped += flip
    assert int(got["side"]) == int(expected["side"])
    assert got["label"] == int(expected["label"]) == (mirror[label] if flip else label)
    # The same frames, window and flip, decoded alike (a window shifted by one pixel
    # would differ by about 12 levels on average); TF decodes the window on its own,
    # so a few pixels at its edges see other chroma neighbours.
    diff = np.abs(got["video"].astype(int) - expected["video"].numpy())
    assert diff.mean() < 0.05 and (diff > 1).mean() < 0.01, diff.mean()
    checked += 1
  assert checked == 12 and 0 < flipped < 12


@pytest.mark.parametrize("test_crop_size", [24, 32])
@pytest.mark.parametrize("frame_shape", [(32, 44), (44, 32)])
def test_test_views_equal_tf_datas(synthetic_tiny_array_record, test_crop_size,
                                   frame_shape):
  """Multi-view test clips of landscape and portrait frames (short side 32), resized to a
  short side of 24 or kept (32), three crops along the long side."""
  import simplejpeg
  import tensorflow as tf
  from cost_jax.data import pipeline
  config = _config(synthetic_tiny_array_record, "grain",
                   **{"input.test_crop_size": test_crop_size, "input.num_test_crops": 3})
  rng = np.random.default_rng(0)
  jpegs = [simplejpeg.encode_jpeg(rng.integers(0, 256, (*frame_shape, 3), np.uint8))
           for _ in range(20)]
  got = grain_pipeline.test_views(jpegs, config.input)
  expected = pipeline.test_preprocess({"video": tf.constant(jpegs), "label": 0},
                                      config.input)["video"].numpy()
  assert got.shape == expected.shape == (6, 4, test_crop_size, test_crop_size, 3)
  diff = np.abs(got.astype(int) - expected)
  assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


def test_the_sampling_distribution_matches_tf_data(synthetic_tiny_array_record):
  """Frame starts, windows, crop positions, flips and labels, over 2,000 clips of each
  backend's own random source, agree in distribution."""
  import tensorflow as tf
  cfg = _config(synthetic_tiny_array_record, "grain",
                **{"input.min_resize": 28, "input.max_resize": 40}).input
  n, h, w, count = 24, 32, 40, 2000

  def stats(draws):
    clips = [sampling.train_clip(n, h, w, u, cfg, sampling.NUMPY) for u in draws]
    return {"start": np.bincount([c.indices[0] for c in clips], minlength=n) / count,
            "side": np.bincount([c.side for c in clips], minlength=h + 1) / count,
            "y": np.mean([c.y for c in clips]), "x": np.mean([c.x for c in clips]),
            "flip": np.mean([bool(c.flip) for c in clips])}

  tf_draws = [tf.random.stateless_uniform([5], [3, i]).numpy() for i in range(count)]
  grain_draws = [np.random.default_rng([0, 0, 0, i]).random(5) for i in range(count)]
  a, b = stats(tf_draws), stats(grain_draws)
  for key in ("start", "side"):
    assert np.abs(a[key] - b[key]).max() < 0.04, key  # histograms
  assert abs(a["y"] - b["y"]) < 0.5 and abs(a["x"] - b["x"]) < 0.5
  assert abs(a["flip"] - 0.5) < 0.04 and abs(b["flip"] - 0.5) < 0.04
  # The real loader: an epoch visits every video once, so labels keep the split's
  # balance (as tf.data's epochs do).
  config = _config(synthetic_tiny_array_record, "grain", **{"input.mirror_classes": False})
  batches = input_lib.train_batches(synthetic_tiny_array_record, config, 16)
  epoch = np.concatenate([next(batches)["label"] for _ in range(4)]).tolist()
  batches.close()
  assert collections.Counter(epoch) == collections.Counter(
      [label for _, label in _records(synthetic_tiny_array_record)])


def test_a_build_in_the_other_format_names_the_command_that_fixes_it(
    synthetic_tiny, synthetic_tiny_array_record):
  import ml_collections
  grain = ml_collections.ConfigDict({"backend": "grain"})
  config = ml_collections.ConfigDict({"name": "synthetic_motion/tiny",
                                      "data_dir": str(synthetic_tiny.data_dir)})
  with pytest.raises(errors.DatasetNotFoundError,
                     match=r"stored as tfrecord, which config.input.backend=grain does "
                           r"not read: convert it \(no decoding\): `python -m "
                           r"cost_jax.prepare convert --name=synthetic_motion/tiny"):
    input_lib.open_dataset(config, grain)
  config.data_dir = str(synthetic_tiny_array_record.data_dir)
  with pytest.raises(errors.DatasetNotFoundError,
                     match=r"stored as array_record.*`python -m cost_jax.prepare "
                           r"synthetic_motion --config_name=tiny --data_dir=.*`"):
    input_lib.open_dataset(config, ml_collections.ConfigDict({"backend": "tf_data"}))


def test_sigterm_then_resume_on_grain_equals_an_uninterrupted_run(
    synthetic_tiny_array_record, tmp_path, monkeypatch):
  from test_train import _SigtermAt, _restore_params
  config = _config(synthetic_tiny_array_record, "grain")
  results = train.train_and_evaluate(config, tmp_path / "straight")
  with monkeypatch.context() as m:
    _SigtermAt(2, m)
    assert train.train_and_evaluate(config, tmp_path / "resumed") == {}
  assert _restore_params(tmp_path / "resumed")[0] == 3
  assert train.train_and_evaluate(config, tmp_path / "resumed") == results
  jax.tree.map(np.testing.assert_array_equal, _restore_params(tmp_path / "straight")[1],
               _restore_params(tmp_path / "resumed")[1])
  assert results["num_videos"] == 24


def test_demo_trains_and_tests_where_tensorflow_cannot_be_imported(
    synthetic_tiny_array_record, tmp_path):
  workdir = tmp_path / "run"
  env = processes.environment(PYTHONPATH=os.pathsep.join([NO_TENSORFLOW, processes.ROOT]))
  blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env,
                           capture_output=True, text=True)
  assert blocked.returncode != 0 and "TensorFlow is blocked here" in blocked.stderr
  out = processes.run(
      "cost_jax.main", *processes.TINY, f"--workdir={workdir}",
      f"--config.dataset.data_dir={synthetic_tiny_array_record.data_dir}",
      "--config.input.backend=grain", "--config.input.workers=1",
      "--config.num_train_steps=4", "--config.checkpoint_every_steps=4", env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "Failed to import TensorFlow" not in out.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert (results["step"], results["num_videos"]) == (4, 24)
  assert list(workdir.glob("events.out.tfevents.*"))  # TensorBoard without TensorFlow


def test_every_test_video_once_over_two_hosts_on_grain(synthetic_tiny_array_record):
  """24 test videos, 2 hosts, local batch 5: padded, nothing dropped, nothing twice."""
  config = _config(synthetic_tiny_array_record, "grain")
  seen, counts = [], []
  for host in range(2):
    batches, n = input_lib.eval_batches(synthetic_tiny_array_record, config, "test", 5,
                                        "test", process_index=host, process_count=2)
    batches = list(batches)
    counts.append(len(batches))
    assert len(batches) == n
    for b in batches:
      assert b["video"].shape == (5, 2, 4, 24, 24, 3)
      seen.extend(b["index"][b["mask"] > 0].tolist())
  assert counts[0] == counts[1] and sorted(seen) == list(range(24))
