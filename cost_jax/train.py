"""Training: one readable loop, everything driven by the config.

`train_and_evaluate(config, workdir)` trains on the mesh of all devices of all hosts (the
batch sharded over a `data` axis, parameters replicated), checkpoints with orbax (async,
every `checkpoint_every_steps`, on SIGTERM and at the end), resumes from the latest
checkpoint in `workdir`, validates periodically and ends with the multi-view test.
"""

import dataclasses
import functools
import json
import math
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from clu import metric_writers, periodic_actions
from etils import epath
from flax import traverse_util
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cost_jax import evaluate, models, optim, steps
from cost_jax.data import pipeline
from cost_jax.models import pretrained


@dataclasses.dataclass
class Experiment:
  """Everything derived from a config before any compilation: model, data, schedule."""
  config: ml_collections.ConfigDict
  model: Any
  builder: Any
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

  Raises a ValueError or `pipeline.DatasetNotFoundError` naming the field and the fix
  before anything is compiled.
  """
  model_probe = models.create_model(config.model)  # validates variant, depth, dtype
  pipeline.check_input_config(config.input)
  builder = pipeline.get_builder(config.dataset)
  num_classes = builder.info.features["label"].num_classes
  if config.model.num_classes not in (num_classes, 0):
    logging.warning("config.model.num_classes=%d but %s has %d classes: using %d",
                    config.model.num_classes, config.dataset.name, num_classes,
                    num_classes)
  model = model_probe.clone(num_classes=num_classes)
  devices = np.array(jax.devices())
  if config.batch_size % len(devices) or config.eval_batch_size % len(devices):
    raise ValueError(f"config.batch_size={config.batch_size} and config.eval_batch_size="
                     f"{config.eval_batch_size} must be multiples of the {len(devices)} "
                     "devices")
  mesh = Mesh(devices, ("data",))
  train_examples = builder.info.splits[config.dataset.train_split].num_examples
  steps_per_epoch = max(train_examples // config.batch_size, 1)
  num_steps = (config.num_train_steps if config.num_train_steps > 0
               else int(math.ceil(config.num_epochs * steps_per_epoch)))
  schedule = optim.learning_rate_schedule(config.optimizer, config.batch_size,
                                          steps_per_epoch, num_steps)
  return Experiment(config, model, builder, mesh, config.batch_size // jax.process_count(),
                    steps_per_epoch, num_steps, schedule,
                    optim.create_optimizer(config.optimizer, schedule))


def init_state(exp: Experiment) -> steps.TrainState:
  """Fresh parameters (optionally inflated from an ImageNet checkpoint), replicated."""
  c = exp.config
  state = jax.jit(functools.partial(steps.fresh_state, exp.model, exp.tx, c),
                  out_shardings=exp.replicated)(jax.random.key(c.seed))
  if c.init_from:
    variables, report = pretrained.load_imagenet_file(
        jax.device_get({"params": state.params, "batch_stats": state.batch_stats}),
        c.init_from)
    logging.info("initialised from %s: %s", c.init_from, report)
    state = state.replace(**jax.device_put(variables, exp.replicated))
  return state


def compile_train_step(exp: Experiment, state: steps.TrainState):
  """The jitted, state-donating train step with explicit shardings."""
  step = functools.partial(steps.train_step, model=exp.model, tx=exp.tx,
                           schedule=exp.schedule, seed=exp.config.seed,
                           input_config=exp.config.input)
  state_sharding = jax.tree.map(lambda _: exp.replicated, state)
  return jax.jit(step, in_shardings=(state_sharding, exp.data_sharding),
                 out_shardings=(state_sharding, exp.replicated), donate_argnums=0)


def global_batch(exp: Experiment, local_batch):
  """Host-local numpy arrays -> global arrays sharded over the `data` axis."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(exp.data_sharding, np.asarray(x)),
      local_batch)


def checkpoint_manager(workdir, config) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      epath.Path(workdir) / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                           enable_async_checkpointing=True))


def restore_state(manager, step, model, tx, config, sharding) -> steps.TrainState:
  """The checkpoint of `step`, placed with `sharding` (any device count may read it)."""
  abstract = jax.eval_shape(functools.partial(steps.fresh_state, model, tx, config),
                            jax.random.key(0))
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        abstract)
  restored = manager.restore(step, args=ocp.args.StandardRestore(_as_dict(target)))
  return steps.TrainState(**restored)


def restore_or_init(exp: Experiment, manager: ocp.CheckpointManager) -> steps.TrainState:
  """The latest checkpoint in the workdir if there is one, else a fresh state."""
  latest = manager.latest_step()
  if latest is None:
    return init_state(exp)
  logging.info("resuming from the checkpoint of step %d", latest)
  return restore_state(manager, latest, exp.model, exp.tx, exp.config, exp.replicated)


