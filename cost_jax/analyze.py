r"""How much each CoST layer relies on space (H-W) versus time (T-W, T-H).

  python -m cost_jax.analyze --workdir=DIR [--split=validation] [--per_class]

reads the latest checkpoint of a CoST training workdir (any dataset) and writes

  DIR/coefficients.json  per CoST layer, shallow to deep: the mean share of H-W, T-W and
                         T-H over the layer's channels (`mean`, sums to 1) and their
                         standard deviation over channels (`channel_std`)
  DIR/coefficients.png   the shares across depth, stacked per layer

CoST(a) coefficients are parameters: `softmax(alpha, axis=0)` per channel, read from the
checkpoint without any data. CoST(b) predicts them per clip, so the centred validation
clip of every video of `--split` goes through the model and the per-channel coefficients
are averaged over videos (and, with `--per_class`, over the videos of each class).
"""

import json
import re

import jax
import numpy as np
from absl import app, flags, logging
from etils import epath
from flax import traverse_util

from cost_jax import cli, evaluate, plots, workdir as workdir_lib
from cost_jax.data import on_device
from cost_jax.models.cost import VIEWS


def _natural_key(name: str):
  """'res4_10/conv2' after 'res4_2/conv2': layers in the order of depth."""
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def learned_coefficients(params) -> dict[str, np.ndarray]:
  """CoST(a): `{layer: (C, 3)}`, the softmax over views of every `alpha` in `params`."""
  flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
  found = {}
  for key, alpha in flat.items():
    if key == "alpha" or key.endswith("/alpha"):
      alpha = np.asarray(alpha, np.float64)
      shares = np.exp(alpha - alpha.max(axis=0))
      found[key.rsplit("/", 1)[0] if "/" in key else ""] = (shares / shares.sum(0)).T
  return dict(sorted(found.items(), key=lambda kv: _natural_key(kv[0])))


def predicted_coefficients(exp, state, split: str) -> tuple[dict[str, np.ndarray],
                                                            np.ndarray]:
  """CoST(b): `({layer: (N, C, 3)}, labels (N,))` over the centred clip of every video."""
  def fn(params, batch_stats, batch):
    video = on_device.model_input(batch, exp.config.input)
    _, state = exp.model.apply({"params": params, "batch_stats": batch_stats}, video,
                               train=False, mutable=["intermediates"])
    flat = traverse_util.flatten_dict(state["intermediates"], sep="/")
    coefficients = {k.rsplit("/", 1)[0]: v[0] for k, v in flat.items()
                    if k.endswith("/coefficients") and v[0].ndim == 3}
    return {"coefficients": coefficients, "label": batch["label"]}

  out = evaluate.map_split(exp, state, split, "validation", "coefficients", fn)
  found = dict(sorted(out["coefficients"].items(), key=lambda kv: _natural_key(kv[0])))
  return found, out["label"]


def layer_stats(per_channel: np.ndarray) -> dict:
  """Mean share of each view over channels and its spread; `per_channel` is `(C, 3)`."""
  return {"channels": int(per_channel.shape[0]),
          "mean": [float(x) for x in per_channel.mean(axis=0)],
          "channel_std": [float(x) for x in per_channel.std(axis=0)]}


def analyze_workdir(workdir, split: str | None = None, per_class: bool = False) -> dict:
  """Writes `coefficients.json` and `coefficients.png` for the latest checkpoint."""
  workdir = epath.Path(workdir)
  config = workdir_lib.load_run_config(workdir)
  exp, state = evaluate.restore_latest(config, workdir)
  split = split or config.dataset.eval_split
  analysis = {"workdir": str(workdir), "variant": config.model.variant,
              "dataset": config.dataset.name, "step": int(state.step), "views": list(VIEWS)}

  learned = learned_coefficients(state.params)
  if learned:
    analysis.update(source="learned", layers=[
        {"name": name, **layer_stats(c)} for name, c in learned.items()])
    if per_class:
      logging.warning("--per_class ignored: CoST(a) coefficients do not depend on the input")
  else:
    predicted, labels = predicted_coefficients(exp, state, split)
    if not predicted:
      raise ValueError(f"{workdir} holds a {config.model.variant} network, which has no "
                       "CoST layer: analyze a run of variant costa or costb")
    analysis.update(source=f"mean over {len(labels)} videos of {split}", split=split,
                    num_videos=int(len(labels)), layers=[
                        {"name": name, **layer_stats(c.mean(axis=0))}
                        for name, c in predicted.items()])
    if per_class:
      names = exp.dataset.class_names
      analysis["per_class"] = {
          names[k]: [{"name": name, "num_videos": int(np.sum(labels == k)),
                      **layer_stats(c[labels == k].mean(axis=0))}
                     for name, c in predicted.items()]
          for k in np.unique(labels)}

  if jax.process_index() == 0:
    (workdir / "coefficients.json").write_text(json.dumps(analysis, indent=1))
    plots.coefficient_shares(analysis, workdir / "coefficients.png")
    print(format_table(analysis))
    print(f"-> {workdir}/coefficients.json, coefficients.png")
  return analysis


def format_table(analysis: dict) -> str:
  lines = [f"{analysis['variant']} at step {analysis['step']} ({analysis['source']}): "
           "mean share over channels (std over channels)",
           f"{'layer':24s}{'H-W':>16s}{'T-W':>16s}{'T-H':>16s}"]
  for layer in analysis["layers"]:
    cells = "".join(f"{m:>9.3f} ({s:.3f})" for m, s in zip(layer["mean"],
                                                           layer["channel_std"]))
    lines.append(f"{layer['name']:24s}{cells}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from cost_jax import runtime
  runtime.prepare()
  f = flags.FLAGS
  analyze_workdir(f.workdir, f.split, f.per_class)


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir of a costa or costb run.")
  flags.DEFINE_string("split", None, "CoST(b): the split to average over (default: the "
                      "run's config.dataset.eval_split); TFDS slices such as "
                      "'validation[:1000]' work.")
  flags.DEFINE_bool("per_class", False, "CoST(b): also average per class.")
  flags.mark_flags_as_required(["workdir"])
  cli.run(main)
