r"""Input pipeline throughput, both backends side by side with plain JPEG decoding.

  python -m cost_jax.bench.data --config=configs/demo.py [--clips=2048]

On one TFRecord build (`config.dataset`) and an ArrayRecord copy of it made for the run
(`prepare convert`: the same records, nothing decoded), prints clips/s of the train and
multi-view test loaders of each backend (`tf_data`, `grain`) and, in the same run, the
rate of a bare loop of the same backend that reads the same records and only decodes as
many frames per clip as the train pipeline does (tf.data: `tf.io.decode_jpeg`; Grain:
simplejpeg, with the same workers). The ratio of the times is each pipeline's overhead
over raw decoding. The train clips' last steps, run in the jitted train step
(`on_device.model_input`), are timed on their own on the first JAX device; from the
slower of that and the best loader follows the step rate the input can feed here.
Without TensorFlow, the Grain rows alone are measured, on an ArrayRecord build.
"""

import os
import tempfile
import time

import jax
import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

from cost_jax import cli
from cost_jax.data import catalog, convert_format, grain_pipeline, input as input_lib, on_device

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_CLIPS = flags.DEFINE_integer("clips", 2048, "Clips to time per measurement.")
_BATCH = flags.DEFINE_integer("batch", 32, "Clips per batch.")


def _rate(batches, clips_per_element: int, clips: int) -> float:
  """Clips/s over `clips` clips after one warm-up element (which starts workers)."""
  it = iter(batches)
  next(it)
  done, start = 0, time.perf_counter()
  while done < clips:
    next(it)
    done += clips_per_element
  return done / (time.perf_counter() - start)