def restore_latest(config, workdir) -> tuple[Experiment, steps.TrainState]:
  """The experiment of `config` and the latest checkpoint of `workdir` (for tools that
  read a finished or running training workdir); FileNotFoundError if there is none."""
  exp = setup(config)
  manager = checkpoint_manager(workdir, config)
  try:
    if manager.latest_step() is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train first")
    return exp, restore_or_init(exp, manager)
  finally:
    manager.close()


def _as_dict(state: steps.TrainState) -> dict:
  return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
          "opt_state": state.opt_state}


class _Preemption:
  """Remembers a SIGTERM so that the loop can checkpoint and stop cleanly."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. some notebooks): no handler
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint and stopping")
    self.requested = True

  def reached(self, step: int) -> bool:
    """Whether to stop after `step`. Hosts get SIGTERM at different moments; on several
    hosts JAX's preemption service picks one step at which all of them stop together."""
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def config_differences(old, new) -> list[str]:
  """'field: old -> new' for every leaf that differs between two configs."""
  flat = lambda c: {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in traverse_util.flatten_dict(c.to_dict(), sep=".").items()}
  a, b = flat(old), flat(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k)]


def write_run_info(exp: Experiment, workdir: epath.Path):
  """The config and the class names, so evaluate and predict need only the workdir."""
  if jax.process_index() != 0:
    return
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / "config.json"
  if path.exists():
    changed = config_differences(evaluate.load_run_config(workdir), exp.config)
    if changed:
      logging.warning("%s holds a run with another config; resuming it with this one. "
                      "Changed: %s. Use a new --workdir to start afresh.", workdir,
                      "; ".join(changed))
  path.write_text(exp.config.to_json_best_effort(indent=1))
  info = exp.builder.info
  (workdir / "dataset.json").write_text(json.dumps({
      "name": exp.config.dataset.name,
      "class_names": info.features["label"].names,
      "short_side": (info.metadata or {}).get("short_side", 0),
      "fps": (info.metadata or {}).get("fps", 0.0)}, indent=1))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains, validates, checkpoints and tests; returns the test results.

  Returns:
    The contents of `results.json`, or {} when a preemption (SIGTERM) stopped the run
    early; running it again with the same workdir resumes.
  """
  workdir = epath.Path(workdir)
  exp = setup(config)
  write_run_info(exp, workdir)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  manager = checkpoint_manager(workdir, config)
  state = restore_or_init(exp, manager)
  start = int(state.step)
  logging.info("training %s for %d steps (%d per epoch) from step %d on %d devices",
               config.model.variant, exp.num_steps, exp.steps_per_epoch, start,
               jax.device_count())
  step_fn = compile_train_step(exp, state)
  train_iter = iter(pipeline.train_dataset(exp.builder, config, exp.local_batch,
                                           start_step=start))
  report = periodic_actions.ReportProgress(num_train_steps=exp.num_steps, writer=writer)
  pending, stopped = [], False
  tick = time.time()
  try:
    with _Preemption() as preemption:
      for step in range(start + 1, exp.num_steps + 1):
        batch = global_batch(exp, next(train_iter))
        state, metrics = step_fn(state, batch)
        pending.append(metrics)
        report(step)
        preempt = preemption.reached(step)
        save = (step % config.checkpoint_every_steps == 0 or step == exp.num_steps
                or preempt)
        if step % config.log_every_steps == 0 or save:
          summary = _summarise(pending, step)  # raises on a NaN/Inf loss, before saving
          elapsed, tick = time.time() - tick, time.time()
          summary["clips_per_sec"] = len(pending) * config.batch_size / elapsed
          writer.write_scalars(step, summary)
          pending = []
        if save:
          manager.save(step, args=ocp.args.StandardSave(_as_dict(state)), force=True)
        if config.eval_every_steps and step % config.eval_every_steps == 0 and not preempt:
          writer.write_scalars(step, evaluate.validate(exp, state))
        if preempt:
          stopped = step < exp.num_steps
          break
  finally:
    # Whatever stops the loop, the saves already started complete.
    manager.wait_until_finished()
    manager.close()
  if stopped:
    logging.info("stopped at step %d; run again with the same workdir to resume",
                 int(state.step))
    writer.flush()
    return {}
  results = evaluate.test(exp, state, workdir)
  writer.write_scalars(int(state.step), {f"test/{k}": v for k, v in results.items()
                                         if isinstance(v, (int, float))})
  writer.flush()
  return results


def _summarise(pending, step) -> dict:
  """Means of the metrics since the last log; stops on a non-finite loss."""
  stacked = jax.device_get(pending)
  losses = np.array([m["loss"] for m in stacked])
  if not np.all(np.isfinite(losses)):
    bad = step - len(losses) + 1 + int(np.argmin(np.isfinite(losses)))
    raise FloatingPointError(
        f"the training loss became {losses[~np.isfinite(losses)][0]} at step {bad}: "
        "training stopped and the last good checkpoint was kept; lower "
        "config.optimizer.base_lr or check the data")
  return {f"train/{k}": float(np.mean([m[k] for m in stacked])) for k in stacked[0]}

