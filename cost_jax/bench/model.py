r"""Speed of the models: inference forward and the full training step, per variant.

  python -m cost_jax.bench.model --config=configs/kinetics.py \
      [--variants=c2d,c3d,c3d_full,r2plus1d,costa,costb] [--conv_impl=3d,2d] [--batch=32] \
      [--dtype=bfloat16] [--clip=8,224] [--remat] [--torch] [--find_max_batch] \
      [--json=bench.json]

For each variant and each convolution implementation (`--conv_impl`, default the
config's `model.conv_impl`; see `cost_jax.models.video_ops`), on whatever devices JAX
sees (the batch is sharded over all of them), at the config's clip shape: compile time,
median and spread (10th to 90th percentile) of the forward pass (`train=False`) and of
the training step exactly as `cost_jax.train` runs it (forward, backward, clipping,
weight decay, SGD update, BatchNorm statistics; the clips arrive at the crop size, so the
input resize `cost_jax.bench.data` times is left out), clips/s, GFLOPs per clip (the
model's, as XLA counts the program written with 3-D convolutions: the same for both
implementations and for PyTorch, on every platform; `model_gflops_per_clip`), achieved
TFLOP/s and its share of the device's peak, and memory: the device's peak where the
backend reports it, else XLA's compiled estimate. On a CPU the "peak" is a large float32
matmul timed in the same run.

Timing excludes compilation: each function is compiled first, run `--warmup` times, then
timed `--repeats` times, blocking on its result each time. `--torch` also times the
PyTorch reference networks of `cost_jax.bench.torch_models` (ResNet-50 family, needs
torch), each in a process of its own (`cost_jax.bench.torch_process`). A variant's
implementations and its PyTorch network are timed in turns, one call of each per round,
so that their ratios hold while a shared machine's speed drifts. `--find_max_batch` adds
the largest batch whose training step fits in device memory (doubling from `--batch`;
with `--remat` it shows what rematerialisation buys). Results go to stdout as a table
and to `--json`, which is rewritten after every variant: a run cut short keeps the rows
it finished, and its `missing` lists the variants it did not reach.
"""

import dataclasses
import functools
import json
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from etils import epath
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cost_jax import cli, models, optim, steps, summary
from cost_jax.models import video_ops

# The networks `cost_jax.bench.torch_models` has (it imports torch; only its process does).
TORCH_VARIANTS = ("c2d", "c3d", "c3d_full", "costa", "costb")

# Dense bfloat16 peak TFLOP/s per chip (vendor figures); float32 uses the same table only
# for TPUs, where XLA runs float32 matmuls through bfloat16 passes by default.
PEAK_TFLOPS = {
    "TPU v2": 45.0, "TPU v3": 123.0, "TPU v4": 275.0, "TPU v5 lite": 197.0,
    "TPU v5e": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0, "TPU v6 lite": 918.0,
    "TPU v6e": 918.0, "NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100": 989.0,
    "NVIDIA H200": 989.0, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100": 312.0, "NVIDIA L4": 121.0, "NVIDIA A10G": 125.0, "Tesla V100": 125.0,
}


@dataclasses.dataclass
class Timing:
  median_s: float
  p10_s: float
  p90_s: float

  def as_dict(self):
    return dataclasses.asdict(self)


def time_fn(fn: Callable[[], object], sync: Callable[[object], object], warmup: int,
            repeats: int) -> Timing:
  """Median and 10th/90th percentiles of `sync(fn())` wall time, after `warmup` calls."""
  return time_interleaved({"fn": (fn, sync)}, warmup, repeats)["fn"]


