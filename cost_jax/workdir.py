"""What a training workdir holds, and who may write it.

  DIR/config.json     the run's config (evaluate, predict and analyze need only DIR)
  DIR/dataset.json    class names, stored short side and fps of the dataset
  DIR/checkpoints/    orbax checkpoints, one folder per step; a save cut short is a
                      temporary folder that is never read
  DIR/job.lock        held (flock) by the one job that trains in DIR

A training job passes two gates before anything is compiled: `open_for_training` (DIR
is writable and no other job trains in it; process 0 checks, every process gets the
verdict) and `check_and_record` (its checkpoints are of the same network).
"""

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import traverse_util

from cost_jax import errors, multihost, steps

LOCK_FILE = "job.lock"
# How long the other processes of a job wait for process 0's checks (seconds).
CHECK_TIMEOUT_S = 600


def load_run_config(workdir) -> ml_collections.ConfigDict:
  path = epath.Path(workdir) / "config.json"
  if not path.exists():
    raise errors.WorkdirError(f"{path} not found: {workdir} is not a training workdir "
                              "of cost_jax.main")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def config_differences(old, new) -> list[str]:
  """'field: old -> new' for every leaf that differs between two configs."""
  flat = lambda c: {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in traverse_util.flatten_dict(c.to_dict(), sep=".").items()}
  a, b = flat(old), flat(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k)]


def _write_replicas_whole():
  """Each array is written by one replica, whole. Orbax's default on CPUs and TPUs splits
  a replicated array among its replicas, and each device compiles a slicing function for
  each shape at the first save: on 8 CPU devices, 7.6 s of a tiny network's first save
  (then 0.03 s), for states of at most a few hundred MB that one host writes in moments.
  (Orbax keeps handlers in one registry per process; this one applies to all of it.)"""
  # Orbax registers its default handler with an array metadata store (not exported).
  from orbax.checkpoint._src.metadata import array_metadata_store
  ocp.type_handlers.register_type_handler(
      jax.Array, ocp.type_handlers.ArrayHandler(
          use_replica_parallel=False, array_metadata_store=array_metadata_store.Store()),
      override=True)


def checkpoint_manager(workdir, config=None) -> ocp.CheckpointManager:
  """The workdir's checkpoints; `config` sets how many are kept (reading needs none)."""
  _write_replicas_whole()
  options = (ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                          enable_async_checkpointing=True)
             if config is not None else None)
  folder = os.fspath(epath.Path(workdir) / "checkpoints")
  if "://" not in folder:
    folder = os.path.abspath(folder)  # orbax refuses relative paths (`--workdir=runs/x`)
  return ocp.CheckpointManager(folder, options=options,
                               item_handlers=ocp.StandardCheckpointHandler())


def as_dict(state: steps.TrainState) -> dict:
  return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
          "opt_state": state.opt_state}


def restore_state(manager, step, model, tx, config, sharding) -> steps.TrainState:
  """The checkpoint of `step`, placed with `sharding` (any device count may read it)."""
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        steps.abstract_state(model, tx, config))
  restored = manager.restore(step, args=ocp.args.StandardRestore(as_dict(target)))
  return steps.TrainState(**restored)


def _shapes(tree) -> dict[str, tuple]:
  flat = traverse_util.flatten_dict(dict(tree), sep="/")
  return {k: tuple(v.shape) for k, v in flat.items()}


def network_mismatch(manager, step, abstract: steps.TrainState) -> list[str]:
  """How the network saved at `step` differs from `abstract`'s: missing, unexpected and
  mis-shaped variables (at most three of each), from the checkpoint's metadata only."""
  saved = manager.item_metadata(step).tree
  problems = []
  for collection in ("params", "batch_stats"):
    have = _shapes(saved.get(collection) or {})
    want = _shapes(getattr(abstract, collection))
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shaped = sorted(k for k in set(have) & set(want) if have[k] != want[k])
    for label, keys in (("not in the checkpoint", missing),
                        ("only in the checkpoint", extra)):
      if keys:
        problems.append(f"{len(keys)} {collection} {label} (e.g. "
                        f"{', '.join(keys[:3])})")
    if shaped:
      problems.append(f"{len(shaped)} {collection} of another shape (e.g. " + ", ".join(
          f"{k}: {have[k]} saved, {want[k]} now" for k in shaped[:3]) + ")")
  return problems


