r"""A markdown report of a `cost_jax.bench.model` JSON: the table and the performance targets.

  python -m cost_jax.bench.report bench.json [--driver=...] [--date=...] > bench.md

MFU (model FLOPs utilisation) is the train step's model FLOPs (`bench.model.
model_gflops_per_clip`: XLA's count of the step as written with 3-D convolutions; a
multiply-add counts 2), times steps per second, over the devices' dense peak for the
compute dtype as the JSON states it (`peak_tflops_per_device`, `peak_source`). PyTorch
rows have no FLOPs of their own: the JAX row of the same variant does the same
arithmetic, so their MFU uses its FLOPs. Where JAX ran a variant with both
convolution implementations (`--conv_impl=3d,2d`), the targets take the faster of the two
(what `config.model.conv_impl='auto'` should pick there), and the report says which won.
"""

import json
import sys

# (name, how to read it from the report, comparison, goal): the GPU issue's targets.
TARGETS = (
    *((f"JAX / PyTorch train clips/s, {v}", ("jax_over_torch", v), ">=", 1.2)
      for v in ("c2d", "c3d_full", "costa", "costb")),
    ("CoST(a) train step / C3D 3x3x3 train step", ("step_ratio", "costa", "c3d_full"),
     "<=", 1.15),
    ("CoST(b) train step / CoST(a) train step", ("step_ratio", "costb", "costa"), "<=",
     1.35),
    ("MFU of the c3d_full train step", ("mfu", "c3d_full"), ">=", 0.40),
)


def _rows(report) -> dict:
  """{(framework, variant): row}; for JAX, the implementation with the faster step."""
  rows = {}
  for r in report["rows"]:
    key = (r["framework"], r["name"])
    if key not in rows or r["train"]["median_s"] < rows[key]["train"]["median_s"]:
      rows[key] = r
  return rows


def faster_impls(report) -> dict:
  """{variant: '3d' or '2d'} for the variants JAX ran with both implementations."""
  impls = {}
  for r in report["rows"]:
    if r["framework"] == "jax" and r.get("conv_impl"):
      impls.setdefault(r["name"], set()).add(r["conv_impl"])
  rows = _rows(report)
  return {name: rows["jax", name]["conv_impl"] for name, found in impls.items()
          if len(found) > 1}


def mfu(report, row) -> float | None:
  """Train-step FLOPs per second over the peak of all devices, for `row`."""
  peak = report.get("peak_tflops_per_device")
  jax_row = _rows(report).get(("jax", row["name"]), {})
  gflops = row.get("train_gflops_per_clip") or jax_row.get("train_gflops_per_clip")
  if not peak or not gflops:
    return None
  num_devices = report["num_devices"] if row["framework"] == "jax" else 1
  return gflops * row["train_clips_per_s"] / 1e3 / (peak * num_devices)


def measure(report, what) -> float | None:
  rows = _rows(report)
  kind, *names = what
  if kind == "jax_over_torch":
    jax_row, torch_row = rows.get(("jax", names[0])), rows.get(("torch", names[0]))
    if jax_row and torch_row:
      return jax_row["train_clips_per_s"] / torch_row["train_clips_per_s"]
  elif kind == "step_ratio":
    a, b = rows.get(("jax", names[0])), rows.get(("jax", names[1]))
    if a and b:
      return a["train"]["median_s"] / b["train"]["median_s"]
  elif kind == "mfu":
    row = rows.get(("jax", names[0]))
    return mfu(report, row) if row else None
  return None


def _gib(row) -> str:
  memory = row.get("train_memory", {})
  size = memory.get("device_peak_bytes", memory.get("compiled_bytes"))
  return f"{size / 2**30:.2f}" if size else "-"


def to_markdown(report: dict, driver: str = "", date: str = "") -> str:
  """The report as markdown: the setting, one row per network and framework, targets."""
  clip = "x".join(map(str, report["clip"]))
  peak = report.get("peak_tflops_per_device")
  lines = [
      f"Device: {report['device']} x{report['num_devices']} ({report['platform']})"
      + (f", driver {driver}" if driver else "") + (f", {date}" if date else ""),
      f"JAX {report['jax_version']}" + (f", PyTorch {report['torch_version']}"
                                       + (" with torch.compile" if report.get(
                                           "torch_compile") else "")
                                       if report.get("torch_version") else ""),
      f"Clip {clip}, batch {report['batch']}, compute {report['dtype']} (parameters "
      f"float32){', remat' if report.get('remat') else ''}; peak "
      + (f"{peak:.1f} TFLOP/s per device ({report['peak_source']})" if peak
         else f"unknown ({report['peak_source']})"),
      "",
      "| framework | model | convolutions | fwd clips/s | train step ms (p10-p90) | "
      "train clips/s | train GFLOPs/clip (model) | MFU | peak memory GiB | largest batch | "
      "compile s |",
      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for row in report["rows"]:
    t = row["train"]
    share = mfu(report, row)
    gflops = row.get("train_gflops_per_clip")
    compile_s = row.get("forward_compile_s", 0) + row.get("train_compile_s", 0)
    lines.append(
        f"| {row['framework']} | {row['name']} | {row.get('conv_impl', '-')} | "
        f"{row['forward_clips_per_s']:.1f} | "
        f"{t['median_s'] * 1e3:.1f} ({t['p10_s'] * 1e3:.1f}-{t['p90_s'] * 1e3:.1f}) | "
        f"{row['train_clips_per_s']:.1f} | {f'{gflops:.2f}' if gflops else '-'} | "
        f"{f'{100 * share:.1f}%' if share is not None else '-'} | {_gib(row)} | "
        f"{row.get('largest_batch') or '-'} | {compile_s:.1f} |")
  if report.get("missing"):
    lines += ["", "Partial run: not timed " + ", ".join(report["missing"]) + "."]
  faster = faster_impls(report)
  if faster:
    lines += ["", "Faster convolution implementation per network (train step): "
              + ", ".join(f"{name} {impl}" for name, impl in faster.items())
              + ". The targets below use it."]
  lines += ["", "| target | goal | measured | met |", "| --- | --- | ---: | --- |"]
  for name, what, op, goal in TARGETS:
    value = measure(report, what)
    percent = what[0] == "mfu"
    shown = "not measured" if value is None else (f"{100 * value:.1f}%" if percent
                                                  else f"{value:.2f}")
    met = "-" if value is None else ("yes" if (value >= goal if op == ">=" else
                                               value <= goal) else "no")
    goal_text = f"{op} {100 * goal:.0f}%" if percent else f"{op} {goal}"
    lines.append(f"| {name} | {goal_text} | {shown} | {met} |")
  return "\n".join(lines) + "\n"


USAGE = ("usage: python -m cost_jax.bench.report BENCH.json [--driver=...] [--date=...]\n"
         "  BENCH.json: the --json report of python -m cost_jax.bench.model")


def main(argv):
  if "--help" in argv or "-h" in argv:
    print(USAGE)
    return
  args = [a for a in argv[1:] if not a.startswith("--")]
  options = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
  unknown = set(options) - {"driver", "date"}
  if len(args) != 1 or unknown:
    sys.exit(USAGE)
  with open(args[0]) as f:
    report = json.load(f)
  sys.stdout.write(to_markdown(report, options.get("driver", ""), options.get("date", "")))


if __name__ == "__main__":
  main(sys.argv)
