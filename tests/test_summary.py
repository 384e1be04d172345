"""The model summary tool, run as a user runs it."""

import os
import re
import subprocess
import sys

import pytest

import processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _summary(*overrides):
  out = subprocess.run(
      [sys.executable, "-m", "cost_jax.summary", "--config=configs/kinetics.py", *overrides],
      cwd=ROOT, capture_output=True, text=True, check=True,
      env=processes.environment()).stdout
  params = int(re.search(r"^params: (\d+)$", out, re.M).group(1))
  gflops = float(re.search(r"^gflops: ([\d.]+)$", out, re.M).group(1))
  return out, params, gflops


@pytest.mark.parametrize("variant,params", [("costb", 25_085_464), ("c3d", 29_013_456)])
def test_summary_prints_the_paper_counts(variant, params):
  out, n, gflops = _summary(f"--config.model.variant={variant}")
  assert n == params
  # ResNet-50 is about 4.1 GMACs per 224x224 image; 8 frames, halved in time after res2.
  assert 30 < gflops < 70
  for stage in ("stem", "res2", "res3", "res4", "res5", "head"):
    assert re.search(rf"^{stage}\s", out, re.M)
  assert "(4, 7, 7, 2048)" in out


def test_summary_r101():
  _, n, gflops = _summary("--config.model.variant=c2d", "--config.model.depth=101")
  assert n == 43_319_760  # torchvision ResNet-101 with a 400-way classifier
  assert 60 < gflops < 110