def time_interleaved(runs: dict[str, tuple[Callable[[], object], Callable[[object], object]]],
                     warmup: int, repeats: int) -> dict[str, Timing]:
  """`time_fn` of several `(fn, sync)` at once, taking turns: each round calls every one
  once, so that they share the machine's state (a neighbour's load on a shared host,
  clock speed) and their ratios hold even when that state drifts during the run."""
  for _ in range(warmup):
    for fn, sync in runs.values():
      sync(fn())
  times = {name: [] for name in runs}
  for _ in range(repeats):
    for name, (fn, sync) in runs.items():
      start = time.perf_counter()
      sync(fn())
      times[name].append(time.perf_counter() - start)
  return {name: Timing(float(np.median(t)), float(np.percentile(t, 10)),
                       float(np.percentile(t, 90))) for name, t in times.items()}


@dataclasses.dataclass
class Contender:
  """One network ready to time: its compiled forward pass and train step (each a call
  with no arguments), how to wait for their results, and what was measured while
  preparing them (compile times, GFLOPs, memory, versions)."""
  forward: Callable[[], object]
  train: Callable[[], object]
  sync: Callable[[object], object]
  facts: dict
  # What to add to the facts once `forward` or `train` has been timed (device memory).
  after: Callable[[str], dict] = lambda what: {}
  release: Callable[[], None] = lambda: None  # frees what it holds (a process)


def measure(contenders: dict[str, Contender], warmup: int, repeats: int) -> dict[str, dict]:
  """Times the forward passes of all `contenders` in turns, then their train steps;
  returns each one's facts with its `forward` and `train` timings."""
  out = {name: dict(c.facts) for name, c in contenders.items()}
  for what in ("forward", "train"):
    timings = time_interleaved({name: (getattr(c, what), c.sync)
                                for name, c in contenders.items()}, warmup, repeats)
    for name, timing in timings.items():
      out[name][what] = timing.as_dict()
      out[name].update(contenders[name].after(what))
  return out


def device_peak_tflops(device, dtype: str) -> tuple[float | None, str]:
  """(peak TFLOP/s of one device, where the figure comes from)."""
  kind = device.device_kind
  if device.platform == "cpu":
    return measure_matmul_tflops(dtype), "measured: 4096x4096 matmul in this run"
  if device.platform == "gpu" and dtype == "float32":
    return None, f"no float32 peak listed for {kind}"
  for name in sorted(PEAK_TFLOPS, key=len, reverse=True):
    if kind.startswith(name) or name in kind:
      return PEAK_TFLOPS[name], f"table: {name} dense bfloat16"
  return None, f"no peak listed for {kind}"


def measure_matmul_tflops(dtype: str, n: int = 4096) -> float:
  a = jnp.ones((n, n), dtype)
  matmul = jax.jit(lambda a: a @ a)
  timing = time_fn(lambda: matmul(a), jax.block_until_ready, 1, 5)
  return 2 * n ** 3 / timing.median_s / 1e12


def _memory(compiled) -> dict:
  """Peak device memory if the backend reports it, and XLA's compiled estimate."""
  out = {}
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
  try:
    m = compiled.memory_analysis()
    out["compiled_bytes"] = int(m.argument_size_in_bytes + m.output_size_in_bytes
                                + m.temp_size_in_bytes - m.alias_size_in_bytes)
  except (AttributeError, NotImplementedError, TypeError):
    pass
  return out


def model_gflops_per_clip(model, tx, schedule, config, state, inputs) -> dict:
  """GFLOPs per clip of the forward pass and of the train step as written with 3-D
  convolutions (`summary.program_flops`): the model's FLOPs, the same for every
  implementation and framework, so that TFLOP/s and the share of the peak compare them."""
  model, i = model.clone(conv_impl="3d"), config.input
  batch = inputs["label"].shape[0]
  forward = functools.partial(steps.predict_step, model=model, input_config=i)
  train = functools.partial(steps.train_step, model=model, tx=tx, schedule=schedule,
                            seed=0, input_config=i)
  counts = {"forward": summary.program_flops(forward, state.params, state.batch_stats,
                                             inputs["video"]),
            "train": summary.program_flops(train, state, inputs)}
  return {f"{what}_gflops_per_clip": flops / batch / 1e9
          for what, flops in counts.items() if flops}


