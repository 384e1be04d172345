r"""Input pipeline throughput, side by side with plain JPEG decoding of the same frames.

  python -m cost_jax.bench.data --config=configs/demo.py [--clips=2048]

Prints clips/s of the train pipeline and of the multi-view test pipeline, and, in the same
run, the rate at which a bare tf.data loop reads the same records and only runs
`tf.io.decode_jpeg` on as many frames as the train pipeline decodes per clip. The ratio of
the two times is the pipeline's overhead over raw decoding (sampling, cropping, resizing
on the host where it happens there, flipping, batching). The train clips' last steps, run
in the jitted train step (`on_device.model_input`: the resize with
`config.input.resize_on_device`, and the normalisation), are timed on their own on the
first JAX device, and their rate is printed on a separate line.
"""

import time

import jax
import tensorflow as tf
from absl import flags
from ml_collections import config_flags

from cost_jax import cli
from cost_jax.data import on_device, pipeline

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_CLIPS = flags.DEFINE_integer("clips", 2048, "Clips to time per measurement.")
_BATCH = flags.DEFINE_integer("batch", 32, "Clips per batch.")


def _rate(ds, clips_per_element: int, clips: int) -> float:
  """Clips/s over `clips` clips after one warm-up element."""
  it = iter(ds)
  next(it)
  done, start = 0, time.perf_counter()
  while done < clips:
    next(it)
    done += clips_per_element
  return done / (time.perf_counter() - start)


def raw_decode_dataset(builder, config, batch: int) -> tf.data.Dataset:
  """Reads the train records and decodes `num_frames` JPEGs of each, nothing else."""
  n = config.input.num_frames
  ds = pipeline.read_records(builder, config.dataset.train_split).repeat()
  ds = ds.map(lambda ex: pipeline.decode_frames(ex["video"], tf.range(n) % tf.shape(
      ex["video"])[0]), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def device_rate(ds, input_config, clips: int) -> tuple[float, str]:
  """Clips/s of the jitted `model_input` on batches of `ds`, on the first JAX device."""
  batch = jax.device_put(next(ds.as_numpy_iterator()))
  fn = jax.jit(lambda b: on_device.model_input(b, input_config))
  jax.block_until_ready(fn(batch))
  n = len(batch["video"])
  reps = max(1, clips // n)
  start = time.perf_counter()
  for _ in range(reps):
    jax.block_until_ready(fn(batch))
  return reps * n / (time.perf_counter() - start), jax.devices()[0].platform


def measure(config, clips: int, batch: int) -> dict:
  """Clips/s of every line of the table (test: views/s), measured one after another."""
  pipeline.check_input_config(config.input)
  builder = pipeline.get_builder(config.dataset)
  rates = {"train": _rate(pipeline.train_dataset(builder, config, batch), batch, clips),
           "raw": _rate(raw_decode_dataset(builder, config, batch), batch, clips)}
  rates["in_step"], rates["platform"] = device_rate(
      pipeline.train_dataset(builder, config, batch), config.input, clips)
  test_ds, _ = pipeline.eval_dataset(builder, config, config.dataset.test_split, batch,
                                     mode="test")
  views = config.input.num_test_clips * config.input.num_test_crops
  rates["test"] = views * _rate(test_ds.repeat(), batch, max(clips // views, batch))
  return rates


def format_table(config, batch: int, rates: dict) -> str:
  i, raw = config.input, rates["raw"]
  views = i.num_test_clips * i.num_test_crops
  what = "resize + normalise" if i.resize_on_device else "normalise"
  rows = [f"dataset {config.dataset.name}, {i.num_frames} frames per clip, crop "
          f"{i.crop_size}, batch {batch}",
          f"{'pipeline':40s}{'clips/s':>10s}{'time / raw decode':>20s}",
          f"{'raw decode_jpeg, same frames':40s}{raw:10.1f}{1.0:20.2f}",
          f"{'train':40s}{rates['train']:10.1f}{raw / rates['train']:20.2f}",
          f"{f'test ({views} views per video)':40s}{rates['test']:10.1f}"
          f"{raw / rates['test']:20.2f}   (clips/s counts every view)",
          f"{f'train, in the step: {what}':40s}{rates['in_step']:10.1f}{'':20s}"
          f"   (jax, {rates['platform']})"]
  return "\n".join(rows)


def main(argv):
  del argv
  tf.config.set_visible_devices([], "GPU")
  config = _CONFIG.value
  print(format_table(config, _BATCH.value, measure(config, _CLIPS.value, _BATCH.value)))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
