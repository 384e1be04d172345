"""Training: one readable loop, everything driven by the config.

`train_and_evaluate(config, workdir)` trains on the mesh of all devices of all hosts (the
batch sharded over a `data` axis, parameters replicated), checkpoints with orbax (async,
every `checkpoint_every_steps`, on SIGTERM and at the end), resumes from the latest
checkpoint in `workdir`, validates periodically and ends with the multi-view test.
"""

import signal
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from cost_jax import (errors, evaluate, experiment, multihost, steps, summaries,
                      workdir as workdir_lib)
from cost_jax.data import input as input_lib
from cost_jax.experiment import Experiment


def compile_train_step(exp: Experiment, state: steps.TrainState):
  """`steps.jit_train_step` for the experiment: `step_fn(state, batch, stop)`."""
  return steps.jit_train_step(exp.model, exp.tx, exp.schedule, exp.config.seed,
                              exp.config.input, state, exp.replicated, exp.data_sharding)


class Preemption:
  """Remembers a SIGTERM so that every process of the job checkpoints and stops at the
  same step.

  Each process's request travels through the train step (`flags`, reduced with a max on
  the devices), so a SIGTERM to any one process, or to all, reaches every process with
  the same step's result; the loop reads it one step late, so as not to wait for each
  step to finish before starting the next.
  """

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
    logging.warning("SIGTERM received: every process will save a checkpoint and stop")
    self.requested = True

  def flags(self, exp: Experiment) -> jax.Array:
    """This host's request, one entry per local device, as a global array."""
    local = np.full(jax.local_device_count(), self.requested, np.int32)
    return jax.make_array_from_process_local_data(exp.data_sharding, local)

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains, validates, checkpoints and tests; returns the test results.

  Returns:
    The contents of `results.json`, or {} when a preemption (SIGTERM) stopped the run
    early; running it again with the same workdir resumes.
  Raises:
    `errors.UserError` for a wrong config, a missing dataset or an unusable workdir,
    before anything is compiled.
  """
  workdir = epath.Path(workdir)
  # From the start: a SIGTERM during set-up or compilation stops the run after its first
  # steps, with a checkpoint, like one during training.
  with Preemption() as preemption:
    lock = workdir_lib.open_for_training(workdir)  # first: cheap, and before any build
    try:
      exp = experiment.setup(config)
      return _train_and_test(exp, workdir, preemption)
    finally:
      if lock is not None:
        lock.release()


def _restore_or_init(exp: Experiment, manager) -> steps.TrainState:
  """The latest checkpoint in the workdir if there is one, else a fresh state."""
  latest = manager.latest_step()
  if latest is None:
    return experiment.init_state(exp)
  logging.info("resuming from the checkpoint of step %d", latest)
  return workdir_lib.restore_state(manager, latest, exp.model, exp.tx, exp.config,
                                   exp.replicated)


def _optional_split(exp: Experiment, field: str) -> str | None:
  """`config.dataset.<field>` if the dataset has that split, else None (said once)."""
  split = exp.config.dataset[field]
  if exp.dataset.has_split(split):
    return split
  what = "periodic validation" if field == "eval_split" else "the final test"
  logging.warning("%s has no %r split (config.dataset.%s; it has %s): %s is skipped",
                  exp.config.dataset.name, split, field, ", ".join(exp.dataset.splits),
                  what)
  return None


def _train_and_test(exp: Experiment, workdir: epath.Path, preemption: Preemption) -> dict:
  config = exp.config
  manager = workdir_lib.checkpoint_manager(workdir, config)
  try:
    workdir_lib.check_and_record(exp, manager, workdir)
  except errors.WorkdirError:
    manager.close()
    raise
  writer = summaries.create_writer(workdir, just_logging=jax.process_index() > 0)
  validation = _optional_split(exp, "eval_split") if config.eval_every_steps else None
  state = _restore_or_init(exp, manager)
  start = int(state.step)
  logging.info("training %s for %d steps (%d per epoch) from step %d on %d devices",
               config.model.variant, exp.num_steps, exp.steps_per_epoch, start,
               jax.device_count())
  step_fn = compile_train_step(exp, state)
  train_iter = input_lib.train_batches(exp.dataset, config, exp.local_batch,
                                       start_step=start)
  pending, stopped, previous_stop = [], False, None
  tick = time.time()
  try:
    for step in range(start + 1, exp.num_steps + 1):
      batch = experiment.global_batch(exp, next(train_iter))
      state, metrics, stop = step_fn(state, batch, preemption.flags(exp))
      pending.append(metrics)
      # A process asked to stop before the previous step: all of them stop after this
      # one, which they all know, having read the same replicated flag.
      preempt = previous_stop is not None and bool(previous_stop)
      previous_stop = stop
      save = (step % config.checkpoint_every_steps == 0 or step == exp.num_steps
              or preempt)
      if step % config.log_every_steps == 0 or save:
        summary = _summarise(pending, step)  # raises on a NaN/Inf loss, before saving
        elapsed, tick = time.time() - tick, time.time()
        summary["steps_per_sec"] = len(pending) / elapsed
        summary["clips_per_sec"] = len(pending) * config.batch_size / elapsed
        writer.write_scalars(step, summary)
        pending = []
      if save:
        manager.save(step, args=ocp.args.StandardSave(workdir_lib.as_dict(state)),
                     force=True)
      if validation and step % config.eval_every_steps == 0 and not preempt:
        writer.write_scalars(step, evaluate.validate(exp, state))
      if preempt:
        logging.warning("a process of the job received SIGTERM: stopping after step %d "
                        "with a checkpoint", step)
        stopped = step < exp.num_steps
        break
  except BaseException as e:
    if multihost.is_peer_failure(e):
      multihost.abandon(e, workdir)  # waiting for this save with a process gone would hang
    raise
  finally:
    train_iter.close()  # stops the input workers
    # Whatever else stops the loop, the saves already started complete.
    manager.wait_until_finished()
    manager.close()
  if stopped:
    logging.info("stopped at step %d; run again with the same workdir to resume",
                 int(state.step))
    writer.flush()
    return {}
  if _optional_split(exp, "test_split") is None:
    results = evaluate.write_results(exp, int(state.step), workdir, None)
  else:
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