def _jit_train_step(model, tx, schedule, config, state, replicated, data):
  """The training step exactly as `cost_jax.train` compiles it."""
  return steps.jit_train_step(model, tx, schedule, 0, config.input, state, replicated,
                              data)


def _no_stop(data) -> jax.Array:
  return jax.device_put(np.zeros(jax.device_count(), np.int32), data)


def _setup(config, batch: int):
  """(model, data sharding, replicated sharding, schedule, optimiser) on all devices."""
  model = models.create_model(config.model)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  schedule = optim.learning_rate_schedule(config.optimizer, batch, 100, 100)
  return (model, NamedSharding(mesh, P("data")), NamedSharding(mesh, P()), schedule,
          optim.create_optimizer(config.optimizer, schedule))


def largest_batch(config, start: int, limit: int = 4096) -> tuple[int | None, str]:
  """The largest power-of-two multiple of `start` whose train step XLA can fit in device
  memory (from the compiled memory estimate; nothing is run), with a note."""
  capacity = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
  if not capacity:
    return None, "the backend reports no memory limit (CPU)"
  model, data, replicated, schedule, tx = _setup(config, start)
  state = jax.eval_shape(functools.partial(steps.fresh_state, model, tx, config),
                         jax.random.key(0))
  best, batch = None, start
  while batch <= limit:
    inputs = {"video": jax.ShapeDtypeStruct(summary.clip_shape(config, batch), jnp.uint8),
              "label": jax.ShapeDtypeStruct((batch,), jnp.int32)}
    stop = jax.ShapeDtypeStruct((jax.device_count(),), jnp.int32)
    compiled = _jit_train_step(model, tx, schedule, config, state, replicated,
                               data).lower(state, inputs, stop).compile()
    need = _memory(compiled).get("compiled_bytes")
    if need is None or need > 0.95 * capacity:
      break
    best, batch = batch, batch * 2
  return best, f"compiled estimate against {capacity / 2**30:.1f} GiB per device"


def setup_step(config: ml_collections.ConfigDict, batch: int):
  """What a timed train step needs: (model, data sharding, replicated sharding, schedule,
  optimiser, a fresh state, a batch of random uint8 clips and labels), on all devices."""
  model, data, replicated, schedule, tx = _setup(config, batch)
  state = jax.jit(functools.partial(steps.fresh_state, model, tx, config),
                  out_shardings=replicated)(jax.random.key(0))
  rng = np.random.default_rng(0)
  inputs = {"video": jax.device_put(
      rng.integers(0, 256, summary.clip_shape(config, batch), dtype=np.uint8), data),
            "label": jax.device_put(rng.integers(0, model.num_classes, (batch,)), data)}
  return model, data, replicated, schedule, tx, state, inputs


def prepare_jax(config: ml_collections.ConfigDict, batch: int,
                gflops: dict | None = None) -> Contender:
  """Compiles the forward pass and the train step of `config.model` at `batch`; `gflops`,
  the `model_gflops_per_clip` of the same network if already counted (it is the same for
  every implementation)."""
  i = config.input
  model, data, replicated, schedule, tx, state, inputs = setup_step(config, batch)
  video = inputs["video"]
  facts = dict(gflops if gflops is not None else
               model_gflops_per_clip(model, tx, schedule, config, state, inputs))

  def forward(params, batch_stats, video):
    return steps.predict_step(params, batch_stats, video, model=model, input_config=i)

  start = time.perf_counter()
  fwd = jax.jit(forward, in_shardings=(replicated, replicated, data)).lower(
      state.params, state.batch_stats, video).compile()
  facts["forward_compile_s"] = time.perf_counter() - start

  start = time.perf_counter()
  stop = _no_stop(data)
  compiled = _jit_train_step(model, tx, schedule, config, state, replicated, data).lower(
      state, inputs, stop).compile()
  facts["train_compile_s"] = time.perf_counter() - start
  holder = [state]

  def run_step():
    holder[0], metrics, _ = compiled(holder[0], inputs, stop)
    return metrics["loss"]

  # The device's peak memory once each has run (where the backend reports it).
  after = lambda what: {f"{what}_memory": _memory(fwd if what == "forward" else compiled)}
  return Contender(lambda: fwd(state.params, state.batch_stats, video), run_step,
                   jax.block_until_ready, facts, after)


