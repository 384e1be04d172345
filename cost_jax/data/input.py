"""The input pipeline behind one interface, whichever backend `config.input.backend` picks:

  tf_data  `pipeline` (tf.data over TFRecord shards; decodes only each frame's window,
           with TensorFlow's JPEG decoder): the default where TensorFlow is installed
  grain    `grain_pipeline` (Grain over ArrayRecord shards, simplejpeg, worker
           processes): no TensorFlow, for training machines that have only JAX

Both take their clip choices from `sampling` and yield the same batches of numpy arrays;
this module imports neither until it is asked for one, so it imports without TensorFlow.
"""

import importlib.util
import math
import os
from typing import Iterator

import jax

from cost_jax import errors, multihost
from cost_jax.data import catalog

# How long the other processes of a job wait for process 0 to generate a dataset (s).
BUILD_TIMEOUT_S = 1800


def default_data_dir() -> str:
  """TFDS's default: `TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def open_dataset(dataset_config, input_config) -> catalog.BuiltDataset:
  """The built dataset `config.dataset.name` in `config.dataset.data_dir`, stored in the
  format the backend reads; `synthetic_motion` is generated when missing.

  Raises `errors.DatasetNotFoundError` naming the `cost_jax.prepare` command to run.
  """
  name = dataset_config.name
  data_dir = dataset_config.data_dir or default_data_dir()
  catalog.check_known(name)
  backend = input_config.backend
  if backend == "tf_data" and importlib.util.find_spec("tensorflow") is None:
    raise errors.ConfigError(
        "config.input.backend=tf_data needs TensorFlow, which is not installed: pip "
        "install -r requirements.txt, or train with --config.input.backend=grain on an "
        "ArrayRecord build")
  found = catalog.find(name, data_dir)
  if found is None and name.split("/")[0] == "synthetic_motion":
    found = _generate_once(name, data_dir, catalog.FILE_FORMATS[backend])
  if found is None:
    raise errors.DatasetNotFoundError(
        f"dataset {name!r} not found in {data_dir}: build it with "
        f"`{catalog.prepare_command(name, data_dir, catalog.FILE_FORMATS[backend])}` "
        "(see docs/datasets.md), or point config.dataset.data_dir at the folder that holds it")
  return catalog.require_format(found, backend, data_dir)


def _generate_once(name: str, data_dir: str, file_format: str) -> catalog.BuiltDataset:
  """A generated dataset (`synthetic_motion`), built once however many processes ask.

  Process 0 builds it while the others wait; a process that still does not see it then
  (its data_dir is on a disk of its own host) builds its own copy, one process per host
  at a time under a file lock. Generating needs TensorFlow (TFDS writes the shards).
  """
  def build():
    try:
      import tensorflow_datasets as tfds
      from cost_jax.data import builders  # noqa: F401  (registers them with TFDS)
      import tensorflow  # noqa: F401  (TFDS's writers need it; say so in one line)
    except ImportError:
      raise errors.DatasetNotFoundError(
          f"{name} is not in {data_dir} and generating it needs TensorFlow: on a machine "
          f"with it, run `{catalog.prepare_command(name, data_dir, file_format)}` and "
          "copy the folder here") from None
    lock = multihost.FileLock(os.path.join(data_dir, f".{name.replace('/', '_')}.lock"))
    with lock:
      builder = tfds.builder(name, data_dir=data_dir, file_format=file_format)
      if not builder.is_prepared():
        builder.download_and_prepare()

  multihost.run_on_first(f"build/{name}", build, BUILD_TIMEOUT_S,
                         f"building {name} in {data_dir}")
  if catalog.find(name, data_dir) is None:  # built on process 0's own disk only
    build()
  return catalog.find(name, data_dir)


def require_split(dataset: catalog.BuiltDataset, split: str, field: str) -> str:
  """`split` if the dataset has it, else a `DatasetNotFoundError` naming `field`."""
  if dataset.has_split(split):
    return split
  raise errors.DatasetNotFoundError(
      f"{field}={split!r}: {dataset.name} has no such split (it has "
      f"{', '.join(dataset.splits)}); set {field} to one of them")


def _closing(iterator) -> Iterator[dict]:
  """`iterator`'s batches; its worker processes stop when the consumer closes this
  generator (or drops it), not at interpreter exit."""
  try:
    yield from iterator
  finally:
    close = getattr(iterator, "close", None)
    if close is not None:
      close()


def _host(process_index, process_count):
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def train_batches(dataset: catalog.BuiltDataset, config, local_batch: int,
                  start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None) -> Iterator[dict]:
  """Endless training batches of this host, from the one after `start_step` steps: dicts
  of numpy arrays, `video` `(local_batch, T, crop, crop, 3)` uint8 and `label`."""
  index, count = _host(process_index, process_count)
  host = dataset.host_split(config.dataset.train_split, index, count)
  if host.num_examples == 0:  # fewer examples than hosts; a batch may span epochs
    raise errors.ConfigError(f"the train split {config.dataset.train_split!r} has no "
                             f"example for host {index}: use fewer hosts or more videos")
  if config.input.backend == "grain":
    from cost_jax.data import grain_pipeline
    return _closing(grain_pipeline.train_batches(dataset, config, local_batch, host,
                                                 index, start_step))
  from cost_jax.data import pipeline
  return _closing(pipeline.train_dataset(dataset, config, local_batch, start_step, index,
                                         count).as_numpy_iterator())


def eval_batches(dataset: catalog.BuiltDataset, config, split: str, local_batch: int,
                 mode: str = "validation", process_index: int | None = None,
                 process_count: int | None = None) -> tuple[Iterator[dict], int]:
  """One pass over this host's share of `split` ('validation': the centred clip, 'test':
  every view), every example once over all hosts; the last batch is padded (`mask` 0)
  and every host yields the same number of batches. Returns (batches, num_batches)."""
  if mode not in ("validation", "test"):
    raise ValueError(f"mode must be 'validation' or 'test', got {mode!r}")
  index, count = _host(process_index, process_count)
  if config.input.backend == "grain":
    from cost_jax.data import grain_pipeline
    host = dataset.host_split(split, index, count)
    num_batches = max(1, math.ceil(host.max_host_examples / local_batch))
    return (_closing(grain_pipeline.eval_batches(dataset, config, local_batch, host, mode,
                                                 num_batches)), num_batches)
  from cost_jax.data import pipeline
  ds, num_batches = pipeline.eval_dataset(dataset, config, split, local_batch, mode,
                                          index, count)
  return _closing(ds.as_numpy_iterator()), num_batches


def test_views(jpegs, input_config):
  """All test views of one video's JPEG frames, uint8 `(clips * crops, T, s, s, 3)`, as
  the multi-view test makes them (NumPy: no TensorFlow needed)."""
  from cost_jax.data import grain_pipeline
  return grain_pipeline.test_views(jpegs, input_config)