def raw_tf_data(dataset, config, batch: int):
  """tf.data: reads the train records and decodes `num_frames` JPEGs of each, only."""
  import tensorflow as tf
  from cost_jax.data import pipeline
  n = config.input.num_frames
  ds = pipeline.read_records(dataset.tfds_builder(), config.dataset.train_split).repeat()
  ds = ds.map(pipeline.plain(lambda ex: pipeline.decode_frames(
      ex["video"], tf.range(n) % tf.shape(ex["video"])[0])), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


class _RawDecode:
  """Grain: record -> `num_frames` decoded JPEGs, nothing else."""

  def __init__(self, dataset, host, num_frames: int):
    self.split, self.num_frames = grain_pipeline._Split(dataset, host), num_frames

  def __call__(self, i):
    jpegs, _ = self.split[int(i) % self.split.size]
    frames = grain_pipeline.decode(jpegs, np.arange(self.num_frames) % len(jpegs))
    return np.stack([frames[int(k) % len(jpegs)] for k in range(self.num_frames)])


def raw_grain(dataset, config, batch: int):
  import grain
  host = dataset.host_split(config.dataset.train_split, 0, 1)
  ds = grain.MapDataset.range(1 << 40).map(
      _RawDecode(dataset, host, config.input.num_frames)).batch(batch, drop_remainder=True)
  return iter(grain_pipeline._loader(ds, grain_pipeline.workers(config.input)))


def device_rate(batch, input_config, clips: int) -> tuple[float, str]:
  """Clips/s of the jitted `model_input` on `batch`, on the first JAX device."""
  batch = jax.device_put(batch)
  fn = jax.jit(lambda b: on_device.model_input(b, input_config))
  jax.block_until_ready(fn(batch))
  n = len(batch["video"])
  reps = max(1, clips // n)
  start = time.perf_counter()
  for _ in range(reps):
    jax.block_until_ready(fn(batch))
  return reps * n / (time.perf_counter() - start), jax.devices()[0].platform


def _with_backend(config, backend: str, data_dir) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.to_dict())
  c.input.backend, c.dataset.data_dir = backend, os.fspath(data_dir)
  return c


def measure_backend(config, backend: str, clips: int, batch: int) -> dict:
  """Clips/s of the raw loop, the train loader and the test loader (views/s)."""
  dataset = input_lib.open_dataset(config.dataset, config.input)
  raw = raw_grain if backend == "grain" else raw_tf_data
  rates = {"raw": _rate(raw(dataset, config, batch), batch, clips),
           "train": _rate(input_lib.train_batches(dataset, config, batch), batch, clips)}
  views = config.input.num_test_clips * config.input.num_test_crops
  test = _Repeat(lambda: input_lib.eval_batches(dataset, config,
                                                config.dataset.test_split, batch,
                                                "test")[0])
  rates["test"] = views * _rate(test, batch, max(clips // views, batch))
  rates["workers"] = (grain_pipeline.workers(config.input) if backend == "grain"
                      else "autotune")
  return rates


class _Repeat:
  """Passes over a finite loader, one after another."""

  def __init__(self, make):
    self.make = make

  def __iter__(self):
    while True:
      yield from self.make()


def measure(config, clips: int, batch: int) -> dict:
  """{backend: rates} on the config's dataset and an ArrayRecord copy of it, and the
  in-step rate."""
  catalog.check_input_config(config.input)
  data_dir = config.dataset.data_dir or input_lib.default_data_dir()
  try:
    import tensorflow  # noqa: F401
    tf_config = _with_backend(config, "tf_data", data_dir)
  except ImportError:
    tf_config = None
  results = {}
  with tempfile.TemporaryDirectory(prefix="cost_jax_bench_") as copy:
    if tf_config is not None:
      built = input_lib.open_dataset(tf_config.dataset, tf_config.input)
      results["tf_data"] = measure_backend(tf_config, "tf_data", clips, batch)
      convert_format.to_array_record(built.name, data_dir, copy)
      grain_config = _with_backend(config, "grain", copy)
    else:
      grain_config = _with_backend(config, "grain", data_dir)
    results["grain"] = measure_backend(grain_config, "grain", clips, batch)
    dataset = input_lib.open_dataset(grain_config.dataset, grain_config.input)
    first = next(input_lib.train_batches(dataset, grain_config, batch))
    results["in_step"], results["platform"] = device_rate(first, config.input, clips)
  return results


def format_table(config, batch: int, results: dict) -> str:
  i = config.input
  views = i.num_test_clips * i.num_test_crops
  what = "resize + normalise" if i.resize_on_device else "normalise"
  rows = [f"dataset {config.dataset.name}, {i.num_frames} frames per clip, crop "
          f"{i.crop_size}, batch {batch}, {os.cpu_count()} cores",
          f"{'backend':9s}{'pipeline':34s}{'workers':>9s}{'clips/s':>10s}"
          f"{'time / raw decode':>20s}"]
  for backend in ("tf_data", "grain"):
    if backend not in results:
      continue
    r = results[backend]
    decoder = "decode_jpeg" if backend == "tf_data" else "simplejpeg"
    for label, key, note in ((f"raw {decoder}, same frames", "raw", ""),
                             ("train", "train", ""),
                             (f"test ({views} views per video)", "test",
                              "   (clips/s counts every view)")):
      rows.append(f"{backend:9s}{label:34s}{str(r['workers']):>9s}{r[key]:10.1f}"
                  f"{r['raw'] / r[key]:20.2f}{note}")
  rows.append(f"{'':9s}{f'train, in the step: {what}':34s}{'':9s}{results['in_step']:10.1f}"
              f"{'':20s}   (jax, {results['platform']})")
  best = max(results[b]["train"] for b in ("tf_data", "grain") if b in results)
  if "tf_data" in results:
    rows.append(f"grain / tf_data train clips/s: "
                f"{results['grain']['train'] / results['tf_data']['train']:.2f}")
  rows.append(f"the input can feed {min(best, results['in_step']) / batch:.2f} train "
              f"steps/s of {batch} clips here (the slower of the best loader and the "
              "in-step part)")
  return "\n".join(rows)


def main(argv):
  del argv
  try:
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
  except ImportError:
    pass
  config = _CONFIG.value
  print(format_table(config, _BATCH.value, measure(config, _CLIPS.value, _BATCH.value)))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