def benchmark_jax(config: ml_collections.ConfigDict, batch: int, warmup: int,
                  repeats: int) -> dict:
  """Compile, then time the forward pass and the train step of `config.model`."""
  return measure({"jax": prepare_jax(config, batch)}, warmup, repeats)["jax"]


def summarise(name: str, framework: str, r: dict, batch: int, peak: float | None,
              num_devices: int, conv_impl: str | None = None) -> dict:
  """Derived figures: clips/s and TFLOP/s (per device share of the peak); JAX rows carry
  the convolution implementation that ran (`conv_impl`, '3d' or '2d')."""
  row = {"name": name, "framework": framework, "batch": batch, **r}
  if conv_impl:
    row["conv_impl"] = conv_impl
  for what in ("forward", "train"):
    t = r[what]["median_s"]
    row[f"{what}_clips_per_s"] = batch / t
    gflops = r.get(f"{what}_gflops_per_clip")
    if gflops:
      tflops = gflops * batch / t / 1e3
      row[f"{what}_tflops"] = tflops
      if peak:
        row[f"{what}_peak_fraction"] = tflops / (peak * num_devices)
  return row


def row_label(r: dict) -> str:
  """'jax c2d (2d)', 'torch c2d'."""
  impl = f" ({r['conv_impl']})" if r.get("conv_impl") else ""
  return f"{r['framework']} {r['name']}{impl}"


def format_table(rows: list[dict]) -> str:
  head = (f"{'model':22s}{'batch':>6s}{'fwd ms':>10s}{'fwd clips/s':>12s}{'step ms':>10s}"
          f"{'(p10-p90)':>16s}{'step clips/s':>13s}{'GFLOPs/clip':>12s}{'TFLOP/s':>9s}"
          f"{'% peak':>8s}{'memory MiB':>11s}{'compile s':>10s}")
  lines = [head]
  for r in rows:
    t = r["train"]
    memory = r.get("train_memory", {})
    mib = memory.get("device_peak_bytes", memory.get("compiled_bytes"))
    frac = r.get("train_peak_fraction")
    gflops = r.get("train_gflops_per_clip")
    spread = f"({t['p10_s'] * 1e3:.0f}-{t['p90_s'] * 1e3:.0f})"
    gflops = f"{gflops:.2f}" if gflops else "-"
    tflops = f"{r['train_tflops']:.3f}" if "train_tflops" in r else "-"
    frac = f"{100 * frac:.1f}" if frac else "-"
    mib = f"{mib / 2**20:.0f}" if mib else "-"
    compile_s = r.get("forward_compile_s", 0) + r.get("train_compile_s", 0)
    lines.append(f"{row_label(r):22s}{r['batch']:>6d}{r['forward']['median_s'] * 1e3:>10.1f}"
                 f"{r['forward_clips_per_s']:>12.1f}{t['median_s'] * 1e3:>10.1f}"
                 f"{spread:>16s}{r['train_clips_per_s']:>13.1f}{gflops:>12s}{tflops:>9s}"
                 f"{frac:>8s}{mib:>11s}{compile_s:>10.1f}")
  return "\n".join(lines)


