"""The PyTorch reference networks (`torch_models`) in a process of their own, timed in
turns with JAX by `cost_jax.bench.model`.

A process of its own is how PyTorch's users run it, and keeps the two frameworks from
sharing one heap and one set of threads. That process imports torch and `torch_models.py`
only; it gets this process's glibc malloc settings (`runtime.malloc_environ`), so that
both sides reuse the memory they free in the same way.
"""

import json
import os
import pathlib
import subprocess
import sys

from cost_jax import runtime
from cost_jax.bench.model import Contender

SCRIPT = pathlib.Path(__file__).with_name("torch_models.py")


def config_spec(config) -> dict:
  """The fields of an experiment config that `torch_models.prepare` reads, as JSON."""
  i, m, o = config.input, config.model, config.optimizer
  return {"input": {"num_frames": i.num_frames, "crop_size": i.crop_size,
                    "mean": list(i.mean), "std": list(i.std)},
          "model": {"num_classes": m.num_classes, "width": m.width,
                    "dropout_rate": m.dropout_rate, "dtype": m.dtype},
          "optimizer": {"base_lr": o.base_lr, "momentum": o.momentum,
                        "weight_decay": o.weight_decay, "grad_clip_norm": o.grad_clip_norm}}


class TorchProcess:
  """`python torch_models.py --serve` for one network; `contender()` times it."""

  def __init__(self, config, variant: str, batch: int, compile_model: bool = False):
    self.variant = variant
    self.proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--serve"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, env={**os.environ, **runtime.malloc_environ()})
    self._send(json.dumps({"config": config_spec(config), "variant": variant,
                           "batch": batch, "compile": compile_model}))
    self.facts = self._answer("preparing")["facts"]

  def _send(self, line: str):
    self.proc.stdin.write(line + "\n")
    self.proc.stdin.flush()

  def _answer(self, what: str) -> dict:
    for line in self.proc.stdout:
      if line.startswith("{"):
        message = json.loads(line)
        if "error" in message:
          self.close()
          raise RuntimeError(f"PyTorch {self.variant}: {what} failed:\n{message['error']}")
        return message
    code = self.proc.wait()
    raise RuntimeError(f"PyTorch {self.variant}: its process ended (exit code {code}) while "
                       f"{what}; its error is printed above (no torch? pip install "
                       f"torch==2.13.0)")

  def call(self, command: str):
    self._send(command)
    self._answer(f"running {command}")

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.close()
      self.proc.wait()

  def contender(self) -> Contender:
    return Contender(lambda: self.call("forward"), lambda: self.call("train"),
                     lambda _: None, dict(self.facts), release=self.close)
