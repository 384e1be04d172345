r"""Input pipeline throughput, side by side with plain JPEG decoding of the same frames.

  python -m cost_jax.data.benchmark --config=configs/demo.py [--clips=2048]

Prints clips/s of the train pipeline and of the multi-view test pipeline, and, in the same
run, the rate at which a bare tf.data loop reads the same records and only runs
`tf.io.decode_jpeg` on as many frames as the train pipeline decodes per clip. The ratio of
the two times is the pipeline's overhead over raw decoding (sampling, resizing, cropping,
flipping, normalising, batching).
"""

import time

import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from cost_jax.data import pipeline

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


def main(argv):
  del argv
  tf.config.set_visible_devices([], "GPU")
  config = _CONFIG.value
  builder = pipeline.get_builder(config.dataset)
  clips, batch = _CLIPS.value, _BATCH.value
  train = _rate(pipeline.train_dataset(builder, config, batch), batch, clips)
  raw = _rate(raw_decode_dataset(builder, config, batch), batch, clips)
  split = config.dataset.test_split
  test_ds, _ = pipeline.eval_dataset(builder, config, split, batch, mode="test")
  views = config.input.num_test_clips * config.input.num_test_crops
  test = _rate(test_ds.repeat(), batch, max(clips // views, batch))
  i = config.input
  print(f"dataset {config.dataset.name}, {i.num_frames} frames per clip, crop "
        f"{i.crop_size}, batch {batch}")
  print(f"{'pipeline':34s}{'clips/s':>10s}{'time / raw decode':>20s}")
  print(f"{'raw decode_jpeg, same frames':34s}{raw:10.1f}{1.0:20.2f}")
  print(f"{'train':34s}{train:10.1f}{raw / train:20.2f}")
  print(f"{f'test ({views} views per video)':34s}{test * views:10.1f}{raw / (test * views):20.2f}"
        "   (clips/s counts every view)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
