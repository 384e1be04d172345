r"""Fine-tunes a Kinetics-400 network on HMDB51 split 1 (or 2, 3).

  python -m cost_jax.prepare hmdb51 --videos=HMDB51 \
      --annotations=testTrainMulti_7030_splits --split=1 --data_dir=DATA
  python -m cost_jax.main --config=configs/hmdb51.py:runs/i3d_k400 --workdir=DIR \
      --config.dataset.data_dir=DATA [--config.dataset.name=hmdb51/split2]

The recipe of `configs/ucf101.py` (RUN from `python -m cost_jax.convert` or a Kinetics
workdir; the schedule of TSM's UCF101 fine-tuning script,
mit-han-lab/temporal-shift-module, scripts/finetune_tsm_ucf101_rgb_8f.sh) applied to
HMDB51's 51 classes: 3,570 training videos per split, so its 25 epochs are fewer steps.
"""

from configs import ucf101


def get_config(run: str = ""):
  config = ucf101.get_config(run)
  config.name = "hmdb51_finetune"
  config.dataset.name = "hmdb51/split1"
  return config
