"""The tf.data pipeline over real shards: shapes, ranges, determinism, flips, coverage."""


import ml_collections
import numpy as np
import pytest

from configs import demo
from cost_jax import errors
from cost_jax.data import catalog, input as input_lib, on_device, pipeline

MEAN, STD = np.array(demo.get_config().input.mean), np.array(demo.get_config().input.std)


def _config(seed=0, flip=True, clips=3, crops=3):
  config = demo.get_config()
  config.seed = seed
  i = config.input
  i.num_frames, i.frame_stride, i.crop_size = 4, 2, 24
  i.min_resize, i.max_resize, i.eval_resize, i.test_crop_size = 28, 36, 32, 28
  i.num_test_clips, i.num_test_crops, i.flip = clips, crops, flip
  return config


def _batches(ds, n):
  it = ds.as_numpy_iterator()
  return [next(it) for _ in range(n)]


def _dataset(kinetics3):
  builder, _ = kinetics3
  return catalog.read(builder.data_dir, "kinetics/3")


def _pixels(batch, config):
  """The clips the model sees, `model_input`, mapped back to pixel units."""
  return np.asarray(on_device.model_input(batch, config.input)) * STD + MEAN


def test_train_shapes_dtypes_and_range(kinetics3):
  builder = _dataset(kinetics3)
  config = _config()
  batch = _batches(pipeline.train_dataset(builder, config, 3), 2)[1]
  assert batch["video"].shape == (3, 4, 24, 24, 3) and batch["video"].dtype == np.uint8
  assert batch["label"].dtype == np.int32 and set(batch["label"]) <= {0, 1, 2}
  assert batch["side"].dtype == np.int32 and ((batch["side"] >= 1) &
                                              (batch["side"] <= 24)).all()
  for clip, side in zip(batch["video"], batch["side"]):
    assert not clip[:, side:].any() and not clip[:, :, side:].any()  # padding only
  assert on_device.model_input(batch, config.input).dtype == np.float32
  clips = _pixels(batch, config)
  assert clips.shape == (3, 4, 24, 24, 3)
  # The test videos span about 40..210: real pixels, neither padding nor saturation.
  assert 30 <= clips.min() < 80 and 150 < clips.max() <= 230


@pytest.mark.parametrize("side,size", [(7, 24), (17, 24), (24, 24), (24, 16), (19, 16)])
def test_resize_windows_equals_tf_image_resize(side, size):
  import tensorflow as tf
  rng = np.random.default_rng(side)
  video = rng.integers(0, 256, (2, 3, 24, 24, 3), dtype=np.uint8)
  expected = tf.image.resize(video[:, :, :side, :side].reshape(6, side, side, 3),
                             [size, size]).numpy().reshape(2, 3, size, size, 3)
  out = np.asarray(on_device.resize_windows(video, np.array([side, side]), size))
  np.testing.assert_allclose(out, expected, atol=2e-3)


def test_resize_on_device_equals_resize_on_host(kinetics3):
  """Same seed, same windows and flips: the two paths differ only by the host's rounding
  to uint8, and the device path is really taken (some windows are smaller than the crop)."""
  builder = _dataset(kinetics3)
  host_config, device_config = _config(), _config()
  host_config.input.resize_on_device = False
  host = _batches(pipeline.train_dataset(builder, host_config, 4), 3)
  device = _batches(pipeline.train_dataset(builder, device_config, 4), 3)
  assert "side" not in host[0]
  assert any((b["side"] < 24).any() for b in device)
  for h, d in zip(host, device):
    np.testing.assert_allclose(_pixels(d, device_config), _pixels(h, host_config),
                               atol=0.5 + 1e-3)


def test_normalize_uses_the_papers_mean_and_std():
  video = np.array([[0, 128, 255]], np.uint8).repeat(3, 0).T[None]  # (1, 3, 3)
  out = np.asarray(on_device.normalize(video, MEAN, STD))
  assert out.dtype == np.float32
  np.testing.assert_allclose(out[0, :, 0], (np.array([0, 128, 255]) - MEAN[0]) / STD[0],
                             rtol=1e-6)
  np.testing.assert_allclose(out[0, 2], (255 - MEAN) / STD, rtol=1e-6)


def test_validation_and_test_shapes(kinetics3):
  builder = _dataset(kinetics3)
  val, n = pipeline.eval_dataset(builder, _config(), "validation", 4)
  (batch,) = list(val.as_numpy_iterator())
  assert n == 1 and batch["video"].shape == (4, 4, 24, 24, 3)
  assert batch["video"].dtype == np.uint8
  np.testing.assert_array_equal(batch["mask"], [1, 1, 0, 0])
  np.testing.assert_array_equal(batch["index"], [0, 1, -1, -1])
  assert not batch["video"][2:].any()  # padding is zeros
  test, _ = pipeline.eval_dataset(builder, _config(clips=3, crops=3), "validation", 2,
                                  mode="test")
  (batch,) = list(test.as_numpy_iterator())
  assert batch["video"].shape == (2, 9, 4, 28, 28, 3) and batch["video"].dtype == np.uint8
  assert 30 <= batch["video"].min() < 80 and 150 < batch["video"].max() <= 230
  # Three crops along the long side of a landscape video differ from one another.
  views = batch["video"][0].reshape(3, 3, -1)
  assert not np.allclose(views[0, 0], views[0, 2])


