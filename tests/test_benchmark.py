"""The model benchmark runs end to end and writes its report (no timing is asserted)."""

import json
import os
import sys

import pytest

from configs import demo
from cost_jax import benchmark

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))


def _tiny_config():
  config = demo.get_config()
  config.model.width = 8
  config.input.num_frames, config.input.crop_size = 4, 16
  return config


def test_benchmark_writes_its_json_report(tmp_path, monkeypatch):
  measure = benchmark.measure_matmul_tflops
  monkeypatch.setattr(benchmark, "measure_matmul_tflops", lambda d: measure(d, n=256))
  path = tmp_path / "bench.json"
  report = benchmark.run(_tiny_config(), ["costa", "costb"], batch=8, warmup=0, repeats=2,
                         json_path=str(path))
  assert json.loads(path.read_text()) == json.loads(json.dumps(report))
  assert report["num_devices"] == 8 and report["clip"] == [4, 16, 16]
  assert report["peak_tflops_per_device"] > 0  # the CPU peak is measured in the run
  assert [r["name"] for r in report["rows"]] == ["costa", "costb"]
  for row in report["rows"]:
    for what in ("forward", "train"):
      t = row[what]
      assert 0 < t["p10_s"] <= t["median_s"] <= t["p90_s"]
      assert row[f"{what}_clips_per_s"] == pytest.approx(8 / t["median_s"])
      assert row[f"{what}_gflops_per_clip"] > 0 and row[f"{what}_compile_s"] > 0
    # A training step does more work than inference.
    assert row["train_gflops_per_clip"] > 2 * row["forward_gflops_per_clip"]
    assert row["train_memory"]["compiled_bytes"] > 0
  costa, costb = (r["train"]["median_s"] for r in report["rows"])
  assert report["ratios"] == {"train_step_time costb/costa": pytest.approx(costb / costa)}


def test_time_fn_blocks_and_orders_percentiles():
  calls = []
  timing = benchmark.time_fn(lambda: calls.append(1), lambda _: calls.append(2), 1, 3)
  assert calls == [1, 2] * 4
  assert timing.p10_s <= timing.median_s <= timing.p90_s


def test_torch_reference_has_the_papers_parameter_counts():
  pytest.importorskip("torch")
  import torch_models
  counts = {v: sum(p.numel() for p in torch_models.ResNet50(v).parameters())
            for v in ("c2d", "c3d", "costa", "costb")}
  assert counts == {"c2d": 24327632, "c3d": 29013456, "costa": 24333968,
                    "costb": 25085464}
  # The harness runs it end to end (a thin network, tiny clips).
  result = torch_models.benchmark(_tiny_config(), "costb", 2, 0, 2, benchmark.time_fn)
  assert 0 < result["train"]["median_s"] and 0 < result["forward"]["median_s"]


def test_largest_batch_search_stops_at_the_memory_limit(monkeypatch):
  class Device:
    def __init__(self, limit):
      self.limit = limit

    def memory_stats(self):
      return {"bytes_limit": self.limit} if self.limit else None

  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(None)])
  assert benchmark.largest_batch(_tiny_config(), 8)[0] is None  # a CPU reports no limit
  needs, measure = [], benchmark._memory
  monkeypatch.setattr(benchmark, "_memory",
                      lambda c: needs.append(measure(c)["compiled_bytes"]) or measure(c))
  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(2**40)])
  assert benchmark.largest_batch(_tiny_config(), 8, limit=16)[0] == 16
  assert needs[1] > needs[0] > 0                      # batch 16 needs more than batch 8
  limit = (needs[0] + needs[1]) / 2 / 0.95            # fits batch 8, not batch 16
  monkeypatch.setattr(benchmark.jax, "local_devices", lambda: [Device(limit)])
  assert benchmark.largest_batch(_tiny_config(), 8, limit=64)[0] == 8


def test_benchmark_imports_without_the_tf_data_stack():
  """The model benchmark must run on accelerator hosts that have JAX but no TensorFlow."""
  import subprocess
  code = ("import sys\n"
          "for m in ('tensorflow', 'tensorflow_datasets', 'clu', 'av'): sys.modules[m] = None\n"
          "import cost_jax.benchmark, cost_jax.steps")
  root = os.path.dirname(os.path.dirname(__file__))
  result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stderr[-2000:]
