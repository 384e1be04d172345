r"""Evaluation: single-clip validation and the paper's multi-view test.

  python -m cost_jax.evaluate --workdir=DIR [--num_clips=10 --num_crops=3 --data_dir=DATA]

runs the test on the latest checkpoint of a training workdir and writes
`DIR/results.json`: top-1, top-5 and mean class accuracy, per clip (every view on its own)
and per video (softmax averaged over `num_clips x num_crops` views), with the step and the
config name; per class, the video top-1, the confusion matrix of the video predictions
and the most confused pairs of classes (also printed, and drawn in `DIR/confusion.png`).
Every video of the split is counted exactly once over all hosts.
"""

import json

import jax
import numpy as np
from absl import flags, logging
from etils import epath

from cost_jax import cli, errors, experiment, plots, steps, workdir as workdir_lib
from cost_jax.data import input as input_lib


def topk_correct(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """Whether the label is among the k most probable classes, per row."""
  top = np.argsort(-probs, axis=-1)[:, :k]
  return (top == labels[:, None]).any(axis=-1)


def accuracy_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
  """top1, top5 and mean class accuracy (the mean over classes present of top-1)."""
  top1 = topk_correct(probs, labels, 1)
  per_class = [top1[labels == c].mean() for c in range(num_classes) if np.any(labels == c)]
  return {"top1": float(top1.mean()), "top5": float(topk_correct(probs, labels, 5).mean()),
          "mean_class_accuracy": float(np.mean(per_class))}


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int
                     ) -> np.ndarray:
  """int `(C, C)`: videos of true class i (row) predicted as class j (column)."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (labels, predicted), 1)
  return matrix


def most_confused(matrix: np.ndarray, class_names, k: int = 10) -> list[dict]:
  """The `k` largest off-diagonal counts: which class is taken for which, how often."""
  off = matrix.copy()
  np.fill_diagonal(off, 0)
  order = np.argsort(-off, axis=None, kind="stable")[:k]
  pairs = []
  for true, predicted in zip(*np.unravel_index(order, off.shape)):
    if off[true, predicted] == 0:
      break
    pairs.append({"true": class_names[true], "predicted": class_names[predicted],
                  "videos": int(off[true, predicted]),
                  "share_of_true": float(off[true, predicted] / matrix[true].sum())})
  return pairs


def per_class(matrix: np.ndarray, class_names) -> dict:
  """{class: video top-1} for the classes with test videos."""
  totals = matrix.sum(axis=1)
  return {name: float(matrix[i, i] / totals[i]) for i, name in enumerate(class_names)
          if totals[i]}


def map_split(exp, state, split: str, mode: str, name: str, fn) -> dict:
  """Runs `fn(params, batch_stats, batch) -> {key: (B, ...)}` over every example of
  `split` (eval pipeline in `mode`) on all hosts; returns `{key: (N, ...)}` numpy arrays
  with the padding removed. The jitted step is kept in `exp.compiled[name]`."""
  local_batch = exp.config.eval_batch_size // jax.process_count()
  batches, _ = input_lib.eval_batches(exp.dataset, exp.config, split, local_batch, mode)
  if name not in exp.compiled:
    # Each host feeds its slice; the replicated outputs hold every host's examples.
    exp.compiled[name] = jax.jit(
        lambda p, s, b: (fn(p, s, b), b["mask"]),
        in_shardings=(exp.replicated, exp.replicated, exp.data_sharding),
        out_shardings=exp.replicated)
  step, outputs = exp.compiled[name], []
  for batch in batches:
    batch = jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(exp.data_sharding, x), batch)
    out, mask = jax.device_get(step(state.params, state.batch_stats, batch))
    outputs.append(jax.tree.map(lambda x: x[mask > 0], out))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)


def run_predictions(exp, state, split: str, mode: str):
  """(probs (N, V, C), labels (N,)) over every example of `split`, padding removed."""
  def fn(params, batch_stats, batch):
    probs = steps.predict_step(params, batch_stats, batch["video"], model=exp.model,
                               input_config=exp.config.input)
    return {"probs": probs, "label": batch["label"]}

  out = map_split(exp, state, split, mode, "predict", fn)
  return out["probs"], out["label"]


def validate(exp, state) -> dict:
  """Single centred clip per video of `config.dataset.eval_split`."""
  probs, labels = run_predictions(exp, state, exp.config.dataset.eval_split, "validation")
  m = accuracy_metrics(probs[:, 0], labels, probs.shape[-1])
  logging.info("validation at step %d: top1 %.4f top5 %.4f over %d videos",
               int(state.step), m["top1"], m["top5"], len(labels))
  return {f"val/{k}": v for k, v in m.items()}


def test(exp, state, workdir) -> dict:
  """The multi-view test of `config.dataset.test_split`; writes `results.json`."""
  probs, labels = run_predictions(exp, state, exp.config.dataset.test_split, "test")
  return write_results(exp, int(state.step), workdir, (probs, labels))


def write_results(exp, step: int, workdir, predictions) -> dict:
  """`results.json` from the test's `(probs (N, V, C), labels (N,))`; None when the
  dataset has no test split (the file then says so, with the step, so that a finished
  run is still recognisable)."""
  c = exp.config
  results = {"config": c.name, "dataset": c.dataset.name, "split": c.dataset.test_split,
             "step": step}
  if predictions is None:
    results.update(num_videos=0, note=f"no {c.dataset.test_split!r} split: not tested")
    line = f"no test at step {step}: {results['note']}"
  else:
    probs, labels = predictions
    num_classes, views = probs.shape[-1], probs.shape[1]
    video = accuracy_metrics(probs.mean(axis=1), labels, num_classes)
    clip = accuracy_metrics(probs.reshape(-1, num_classes), np.repeat(labels, views),
                            num_classes)
    names = list(exp.dataset.class_names) or [str(i) for i in range(num_classes)]
    matrix = confusion_matrix(probs.mean(axis=1).argmax(-1), labels, num_classes)
    confused = most_confused(matrix, names)
    results.update({"num_videos": int(len(labels)), "num_clips": c.input.num_test_clips,
                    "num_crops": c.input.num_test_crops,
                    **{f"video_{k}": v for k, v in video.items()},
                    **{f"clip_{k}": v for k, v in clip.items()},
                    "per_class_video_top1": per_class(matrix, names),
                    "most_confused": confused,
                    "confusion_matrix": {"rows": "true class", "columns": "predicted class",
                                         "class_names": names,
                                         "videos": matrix.tolist()}})
    line = (f"test ({views} views per video, {len(labels)} videos, step {step}): "
            f"video top-1 {video['top1']:.4f}, top-5 {video['top5']:.4f}, mean class "
            f"accuracy {video['mean_class_accuracy']:.4f}; clip top-1 {clip['top1']:.4f}")
    if confused:
      line += "\nmost confused (true -> predicted, videos): " + "; ".join(
          f"{p['true']} -> {p['predicted']} {p['videos']}" for p in confused[:5])
  if jax.process_index() == 0:
    path = epath.Path(workdir) / "results.json"
    path.write_text(json.dumps(results, indent=1))
    if predictions is not None:
      plots.confusion(matrix, names, epath.Path(workdir) / "confusion.png",
                      f"{c.dataset.name} {c.dataset.test_split}, step {step}")
    print(f"{line}\n-> {path}")
  return results


def restore_latest(config, workdir) -> tuple[experiment.Experiment, steps.TrainState]:
  """The experiment of `config` and the latest checkpoint of `workdir` (for tools that
  read a finished or running training workdir); `WorkdirError` if there is none."""
  exp = experiment.setup(config)
  manager = workdir_lib.checkpoint_manager(workdir)
  try:
    latest = manager.latest_step()
    if latest is None:
      raise errors.WorkdirError(f"no checkpoint in {workdir}/checkpoints: train first")
    return exp, workdir_lib.restore_state(manager, latest, exp.model, exp.tx, exp.config,
                                          exp.replicated)
  finally:
    manager.close()


def set_views(config, num_clips: int | None = None, num_crops: int | None = None):
  """Overrides the run's multi-view test (`None` keeps it)."""
  if num_clips:
    config.input.num_test_clips = num_clips
  if num_crops:
    config.input.num_test_crops = num_crops
  return config


