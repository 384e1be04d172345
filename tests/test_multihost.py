"""Two-process jobs over jax.distributed on loopback (one CPU device each), as on two hosts.

The first start builds the dataset once; a SIGTERM to one process stops both at the same
step with a checkpoint; a second job on the same workdir is refused; a SIGKILL during a
checkpoint save ends the other process at once; and the reruns finish with the results
of an uninterrupted run.
"""

import json
import os
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import processes
from processes import TINY, Job

STEPS = 12
ARGS = TINY + [f"--config.num_train_steps={STEPS}", "--config.checkpoint_every_steps=4",
               "--config.log_every_steps=4"]
SECOND_JOB_REFUSED = "is in use by another training job (host "


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted two-process run that starts with no dataset built."""
  root = tmp_path_factory.mktemp("multihost")
  data_dir, cache = root / "tfds", processes.CACHE_DIR  # shared with every test process
  job = Job(ARGS + [f"--workdir={root / 'straight'}", f"--config.dataset.data_dir={data_dir}"],
            root / "straight", cache_dir=cache)
  assert job.wait() == [0, 0], job.tail()
  return root, data_dir, cache, job


def _checkpoints(workdir):
  folder = workdir / "checkpoints"
  return sorted(os.listdir(folder)) if folder.exists() else []


def _complete_steps(workdir):
  return sorted(int(d) for d in _checkpoints(workdir) if d.isdigit())


def _params(workdir, step):
  """The parameters of a two-process checkpoint, read here on one device."""
  manager = ocp.CheckpointManager(workdir / "checkpoints",
                                  item_handlers=ocp.StandardCheckpointHandler())
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  try:
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                          manager.item_metadata(step).tree)
    return manager.restore(step, args=ocp.args.StandardRestore(target))["params"]
  finally:
    manager.close()


def test_first_start_builds_the_dataset_once(straight):
  root, data_dir, _, job = straight
  assert "process 1 waits for process 0: building synthetic_motion/tiny" in job.log(1)
  assert "downloaded and prepared" in job.log(0)
  assert "downloaded and prepared" not in job.log(1)
  assert os.listdir(data_dir / "synthetic_motion" / "tiny") == ["1.1.0"]  # no leftovers
  results = json.loads((root / "straight" / "results.json").read_text())
  assert (results["step"], results["num_videos"]) == (STEPS, 24)


def test_sigterm_sigkill_and_reruns_end_as_an_uninterrupted_run(straight):
  root, data_dir, cache, _ = straight
  workdir = root / "interrupted"
  args = ARGS + [f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}"]

  # 1. While the job holds the workdir (paused, to be sure), a second job is refused.
  job = Job(args, root / "run1", cache_dir=cache)
  job.wait_for(lambda: "training costb" in job.log(1))
  for p in job.procs:
    p.send_signal(signal.SIGSTOP)
  other = processes.run("cost_jax.main", *args, env=processes.environment(cache))
  for p in job.procs:
    p.send_signal(signal.SIGCONT)
  assert other.returncode == 2, other.stderr
  assert SECOND_JOB_REFUSED in other.stderr and "Traceback" not in other.stderr

  # 2. SIGTERM to process 1 only: both stop after the same step, with its checkpoint.
  job.signal(1, signal.SIGTERM)
  assert job.wait() == [0, 0], job.tail()
  stops = [[line for line in job.log(i).splitlines() if "stopping after step" in line]
           for i in (0, 1)]
  assert len(stops[0]) == len(stops[1]) == 1, job.tail()
  stop = int(stops[0][0].split("stopping after step ")[1].split()[0])
  assert f"stopping after step {stop} " in stops[1][0]
  assert 1 <= stop < STEPS
  assert _complete_steps(workdir)[-1] == stop
  assert not (workdir / "results.json").exists()

  # 3. Rerun; SIGKILL process 1 while a checkpoint is being written: process 0 ends at
  # once with one clear line, and the unfinished checkpoint is never read.
  job = Job(args, root / "run2", cache_dir=cache)
  job.wait_for(lambda: any("tmp" in d for d in _checkpoints(workdir)), poll=0.002)
  job.signal(1, signal.SIGKILL)
  killed = time.time()
  codes = job.wait(timeout=60)
  assert time.time() - killed < 20, "the survivor did not stop in time"
  assert codes[1] == -signal.SIGKILL and codes[0] != 0, job.tail()
  assert "Another process of the job has most likely failed or been killed" in job.log(0)
  assert f"resuming from the checkpoint of step {stop}" in job.log(0)
  last_complete = _complete_steps(workdir)[-1]
  assert stop <= last_complete < STEPS

  # 4. The same command again finishes; results and parameters equal the straight run's.
  job = Job(args, root / "run3", cache_dir=cache)
  assert job.wait() == [0, 0], job.tail()
  assert f"resuming from the checkpoint of step {last_complete}" in job.log(0)
  expected = json.loads((root / "straight" / "results.json").read_text())
  assert json.loads((workdir / "results.json").read_text()) == expected
  jax.tree.map(np.testing.assert_array_equal, _params(root / "straight", STEPS),
               _params(workdir, STEPS))


def test_a_workdir_of_another_network_is_refused_before_compiling(straight):
  root, data_dir, cache, _ = straight
  workdir = root / "straight"
  before = {f: (workdir / f).read_text() for f in ("config.json", "results.json")}
  out = processes.run("cost_jax.main", *ARGS, f"--workdir={workdir}",
                      f"--config.dataset.data_dir={data_dir}", "--config.model.variant=c2d",
                      env=processes.environment(cache))
  assert out.returncode == 2, out.stderr
  (line,) = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert "holds checkpoints (step 12) of another network" in line
  assert "params only in the checkpoint" in line and "model.variant: 'costb' -> 'c2d'" in line
  assert "Traceback" not in out.stderr and "training c2d" not in out.stderr
  assert {f: (workdir / f).read_text() for f in before} == before  # nothing lost
