r"""Moments in Time v1, ResNet-50 CoST(b), 8x8 clips, the 48-epoch schedule (docs/design.md §3).

  python -m cost_jax.prepare moments_in_time --videos=DIR --annotations=DIR --data_dir=DATA
  python -m cost_jax.main --config=configs/moments_in_time.py --workdir=DIR \
      --config.dataset.data_dir=DATA

The videos are 3 seconds long: an 8x8 clip (64 frames) loops over shorter ones. The paper's
R101 entry used 32-frame clips (`--config.input.num_frames=32 --config.input.frame_stride=2`).
"""

from configs import kinetics


def get_config():
  config = kinetics.get_config()
  config.name = "moments_in_time_r50"
  config.model.num_classes = 339
  config.dataset.name = "moments_in_time"
  config.dataset.eval_split = "validation"
  config.dataset.test_split = "validation"
  config.num_epochs = 48
  config.optimizer.decay_epochs = (24, 36)
  return config