def evaluate_workdir(workdir, num_clips: int | None = None, num_crops: int | None = None,
                     data_dir: str | None = None) -> dict:
  """Runs `test` on the latest checkpoint of `workdir` (of training or `cost_jax.convert`);
  `data_dir` overrides where the run's dataset is found."""
  config = set_views(workdir_lib.load_run_config(workdir), num_clips, num_crops)
  if data_dir:
    config.dataset.data_dir = data_dir
  exp, state = restore_latest(config, workdir)
  input_lib.require_split(exp.dataset, config.dataset.test_split,
                         "config.dataset.test_split")
  return test(exp, state, workdir)


def main(argv):
  del argv
  from cost_jax import runtime
  runtime.prepare()
  f = flags.FLAGS
  evaluate_workdir(f.workdir, f.num_clips, f.num_crops, f.data_dir)


if __name__ == "__main__":
  # Defined here, not at import: `cost_jax.train` imports this module as a library.
  flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
  flags.DEFINE_integer("num_clips", None, "Clips per video (default: the run's config).")
  flags.DEFINE_integer("num_crops", None, "1 or 3 crops (default: the run's config).")
  flags.DEFINE_string("data_dir", None, "Where the run's dataset is (default: the run's "
                      "config.dataset.data_dir).")
  flags.mark_flags_as_required(["workdir"])
  cli.run(main)
