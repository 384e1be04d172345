r"""Trains and tests a video model.

  python -m cost_jax.main --config=configs/demo.py --workdir=/tmp/cost_demo
  python -m cost_jax.main --config=configs/kinetics.py --workdir=DIR \
      --config.model.variant=costb --config.dataset.data_dir=TFDS_DIR

Run it again with the same workdir to resume from the latest checkpoint.
"""

from absl import app, flags
from ml_collections import config_flags

from cost_jax import cli, runtime, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and results go.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.prepare()
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(main)
