"""The model benchmark runs end to end and writes its report (no timing is asserted)."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import demo
from cost_jax import summary
from cost_jax.bench import model as benchmark


def _tiny_config():
  config = demo.get_config()
  config.model.width = 8
  config.input.num_frames, config.input.crop_size = 4, 16
  return config


def test_benchmark_writes_its_json_report(tmp_path, monkeypatch):
  measure = benchmark.measure_matmul_tflops
  monkeypatch.setattr(benchmark, "measure_matmul_tflops", lambda d: measure(d, n=256))
  path = tmp_path / "bench.json"
  config = _tiny_config()
  report = benchmark.run(config, ["costa", "costb"], batch=8, warmup=0, repeats=2,
                         json_path=str(path), conv_impls=["auto"])
  assert json.loads(path.read_text()) == json.loads(json.dumps(report))
  assert report["num_devices"] == 8 and report["clip"] == [4, 16, 16]
  assert report["peak_tflops_per_device"] > 0  # the CPU peak is measured in the run
  assert [r["name"] for r in report["rows"]] == ["costa", "costb"]
  assert [r["conv_impl"] for r in report["rows"]] == ["2d", "2d"]  # 'auto' on a CPU
  for row in report["rows"]:
    for what in ("forward", "train"):
      t = row[what]
      assert 0 < t["p10_s"] <= t["median_s"] <= t["p90_s"]
      assert row[f"{what}_clips_per_s"] == pytest.approx(8 / t["median_s"])
      assert row[f"{what}_gflops_per_clip"] > 0 and row[f"{what}_compile_s"] > 0
    # The model's FLOPs, as `cost_jax.summary` counts them; a train step does about
    # three times a forward pass's work (the input and the kernel gradients).
    config.model.variant = row["name"]
    model_gflops = summary.summarize(config, batch=8)["flops"] / 1e9
    assert row["forward_gflops_per_clip"] == pytest.approx(model_gflops, rel=0.02)
    assert 2.5 < row["train_gflops_per_clip"] / row["forward_gflops_per_clip"] < 3.5
    assert row["train_memory"]["compiled_bytes"] > 0
  costa, costb = (r["train"]["median_s"] for r in report["rows"])
  assert report["ratios"] == {"train_step_time costb/costa (2d)": pytest.approx(costb / costa)}


def test_a_run_cut_short_keeps_what_it_measured(tmp_path, monkeypatch):
  # The report is written after every variant: a variant that fails (here: one that does
  # not exist) or a time limit leaves the ones before it on disk, the rest listed.
  from cost_jax.bench import report as bench_report
  measure = benchmark.measure_matmul_tflops
  monkeypatch.setattr(benchmark, "measure_matmul_tflops", lambda d: measure(d, n=256))
  path = tmp_path / "bench.json"
  config = _tiny_config()
  config.model.width = 4
  with pytest.raises(ValueError, match="no_such_variant"):
    benchmark.run(config, ["c2d", "no_such_variant"], batch=8, warmup=0, repeats=1,
                  json_path=str(path), conv_impls=["2d"])
  report = json.loads(path.read_text())
  assert [r["name"] for r in report["rows"]] == ["c2d"]
  assert report["missing"] == ["no_such_variant"]
  assert "Partial run: not timed no_such_variant." in bench_report.to_markdown(report)


def test_ratios_compare_implementations_and_frameworks():
  rows = [benchmark.summarise("c2d", "jax", _timed(300, 100), 8, None, 1, "3d"),
          benchmark.summarise("c2d", "jax", _timed(100, 50), 8, None, 1, "2d"),
          benchmark.summarise("c2d", "torch", _timed(200, 80), 8, None, 1)]
  assert [benchmark.row_label(r) for r in rows] == ["jax c2d (3d)", "jax c2d (2d)",
                                                    "torch c2d"]
  assert benchmark.ratios(rows) == {
      "train_step_time c2d 2d/3d": pytest.approx(1 / 3),
      "train clips/s jax (3d)/torch c2d": pytest.approx(2 / 3),
      "forward clips/s jax (3d)/torch c2d": pytest.approx(0.8),
      "train clips/s jax (2d)/torch c2d": pytest.approx(2.0),
      "forward clips/s jax (2d)/torch c2d": pytest.approx(1.6)}


def _timed(train_ms, forward_ms):
  t = lambda ms: {"median_s": ms / 1e3, "p10_s": ms / 1e3, "p90_s": ms / 1e3}
  return {"train": t(train_ms), "forward": t(forward_ms)}


def test_time_fn_blocks_and_orders_percentiles():
  calls = []
  timing = benchmark.time_fn(lambda: calls.append(1), lambda _: calls.append(2), 1, 3)
  assert calls == [1, 2] * 4
  assert timing.p10_s <= timing.median_s <= timing.p90_s


def test_contenders_are_timed_in_turns():
  calls = []
  runs = {name: (lambda name=name: calls.append(name), lambda _: None) for name in "ab"}
  timings = benchmark.time_interleaved(runs, 1, 3)
  assert calls == ["a", "b"] * 4                      # one warm-up round, three timed
  assert set(timings) == {"a", "b"}
  assert all(t.p10_s <= t.median_s <= t.p90_s for t in timings.values())


def test_torch_reference_has_the_papers_parameter_counts():
  torch = pytest.importorskip("torch")
  from cost_jax.bench import torch_models
  counts = {v: sum(p.numel() for p in torch_models.ResNet50(v).parameters())
            for v in ("c2d", "c3d", "costa", "costb")}
  assert counts == {"c2d": 24327632, "c3d": 29013456, "costa": 24333968,
                    "costb": 25085464}
  assert benchmark.TORCH_VARIANTS == torch_models.VARIANTS
  # The harness runs it end to end in its own process (a thin network, tiny clips), with
  # this process's malloc settings.
  from cost_jax.bench import torch_process
  process = torch_process.TorchProcess(_tiny_config(), "costb", 2)
  environ = open(f"/proc/{process.proc.pid}/environ", "rb").read().split(b"\0")
  assert b"MALLOC_MMAP_MAX_=0" in environ
  result = benchmark.measure({"torch": process.contender()}, 0, 2)["torch"]
  assert 0 < result["train"]["median_s"] and 0 < result["forward"]["median_s"]
  assert result["torch_version"] == torch.__version__ and result["train_compile_s"] > 0
  # A failure in that process is raised here with its traceback, and ends the process.
  with pytest.raises(RuntimeError, match="running predict failed:(.|\n)*KeyError"):
    process.call("predict")
  assert process.proc.returncode == 0


def test_largest_batch_search_stops_at_the_memory_limit(monkeypatch):
  class Device:
    def __init__(self, limit):
      self.limit = limit

    def memory_stats(self):
      return {"bytes_limit": self.limit} if self.limit else None

  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(None)])
  config = _tiny_config()
  config.model.variant = "c2d"  # the search, not the network, is under test
  assert benchmark.largest_batch(config, 8)[0] is None  # a CPU reports no limit
  needs, measure = [], benchmark._memory
  monkeypatch.setattr(benchmark, "_memory",
                      lambda c: needs.append(measure(c)["compiled_bytes"]) or measure(c))
  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(2**40)])
  assert benchmark.largest_batch(config, 8, limit=16)[0] == 16
  assert needs[1] > needs[0] > 0                      # batch 16 needs more than batch 8
  limit = (needs[0] + needs[1]) / 2 / 0.95            # fits batch 8, not batch 16
  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(limit)])
  assert benchmark.largest_batch(config, 8, limit=64)[0] == 8


def test_benchmark_imports_without_the_tf_data_stack():
  """The model benchmark must run on accelerator hosts that have JAX but no TensorFlow."""
  import subprocess
  code = ("import sys\n"
          "for m in ('tensorflow', 'tensorflow_datasets', 'clu', 'av'): sys.modules[m] = None\n"
          "import cost_jax.bench.model, cost_jax.steps")
  root = os.path.dirname(os.path.dirname(__file__))
  result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stderr[-2000:]


def _row(framework, name, step_ms, gflops=None, conv_impl="3d"):
  t = {"median_s": step_ms / 1e3, "p10_s": step_ms / 1e3 * 0.9, "p90_s": step_ms / 1e3 * 1.1}
  row = {"framework": framework, "name": name, "batch": 32, "train": t,
         "forward_clips_per_s": 100.0, "train_clips_per_s": 32 / t["median_s"],
         "train_memory": {"device_peak_bytes": 3 * 2**30}}
  if gflops:
    row["train_gflops_per_clip"] = gflops
  if framework == "jax":
    row["conv_impl"] = conv_impl
  return row


def test_report_computes_mfu_and_checks_the_targets():
  from cost_jax.bench import report as bench_report
  rows = [_row("jax", "c2d", 100, 100.0), _row("jax", "c3d_full", 200, 300.0),
          _row("jax", "costa", 220, 300.0), _row("jax", "costb", 330, 310.0),
          _row("torch", "c2d", 150), _row("torch", "costa", 250),
          _row("jax", "c3d_full", 400, 300.0, "2d")]  # slower: the targets use 3d
  report = {"device": "NVIDIA H100 80GB HBM3", "platform": "gpu", "num_devices": 1,
            "jax_version": "0.11.2", "torch_version": "2.11.0", "torch_compile": True,
            "dtype": "bfloat16", "clip": [8, 224, 224], "batch": 32,
            "peak_tflops_per_device": 989.0, "peak_source": "table", "rows": rows}
  # c3d_full: 300 GFLOPs x 160 clips/s = 48 TFLOP/s of 989.
  assert bench_report.mfu(report, rows[1]) == pytest.approx(300 * 160 / 1e3 / 989)
  # A PyTorch row takes the FLOPs of the JAX row of the same network.
  assert bench_report.mfu(report, rows[4]) == pytest.approx(100 * 32 / 0.15 / 1e3 / 989)
  text = bench_report.to_markdown(report, driver="550.54", date="2026-11-24")
  assert text.startswith("Device: NVIDIA H100 80GB HBM3 x1 (gpu), driver 550.54, "
                         "2026-11-24\nJAX 0.11.2, PyTorch 2.11.0 with torch.compile\n")
  assert ("| jax | c3d_full | 3d | 100.0 | 200.0 (180.0-220.0) | 160.0 | 300.00 | 4.9% | "
          "3.00 | - | 0.0 |") in text
  assert "| jax | c3d_full | 2d | 100.0 | 400.0 (360.0-440.0) | 80.0 |" in text
  assert "Faster convolution implementation per network (train step): c3d_full 3d." in text
  targets = {line.split(" | ")[0][2:]: line.split(" | ")[2:] for line in text.splitlines()
             if line.startswith("| ") and line.count(" | ") == 3}
  assert targets["JAX / PyTorch train clips/s, c2d"] == ["1.50", "yes |"]
  assert targets["JAX / PyTorch train clips/s, costa"] == ["1.14", "no |"]
  assert targets["JAX / PyTorch train clips/s, costb"] == ["not measured", "- |"]
  assert targets["CoST(a) train step / C3D 3x3x3 train step"] == ["1.10", "yes |"]
  assert targets["CoST(b) train step / CoST(a) train step"] == ["1.50", "no |"]
  assert targets["MFU of the c3d_full train step"] == ["4.9%", "no |"]


def test_gpu_script_prints_its_commands_and_refuses_without_a_gpu(tmp_path):
  import importlib.util
  import subprocess
  root = os.path.dirname(os.path.dirname(__file__))
  script = os.path.join(root, "benchmarks", "gpu.sh")
  env = {**os.environ, "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  dry = subprocess.run([script, str(tmp_path)], env={**env, "DRY_RUN": "1",
                       "VARIANTS": "costa,costb", "BATCH": "64", "EXTRA": "--clip=8,112"},
                       capture_output=True, text=True, check=True).stdout.splitlines()
  # PyTorch eager, then torch.compile, beside JAX; JAX alone with NHWC convolutions;
  # each run with its report.
  assert len(dry) == 6
  for line in dry[0], dry[2], dry[4]:
    assert ("-m cost_jax.bench.model --config=configs/kinetics.py --variants=costa,costb "
            "--conv_impl=3d,2d --batch=64 --dtype=bfloat16 --find_max_batch --clip=8,112"
            ) in line
  assert "--torch --torch_compile" in dry[2] and "--torch_compile" not in dry[0]
  assert "--torch" in dry[0] and "--torch" not in dry[4]
  assert dry[4].startswith("XLA_FLAGS=--xla_gpu_force_conv_nhwc ")
  assert "XLA_FLAGS" not in dry[0] + dry[2]
  assert dry[3].endswith(f"-m cost_jax.bench.report {tmp_path}/bench_compiled.json > "
                         f"{tmp_path}/bench_compiled.md")
  # A time limit per run (the report is still made of what a run cut short finished).
  limited = subprocess.run([script, str(tmp_path)], env={**env, "DRY_RUN": "1",
                           "RUN_TIMEOUT": "300"}, capture_output=True, text=True,
                           check=True).stdout.splitlines()
  assert limited[0].startswith("timeout 300 ") and limited[4].startswith(
      "timeout 300 XLA_FLAGS=--xla_gpu_force_conv_nhwc ")
  out = subprocess.run([script, str(tmp_path)], env=env, capture_output=True, text=True)
  assert out.returncode == 2 and not list(tmp_path.iterdir())
  if importlib.util.find_spec("torch") is None:
    assert "missing Python packages: torch" in out.stderr
  else:
    assert "JAX sees no GPU (its devices are 'cpu')" in out.stderr


def test_conv_layers_finds_every_convolution_and_times_both_frameworks():
  from benchmarks import conv_layers
  from cost_jax import models
  config = _tiny_config()
  config.model.variant = "costb"  # Conv modules, and CoST's views run by video_ops.conv
  layers = conv_layers.capture(config, batch=2)
  model = models.create_model(config.model)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 4, 16, 16, 3)))["params"]
  kernels = [x.ndim for p, x in jax.tree_util.tree_leaves_with_path(params)
             if p[-1].key == "kernel" and x.ndim >= 4]
  # Every 5-D (conv) kernel once, every CoST kernel (3, 3, I, O) once per view.
  assert sum(l["count"] for l in layers) == kernels.count(5) + 3 * kernels.count(4) > 10
  assert layers[0]["input"] == (2, 4, 16, 16, 3) and not layers[0]["input_grad"]
  assert all(l["input_grad"] for l in layers[1:])
  pytest.importorskip("torch")
  # The PyTorch process checks that its convolutions give JAX's output shapes.
  torch_side = conv_layers.torch_rounds(layers)
  try:
    theirs = torch_side.ask("round", "timing a round")["times"]
  finally:
    torch_side.close()
  ours = conv_layers.time_round(conv_layers.jax_runs(layers[:2], "2d"))
  assert len(theirs) == len(layers) and all(t > 0 for pair in ours + theirs for t in pair)
  text = conv_layers.table(layers[:2], [ours], [theirs[:2]])
  assert text.splitlines()[-1].startswith("sum over the network")
