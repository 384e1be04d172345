"""Runs `python -m cost_jax.*` in real processes: single ones, and two-process JAX jobs
over `jax.distributed` on loopback (one CPU device per process)."""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tests compile far more than they compute: at LLVM's lowest optimisation level XLA
# compiles the tiny networks about 2.4x faster (test_inception3d: 79 s instead of 192 s).
# Code generation in one piece, not split over threads: the two test processes already
# share the 2 cores (S3D-G's gradient: 7.4 to 7.8 s instead of 7.8 to 9.1 s). XLA's older
# element-wise emitters, not its MLIR fusion emitters: the tiny CoST(b) train step compiled
# in 1.6 s instead of 4.8 s, with the same loss (docs/performance.md).
FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_cpu_parallel_codegen_split_count=1 "
                "--xla_cpu_use_fusion_emitters=false")

# A tiny network and tiny clips on `synthetic_motion/tiny`, for the command line.
TINY = ["--config=configs/demo.py", "--config.dataset.name=synthetic_motion/tiny",
        "--config.model.width=8", "--config.input.num_frames=4",
        "--config.input.frame_stride=6", "--config.input.crop_size=24",
        "--config.input.min_resize=24", "--config.input.max_resize=28",
        "--config.input.eval_resize=24", "--config.input.test_crop_size=24",
        "--config.batch_size=8", "--config.eval_batch_size=8",
        "--config.eval_every_steps=0", "--config.optimizer.warmup_epochs=0"]


# One persistent compilation cache for the session, shared by the tests' own process and
# every process they start: the tiny networks and steps compile once per device count.
# Removed when the process that made it exits (26 MB in all over a run of the suite, which
# would otherwise pile up in the temporary folder, three folders a run).
CACHE_DIR = tempfile.mkdtemp(prefix="cost_jax_test_jax_cache_")
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)


def environment(cache_dir=CACHE_DIR, **extra) -> dict:
  """One CPU device per process (not the tests' 8), and a shared compilation cache so
  that later processes skip compiling what earlier ones compiled."""
  env = {**os.environ, "XLA_FLAGS": FAST_COMPILE, "JAX_PLATFORMS": "cpu",
         "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
  for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(key, None)
  if cache_dir:
    env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  env.update(extra)
  return env


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run(module: str, *args, timeout=300, env=None) -> subprocess.CompletedProcess:
  """`python -m module args` to completion, output captured."""
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=env or environment())


class Job:
  """`python -m cost_jax.main ARGS` started as `n` processes of one JAX job."""

  def __init__(self, args, logs, n=2, cache_dir=CACHE_DIR):
    port = free_port()
    self.logs = [f"{logs}.{i}.log" for i in range(n)]
    self.procs = []
    for i in range(n):
      env = environment(cache_dir)
      if n > 1:
        env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(n),
                   JAX_PROCESS_ID=str(i))
      with open(self.logs[i], "w") as log:
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "cost_jax.main", *map(str, args)], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT))

  def log(self, i: int) -> str:
    with open(self.logs[i], errors="replace") as f:
      return f.read()

  def wait_for(self, predicate, timeout=240, poll=0.05):
    """Polls `predicate()` until it is true; fails if every process ended first."""
    deadline = time.time() + timeout
    while not predicate():
      if all(p.poll() is not None for p in self.procs) or time.time() > deadline:
        raise AssertionError("never happened; logs:\n" + self.tail())
      time.sleep(poll)

  def signal(self, i: int, sig=signal.SIGTERM):
    self.procs[i].send_signal(sig)

  def wait(self, timeout=300) -> list[int]:
    """Exit codes of every process (kills them all if one overstays)."""
    deadline = time.time() + timeout
    try:
      return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
    except subprocess.TimeoutExpired:
      for p in self.procs:
        p.kill()
      raise AssertionError("a process did not end in time; logs:\n" + self.tail())

  def tail(self, lines=25) -> str:
    return "\n".join(f"--- process {i}\n" + "\n".join(self.log(i).splitlines()[-lines:])
                     for i in range(len(self.procs)))