def lock_job(workdir: epath.Path) -> multihost.FileLock:
  """Holds `DIR/job.lock` for this job (see `multihost.FileLock`: local disks and NFS;
  on gs:// a second job is not detected, which is logged)."""
  lock = multihost.FileLock(workdir / LOCK_FILE)
  if not lock.supported:
    logging.warning("%s is not a local path: a second job started on it would not be "
                    "detected", workdir)
  try:
    return lock.acquire(blocking=False)
  except BlockingIOError as e:
    raise errors.WorkdirError(
        f"{workdir} is in use by another training job ({e}): wait for it to finish or "
        "stop it, or choose another --workdir") from None


def _check_writable(workdir: epath.Path):
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write_test.{os.getpid()}"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise errors.WorkdirError(f"cannot write to the workdir {workdir} ({e.strerror or e}): "
                              "choose a --workdir you can write") from None


def write_run_info(workdir: epath.Path, config, class_names, short_side: int = 0,
                   fps: float = 0.0):
  """The config and the class names, so evaluate and predict need only the workdir."""
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))
  (workdir / "dataset.json").write_text(json.dumps({
      "name": config.dataset.name, "class_names": list(class_names),
      "short_side": short_side, "fps": fps}, indent=1))


def open_for_training(workdir) -> multihost.FileLock | None:
  """Checks that `workdir` can be written and takes its job lock, on process 0.

  Raises `errors.WorkdirError` (on every process) when the workdir cannot be written or
  another job holds its lock. Returns the lock, held by process 0 until `release()`
  (None on the other processes).
  """
  workdir = epath.Path(workdir)

  def check_and_lock():
    _check_writable(workdir)
    return lock_job(workdir)

  return multihost.run_on_first("open-workdir", check_and_lock, CHECK_TIMEOUT_S,
                                f"the checks of the workdir {workdir}")


def check_and_record(exp, manager, workdir) -> None:
  """Refuses a workdir whose checkpoints are of another network, then records the config.

  Every process reads the same checkpoint metadata (no arrays, nothing compiled), so all
  of them raise the same `errors.WorkdirError` naming the missing, unexpected and
  mis-shaped variables; process 0 adds the config fields that changed, warns when only
  other fields changed (resuming with, say, another learning rate is allowed) and writes
  `config.json` and `dataset.json`.
  """
  workdir = epath.Path(workdir)
  first = jax.process_index() == 0
  changed = []
  if first and (workdir / "config.json").exists():
    changed = config_differences(load_run_config(workdir), exp.config)
  latest = manager.latest_step()
  problems = [] if latest is None else network_mismatch(
      manager, latest, steps.abstract_state(exp.model, exp.tx, exp.config))
  if problems:
    model_changes = [c for c in changed
                     if c.startswith(("model.", "input.num_frames", "input.crop_size",
                                      "dataset."))]
    raise errors.WorkdirError(
        f"{workdir} holds checkpoints (step {latest}) of another network than this "
        f"config's: {'; '.join(problems)}."
        + (f" Changed in the config: {'; '.join(model_changes or changed)}." if changed
           else "") + " Use a new --workdir, or the config that wrote this one")
  if not first:
    return
  if changed:
    logging.warning("%s holds a run with another config; resuming it with this one. "
                    "Changed: %s. Use a new --workdir to start afresh.", workdir,
                    "; ".join(changed))
  metadata = exp.dataset.metadata
  write_run_info(workdir, exp.config, exp.dataset.class_names,
                 metadata.get("short_side", 0), metadata.get("fps", 0.0))


def is_run(path) -> bool:
  """Whether `path` is a run folder: a training workdir or a converted checkpoint."""
  path = epath.Path(path)
  return (path / "config.json").exists() and (path / "checkpoints").is_dir()


def read_variables(run) -> tuple[dict, int]:
  """(`{'params', 'batch_stats'}` as numpy arrays, step) of a run's latest checkpoint,
  read on the host (any device count, no config needed)."""
  manager = checkpoint_manager(run)
  try:
    step = manager.latest_step()
    if step is None:
      raise errors.WorkdirError(f"no checkpoint in {run}/checkpoints")
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                          manager.item_metadata(step).tree)
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
    restored = {c: restored[c] for c in ("params", "batch_stats")}
    return jax.device_get(restored), step
  finally:
    manager.close()
