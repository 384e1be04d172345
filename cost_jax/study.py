r"""Model comparison: several variants of one network trained under one budget.

  python -m cost_jax.study --config=configs/study.py --workdir=DIR

trains every variant of `config.study.variants` with the same config (only
`config.model.variant` changes) in `DIR/<variant>`, then writes

  DIR/study.json  per variant: video top-1 / top-5, clip top-1, parameters, GFLOPs per
                  clip, training seconds (wall clock, test included)
  DIR/study.md    the same as a Markdown table
  DIR/study.png   video top-1 against parameters, with the chance level

Running it again resumes: finished variants are read back from their `results.json`, an
interrupted one resumes from its last checkpoint. Works with any config, Kinetics included:
`--variants=c2d,c3d,costa,costb` sets the variants of a config without a `study` block.
"""

import json
import time

import jax
import ml_collections
from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from cost_jax import cli, plots, summary, train
from cost_jax.data import input as input_lib


def variant_config(config, variant: str, num_classes: int) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.to_dict())
  c.model.variant = variant
  c.model.num_classes = num_classes
  return c


def run_variant(config, workdir: epath.Path) -> dict | None:
  """Trains (or resumes) one variant; its results, or None if it was preempted."""
  results_path = workdir / "results.json"
  time_path = workdir / "study_time.json"
  seconds = json.loads(time_path.read_text())["seconds"] if time_path.exists() else 0.0
  if results_path.exists():
    logging.info("%s is done: reading %s", config.model.variant, results_path)
    results = json.loads(results_path.read_text())
  else:
    start = time.time()
    results = train.train_and_evaluate(config, workdir)
    seconds += time.time() - start
    if jax.process_index() == 0:
      time_path.write_text(json.dumps({"seconds": seconds}))
    if not results:
      return None
  return {**results, "train_seconds": seconds}


def row(variant: str, results: dict, model_summary: dict) -> dict:
  flops = model_summary["flops"] or float("nan")  # None: JAX has no CPU backend to count
  return {"variant": variant, "video_top1": results["video_top1"],
          "video_top5": results["video_top5"], "clip_top1": results["clip_top1"],
          "params": int(model_summary["params"]), "gflops": flops / 1e9,
          "train_seconds": round(results["train_seconds"], 1), "step": results["step"]}


def markdown_table(study: dict) -> str:
  """`study.json` as a Markdown table; parameters also relative to c2d when present."""
  rows = study["variants"]
  base = next((r["params"] for r in rows if r["variant"] == "c2d"), None)
  head = ("| variant | params | params vs c2d | GFLOPs / clip | video top-1 | video top-5 "
          "| clip top-1 | training time |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
  lines = []
  for r in rows:
    ratio = f"{r['params'] / base:.4f}x" if base else "n/a"
    minutes, secs = divmod(int(round(r["train_seconds"])), 60)
    lines.append(f"| {r['variant']} | {r['params']:,} | {ratio} | {r['gflops']:.3f} | "
                 f"{r['video_top1']:.1%} | {r['video_top5']:.1%} | {r['clip_top1']:.1%} | "
                 f"{minutes} min {secs:02d} s |")
  return (f"{study['dataset']}, {study['num_classes']} classes (chance "
          f"{study['chance']:.1%}), {study['steps']} steps of {study['batch_size']} clips "
          f"per variant, test on `{study['test_split']}`.\n\n" + head + "\n".join(lines)
          + "\n")


def run_study(config, workdir) -> dict:
  """Trains each variant, then writes study.json, study.md and study.png to `workdir`.

  Returns:
    The contents of study.json, or {} when a preemption stopped a variant (run again).
  """
  if "study" not in config:
    raise ValueError("the config has no `study` block: use configs/study.py, pass "
                     "--variants=..., or add one with configs.study.add_study_fields(config)")
  variants = list(config.study.variants)
  if not variants:
    raise ValueError("config.study.variants is empty: name at least one variant")
  workdir = epath.Path(workdir)
  num_classes = len(input_lib.open_dataset(config.dataset, config.input).class_names)
  rows, steps = [], None
  for i, variant in enumerate(variants):
    logging.info("study: variant %d of %d, %s", i + 1, len(variants), variant)
    c = variant_config(config, variant, num_classes)
    results = run_variant(c, workdir / variant)
    if results is None:
      logging.info("study stopped during %s; run again with the same workdir to resume",
                   variant)
      return {}
    rows.append(row(variant, results, summary.summarize(c)))
    steps = results["step"]
  study = {"config": config.name, "dataset": config.dataset.name,
           "test_split": config.dataset.test_split, "num_classes": num_classes,
           "chance": 1.0 / num_classes, "steps": steps, "batch_size": config.batch_size,
           "clip": [config.input.num_frames, config.input.crop_size,
                    config.input.crop_size],
           "device": jax.devices()[0].device_kind, "variants": rows}
  if jax.process_index() == 0:
    (workdir / "study.json").write_text(json.dumps(study, indent=1))
    table = markdown_table(study)
    (workdir / "study.md").write_text(table)
    plots.accuracy_vs_params(study, workdir / "study.png")
    print(table)
    print(f"-> {workdir}/study.json, study.md, study.png")
  return study


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from cost_jax import runtime
  runtime.prepare()
  config = flags.FLAGS.config
  if flags.FLAGS.variants:
    config.study = ml_collections.ConfigDict(
        {"variants": tuple(flags.FLAGS.variants.split(","))})
  run_study(config, flags.FLAGS.workdir)


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", None, "Study config file.")
  flags.DEFINE_string("workdir", None, "One subfolder per variant goes here.")
  flags.DEFINE_string("variants", None, "Comma-separated variants; sets config.study "
                      "(so any config works, e.g. configs/kinetics.py).")
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(main)