def ratios(rows: list[dict]) -> dict:
  """The ratios docs/performance.md quotes, from the rows of one run: step times of the variants
  (per implementation), "2d" against "3d", and JAX against PyTorch (clips/s)."""
  jax_rows = {(r["conv_impl"], r["name"]): r for r in rows if r["framework"] == "jax"}
  torch_rows = {r["name"]: r for r in rows if r["framework"] == "torch"}
  step = lambda r: r["train"]["median_s"]
  out = {}
  for impl in dict.fromkeys(i for i, _ in jax_rows):
    for a, b in (("costa", "c3d_full"), ("costb", "costa"), ("costa", "c2d"),
                 ("c3d", "c2d")):
      if (impl, a) in jax_rows and (impl, b) in jax_rows:
        out[f"train_step_time {a}/{b} ({impl})"] = (step(jax_rows[impl, a])
                                                    / step(jax_rows[impl, b]))
  for (impl, name), r in jax_rows.items():
    if impl == "2d" and ("3d", name) in jax_rows:
      out[f"train_step_time {name} 2d/3d"] = step(r) / step(jax_rows["3d", name])
  for (impl, name), r in jax_rows.items():
    if name in torch_rows:
      for what in ("train", "forward"):
        out[f"{what} clips/s jax ({impl})/torch {name}"] = (
            r[f"{what}_clips_per_s"] / torch_rows[name][f"{what}_clips_per_s"])
  return out


def run(config, variants, batch: int, warmup: int = 2, repeats: int = 10,
        with_torch: bool = False, json_path: str | None = None,
        find_max_batch: bool = False, torch_compile: bool = False,
        conv_impls=None) -> dict:
  """Benchmarks every variant with every convolution implementation of `conv_impls`
  (default: the config's `model.conv_impl`, resolved for this platform); returns (and
  optionally writes) the JSON report."""
  device = jax.devices()[0]
  peak, peak_source = device_peak_tflops(device, config.model.dtype)
  impls = [video_ops.resolve(i, device.platform)
           for i in (conv_impls or [config.model.get("conv_impl", "auto")])]
  rows = []
  for variant in variants:
    # Every implementation of the variant and its PyTorch network, timed in turns.
    contenders, configs, jax_rows = {}, {}, {}
    gflops = None  # counted once per variant: the same for every implementation
    for impl in dict.fromkeys(impls):
      c = configs[impl] = ml_collections.ConfigDict(config.to_dict())
      c.model.variant, c.model.conv_impl = variant, impl
      logging.info("compiling jax %s (%s), batch %d", variant, impl, batch)
      contenders[impl] = prepare_jax(c, batch, gflops)
      gflops = {k: v for k, v in contenders[impl].facts.items()
                if k.endswith("_gflops_per_clip")}
    if with_torch and variant in TORCH_VARIANTS:
      from cost_jax.bench import torch_process
      contenders["torch"] = torch_process.TorchProcess(config, variant, batch,
                                                        torch_compile).contender()
    logging.info("timing %s in turns: %s", variant, ", ".join(contenders))
    for name, r in measure(contenders, warmup, repeats).items():
      if name == "torch":
        rows.append(summarise(variant, "torch", r, batch, None, 1))
      else:
        rows.append(summarise(variant, "jax", r, batch, peak, jax.device_count(), name))
        jax_rows[name] = rows[-1]
      print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    for contender in contenders.values():
      contender.release()
    del contenders
    if find_max_batch:
      for impl, row in jax_rows.items():
        row["largest_batch"], row["largest_batch_note"] = largest_batch(configs[impl], batch)
    if json_path:  # after every variant: a run cut short keeps what it measured
      epath.Path(json_path).write_text(json.dumps(
          _report(config, device, batch, peak, peak_source, rows, variants), indent=1))
  report = _report(config, device, batch, peak, peak_source, rows, variants)
  print(f"\ndevice: {report['device']} x{report['num_devices']}, {report['dtype']}, clip "
        f"{'x'.join(map(str, report['clip']))}, batch {batch}, peak "
        f"{peak if peak is None else round(peak, 3)} TFLOP/s ({peak_source})")
  print(format_table(rows))
  for k, v in report["ratios"].items():
    print(f"{k}: {v:.2f}")
  for r in rows:
    if "largest_batch" in r:
      print(f"largest batch that fits, {row_label(r)}: {r['largest_batch']} "
            f"({r['largest_batch_note']})")
  if json_path:
    epath.Path(json_path).write_text(json.dumps(report, indent=1))
    print(f"-> {json_path}")
  return report