def test_same_seed_same_batches_other_seed_different(kinetics3):
  builder = _dataset(kinetics3)
  a = _batches(pipeline.train_dataset(builder, _config(seed=1), 2), 4)
  b = _batches(pipeline.train_dataset(builder, _config(seed=1), 2), 4)
  c = _batches(pipeline.train_dataset(builder, _config(seed=2), 2), 4)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["video"], y["video"])
  assert any(not np.array_equal(x["video"], z["video"]) for x, z in zip(a, c))


def test_resuming_skips_exactly_the_consumed_batches(kinetics3):
  builder = _dataset(kinetics3)
  full = _batches(pipeline.train_dataset(builder, _config(), 3), 5)
  resumed = _batches(pipeline.train_dataset(builder, _config(), 3, start_step=3), 2)
  for x, y in zip(full[3:], resumed):
    np.testing.assert_array_equal(x["video"], y["video"])


def _left_minus_right(video):
  """Per clip: mean of the left half minus the right half of every frame."""
  video, w = video.astype(np.float32), video.shape[-2]
  return video[..., : w // 2, :].mean(axis=(1, 2, 3, 4)) - \
      video[..., w - w // 2:, :].mean(axis=(1, 2, 3, 4))


def test_flip_off_keeps_orientation_flip_on_mirrors_some(kinetics3):
  """The test videos are brighter on the left; only flips can put the bright side right."""
  builder = _dataset(kinetics3)
  kept, flipped = [np.concatenate([_left_minus_right(_pixels(b, config)) for b in _batches(
      pipeline.train_dataset(builder, config, 4), 6)])
      for config in (_config(flip=False), _config(flip=True))]
  assert (kept > 0).all()
  assert (flipped < 0).any() and (flipped > 0).any()


def test_every_test_video_once_over_two_hosts(synthetic_tiny):
  """24 test videos, 2 hosts, local batch 5: padded, nothing dropped, nothing twice."""
  config = _config(clips=2, crops=3)
  total = synthetic_tiny.num_examples("test")
  seen, batches = [], []
  for host in range(2):
    ds, n = pipeline.eval_dataset(synthetic_tiny, config, "test", 5, mode="test",
                                  process_index=host, process_count=2)
    host_batches = list(ds.as_numpy_iterator())
    assert len(host_batches) == n
    batches.append(n)
    for b in host_batches:
      assert b["video"].shape == (5, 6, 4, 28, 28, 3)
      seen.extend(b["index"][b["mask"] > 0])
  assert batches[0] == batches[1]  # hosts step in lockstep
  assert sorted(seen) == list(range(total)) and total % 5 != 0


def test_missing_dataset_error_names_the_fix(tmp_path):
  config = ml_collections.ConfigDict({"name": "moments_in_time", "data_dir": str(tmp_path)})
  tf_data = ml_collections.ConfigDict({"backend": "tf_data"})
  with pytest.raises(errors.DatasetNotFoundError,
                     match=r"not found in .*cost_jax.prepare moments_in_time"):
    input_lib.open_dataset(config, tf_data)
  config.name = "imagenet2012"
  with pytest.raises(errors.DatasetNotFoundError, match="not a known dataset"):
    input_lib.open_dataset(config, tf_data)


def test_pipeline_benchmark_measures_both_backends(synthetic_tiny):
  from cost_jax.bench import data as benchmark
  config = _config(clips=2, crops=1)
  config.dataset.name = "synthetic_motion/tiny"
  config.dataset.data_dir = str(synthetic_tiny.data_dir)
  config.input.workers = 0  # Grain in this process: cheap; the table names the count
  results = benchmark.measure(config, clips=8, batch=4)
  for backend in ("tf_data", "grain"):
    assert all(results[backend][k] > 0 for k in ("raw", "train", "test"))
  table = benchmark.format_table(config, 4, results).splitlines()
  # Each row: backend, pipeline, workers, clips/s, time relative to raw decoding.
  tf_rows, grain_rows = table[2:5], table[5:8]
  assert tf_rows[1].split() == ["tf_data", "train", "autotune",
                                f"{results['tf_data']['train']:.1f}",
                                f"{results['tf_data']['raw'] / results['tf_data']['train']:.2f}"]
  assert grain_rows[0].split()[:5] == ["grain", "raw", "simplejpeg,", "same", "frames"]
  assert grain_rows[2].split()[:8] == ["grain", "test", "(2", "views", "per", "video)", "0",
                                       f"{results['grain']['test']:.1f}"]
  assert table[8].split()[-3] == f"{results['in_step']:.1f}"
  ratio = results["grain"]["train"] / results["tf_data"]["train"]
  assert table[9] == f"grain / tf_data train clips/s: {ratio:.2f}"
  assert table[10].startswith("the input can feed ")
