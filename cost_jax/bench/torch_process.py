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


class TorchChild:
  """A Python process that answers each line sent to it with one JSON line on its
  stdout (lines not starting with `{` are skipped; `{"error": traceback}` raises), with
  this process's malloc settings. `name` says whose it is in errors."""

  def __init__(self, args: list[str], name: str, cwd: str | None = None):
    self.name = name
    self.proc = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=cwd, env={**os.environ, **runtime.malloc_environ()})

  def ask(self, line: str, what: str) -> dict:
    """Sends `line` and returns the answer; `what` names the work in errors."""
    self.proc.stdin.write(line + "\n")
    self.proc.stdin.flush()
    for answer in self.proc.stdout:
      if answer.startswith("{"):
        message = json.loads(answer)
        if "error" in message:
          self.close()
          raise RuntimeError(f"{self.name}: {what} failed:\n{message['error']}")
        return message
    code = self.proc.wait()
    raise RuntimeError(f"{self.name}: its process ended (exit code {code}) while {what}; "
                       f"its error is printed above (no torch? pip install torch==2.13.0)")

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.close()
      self.proc.wait()


class TorchProcess(TorchChild):
  """`python torch_models.py --serve` for one network; `contender()` times it."""

  def __init__(self, config, variant: str, batch: int, compile_model: bool = False):
    super().__init__([str(SCRIPT), "--serve"], f"PyTorch {variant}")
    self.variant = variant
    self.facts = self.ask(json.dumps({"config": config_spec(config), "variant": variant,
                                      "batch": batch, "compile": compile_model}),
                          "preparing")["facts"]

  def call(self, command: str):
    self.ask(command, f"running {command}")

  def contender(self) -> Contender:
    return Contender(lambda: self.call("forward"), lambda: self.call("train"),
                     lambda _: None, dict(self.facts), release=self.close)