def _report(config, device, batch, peak, peak_source, rows, variants) -> dict:
  """The JSON report of `rows`; `missing` lists the `variants` not timed yet (a run cut
  short by a time limit keeps its report of those it timed)."""
  i = config.input
  torch_row = next((r for r in rows if r["framework"] == "torch"), {})
  done = {r["name"] for r in rows}
  return {"device": device.device_kind, "platform": device.platform,
          "num_devices": jax.device_count(), "jax_version": jax.__version__,
          "torch_version": torch_row.get("torch_version"),
          "torch_compile": torch_row.get("torch_compile"),
          "dtype": config.model.dtype, "clip": [i.num_frames, i.crop_size, i.crop_size],
          "batch": batch, "peak_tflops_per_device": peak, "peak_source": peak_source,
          "remat": bool(config.model.get("remat", False)), "rows": rows,
          "ratios": ratios(rows), "missing": [v for v in variants if v not in done]}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  config = f.config
  if f.dtype:
    config.model.dtype = f.dtype
  if f.clip:
    frames, size = (int(s) for s in f.clip.split(","))
    config.input.num_frames, config.input.crop_size = frames, size
  if f.remat:
    config.model.remat = True
  variants = f.variants.split(",") if f.variants else [config.model.variant]
  unknown = [v for v in variants if v not in models.VARIANTS]
  if unknown:
    raise app.UsageError(f"--variants: unknown {unknown}; choose from "
                         f"{', '.join(models.VARIANTS)}")
  batch = f.batch or config.batch_size
  if batch % jax.device_count():
    raise app.UsageError(f"--batch={batch} must be a multiple of the "
                         f"{jax.device_count()} devices")
  impls = f.conv_impl.split(",") if f.conv_impl else None
  bad = [i for i in impls or () if i not in video_ops.IMPLS]
  if bad:
    raise app.UsageError(f"--conv_impl: unknown {bad}; choose from "
                         f"{', '.join(video_ops.IMPLS)}")
  run(config, variants, batch, f.warmup, f.repeats, f.torch, f.json, f.find_max_batch,
      f.torch_compile, impls)


if __name__ == "__main__":
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", None, "Experiment config (model and input).")
  flags.DEFINE_string("variants", None, "Comma-separated variants (default: the config's).")
  flags.DEFINE_string("conv_impl", None, "Comma-separated convolution implementations, "
                      "e.g. 3d,2d (default: the config's model.conv_impl).")
  flags.DEFINE_integer("batch", None, "Global batch (default: config.batch_size).")
  flags.DEFINE_string("dtype", None, "Compute dtype, float32 or bfloat16 (default: the "
                      "config's).")
  flags.DEFINE_string("clip", None, "FRAMES,SIZE, overriding config.input.")
  flags.DEFINE_bool("remat", False, "Rematerialise each block in the backward pass.")
  flags.DEFINE_bool("torch", False, "Also time the PyTorch reference networks "
                    "(cost_jax.bench.torch_models; needs torch).")
  flags.DEFINE_bool("torch_compile", False, "With --torch: run the PyTorch networks "
                    "through torch.compile.")
  flags.DEFINE_integer("warmup", 2, "Untimed runs after compilation.")
  flags.DEFINE_integer("repeats", 10, "Timed runs.")
  flags.DEFINE_string("json", None, "Where to write the JSON report.")
  flags.DEFINE_bool("find_max_batch", False, "Also report the largest batch (doubling from "
                    "--batch) whose train step fits in device memory (GPU, TPU).")
  flags.mark_flags_as_required(["config"])
  cli.run(main)
