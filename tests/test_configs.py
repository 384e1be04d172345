"""Every config file loads, builds its model and names a dataset the pipeline knows."""

import glob
import importlib
import os

import pytest

import processes
from cost_jax import models
from cost_jax.data import catalog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs",
                                                                          "*.py"))
                 if not p.endswith("__init__.py"))


def test_the_expected_configs_exist():
  assert {"demo", "kinetics", "kinetics_r101", "moments_in_time"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_complete(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  model = models.create_model(config.model)
  assert model.variant in models.VARIANTS
  assert config.dataset.name.split("/")[0] in catalog.KNOWN_DATASETS
  assert config.name and config.batch_size % 8 == 0
  catalog.check_input_config(config.input)
  i = config.input
  assert i.min_resize <= i.max_resize
  assert i.crop_size <= min(i.eval_resize, i.test_crop_size)
  assert i.num_test_crops in (1, 3) and len(i.mean) == len(i.std) == 3
  assert config.optimizer.schedule in ("step", "cosine")


def test_a_wrong_override_is_one_clear_line():
  result = processes.run("cost_jax.summary", "--config=configs/demo.py",
                         "--config.model.varient=costb")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --config.model.varient=costb: config.model has no field 'varient'. Did you "
      'mean "variant" instead of "varient"? The fields are those of the --config file.')
  assert "Traceback" not in result.stderr


def test_a_config_file_that_cannot_be_read_is_one_clear_line(tmp_path):
  # ml_collections defers this error to the config's first use (after JAX has started)
  # and raises it there with a traceback; the overrides make it raise while parsing.
  for extra in ([], ["--config.model.variant=c2d"]):
    result = processes.run("cost_jax.summary", "--config=configs/nope.py", *extra)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --config=configs/nope.py: cannot load the config file: [Errno 2] No such "
        f"file or directory: 'configs/nope.py' (the path is read from the current folder, "
        f"{processes.ROOT}; the configs that come with cost_jax are in configs/ at the "
        "repository's root)")
  result = processes.run("cost_jax.summary", f"--config={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --config={tmp_path}: cannot load the config file: [Errno 21] Is a "
      f"directory: '{tmp_path}'")


def test_a_profiled_command_still_writes_its_profile(tmp_path):
  # Commands skip the interpreter's teardown at exit, except under a profiler or coverage
  # tool, which write their data only after the program has returned.
  profile = tmp_path / "summary.prof"
  result = processes.run("cProfile", "-o", profile, "-m", "cost_jax.summary",
                         "--config=configs/demo.py", "--config.model.varient=costb")
  assert "Traceback" not in result.stderr, result.stderr
  assert profile.exists() and profile.stat().st_size > 0


def test_a_config_missing_an_input_field_is_named():
  config = importlib.import_module("configs.demo").get_config()
  del config.input["resize_on_device"]
  with pytest.raises(ValueError, match=r"config.input lacks resize_on_device: add"):
    catalog.check_input_config(config.input)
