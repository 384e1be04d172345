r"""The model comparison of `cost_jax.study`: one tiny network, four variants, one budget.

  python -m cost_jax.study --config=configs/study.py --workdir=/tmp/cost_study

Trains `study.variants` one after the other on `synthetic_motion/small`, whose classes
differ only in the order of frames (chance 1/8), each with exactly this config apart from
`model.variant`. The default finishes within 30 minutes on 2 CPU cores (see
docs/analysis.md for the measured time). Any other config works too,
e.g. `--config=configs/kinetics.py` with a `study` field added by `get_config` below.
"""

import ml_collections

from configs import demo


def add_study_fields(config, variants=("c2d", "c3d", "costa", "costb")):
  """The `study` block: which variants to train, each under the rest of `config`."""
  config.study = ml_collections.ConfigDict()
  config.study.variants = variants
  return config


def get_config():
  config = demo.get_config()
  config.name = "study"
  config.num_epochs = 24          # 768 steps of 32 clips per variant
  config.eval_every_steps = 0     # only the final multi-view test counts
  config.checkpoint_every_steps = 256
  # Blocks start as residual functions, not as the identity (as in the demo): with
  # zero-init, CoST(a) (whose temporal views start at a 1/3 share) was still at chance,
  # 10.9%, after 768 steps; without it, the same run reached 100%.
  config.model.zero_init_residual = False
  return add_study_fields(config)
