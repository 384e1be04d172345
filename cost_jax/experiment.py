"""An experiment: what a config describes before anything is compiled.

`setup(config)` checks the config, finds the dataset and builds the model, the device mesh
(a `data` axis over every device of every host) and the optimiser; `init_state` gives
fresh parameters, or pretrained ones (`config.init_from`). Training, evaluation and the
analysis tools all start here.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cost_jax import errors, models, optim, steps, workdir as workdir_lib
from cost_jax.data import catalog, input as input_lib
from cost_jax.models import pretrained


@dataclasses.dataclass
class Experiment:
  """Everything derived from a config before any compilation: model, data, schedule."""
  config: ml_collections.ConfigDict
  model: Any
  dataset: catalog.BuiltDataset
  mesh: Mesh
  local_batch: int
  steps_per_epoch: int
  num_steps: int
  schedule: optax.Schedule
  tx: optax.GradientTransformation
  # Jitted steps built once per experiment (e.g. evaluation), so periodic validation
  # does not recompile.
  compiled: dict = dataclasses.field(default_factory=dict)

  @property
  def data_sharding(self):
    return NamedSharding(self.mesh, P("data"))

  @property
  def replicated(self):
    return NamedSharding(self.mesh, P())


def setup(config) -> Experiment:
  """Checks the config, finds the dataset and builds model, mesh and optimiser.

  Raises a `errors.UserError` (`ConfigError`, `DatasetNotFoundError`) naming the field
  and the fix before anything is compiled.
  """
  model_probe = models.create_model(config.model)  # validates variant, depth, dtype
  catalog.check_input_config(config.input)
  dataset = input_lib.open_dataset(config.dataset, config.input)
  num_classes = len(dataset.class_names)
  if config.model.num_classes not in (num_classes, 0):
    logging.warning("config.model.num_classes=%d but %s has %d classes: using %d",
                    config.model.num_classes, config.dataset.name, num_classes,
                    num_classes)
  model = model_probe.clone(num_classes=num_classes)
  devices = np.array(jax.devices())
  if config.batch_size % len(devices) or config.eval_batch_size % len(devices):
    raise errors.ConfigError(
        f"config.batch_size={config.batch_size} and config.eval_batch_size="
        f"{config.eval_batch_size} must be multiples of the {len(devices)} devices")
  mesh = Mesh(devices, ("data",))
  train_split = input_lib.require_split(dataset, config.dataset.train_split,
                                        "config.dataset.train_split")
  train_examples = dataset.num_examples(train_split)
  steps_per_epoch = max(train_examples // config.batch_size, 1)
  num_steps = (config.num_train_steps if config.num_train_steps > 0
               else int(math.ceil(config.num_epochs * steps_per_epoch)))
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size,
                                          steps_per_epoch, num_steps)
  return Experiment(config, model, dataset, mesh, config.batch_size // jax.process_count(),
                    steps_per_epoch, num_steps, schedule,
                    optim.create_optimizer(config.optimizer, schedule))


def init_state(exp: Experiment) -> steps.TrainState:
  """Fresh parameters, replicated; with `config.init_from`, taken from a 2-D ImageNet
  checkpoint file (inflated) or from a run folder (a training workdir, or one written by
  `cost_jax.convert`), whose every variable of the same name and shape is loaded."""
  c = exp.config
  fresh = functools.partial(steps.fresh_state, exp.model, exp.tx, c)
  key = jax.random.key(c.seed)
  if not c.init_from:
    return jax.jit(fresh, out_shardings=exp.replicated)(key)
  # The loaders read shapes and dtypes only: what they load is never drawn at random.
  abstract = steps.abstract_state(exp.model, exp.tx, c)
  variables = {"params": abstract.params, "batch_stats": abstract.batch_stats}
  if workdir_lib.is_run(c.init_from):
    source, _ = workdir_lib.read_variables(c.init_from)
    variables, report = pretrained.load_matching(variables, source, c.init_from)
  else:
    variables, report = pretrained.load_imagenet_file(variables, c.init_from)
  logging.info("initialised from %s: %s", c.init_from, report)
  given = jax.device_put(jax.tree.map(
      lambda v: None if isinstance(v, jax.ShapeDtypeStruct) else v, variables),
      exp.replicated)

  def start(key, given):
    # The fresh state with the given arrays in place: XLA drops their initialisers, and
    # every other variable gets the very value a fresh start would give it.
    state = fresh(key)
    merged = jax.tree.map(lambda init, value: init if value is None else value,
                          {"params": state.params, "batch_stats": state.batch_stats},
                          given)
    return state.replace(**merged)

  return jax.jit(start, out_shardings=exp.replicated)(key, given)


def global_batch(exp: Experiment, local_batch):
  """Host-local numpy arrays -> global arrays sharded over the `data` axis."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(exp.data_sharding, np.asarray(x)),
      local_batch)
