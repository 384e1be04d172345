r"""Fine-tunes a Kinetics-400 network on UCF101 split 1 (or 2, 3).

  python -m cost_jax.prepare ucf101 --videos=UCF-101 --annotations=ucfTrainTestlist \
      --split=1 --data_dir=DATA
  python -m cost_jax.convert --format=pytorchvideo --arch=i3d_r50 \
      --checkpoint=I3D_8x8_R50.pyth --workdir=runs/i3d_k400
  python -m cost_jax.main --config=configs/ucf101.py:runs/i3d_k400 --workdir=DIR \
      --config.dataset.data_dir=DATA [--config.dataset.name=ucf101/split2]

Takes RUN's network, clip recipe and weights as `configs/finetune.py` does (the classifier
is new, sized for the 101 classes). The schedule is TSM's for fine-tuning its Kinetics
model on UCF101 (mit-han-lab/temporal-shift-module, scripts/finetune_tsm_ucf101_rgb_8f.sh:
lr 0.001 per 64 clips, 25 epochs decayed x0.1 at 10 and 20, dropout 0.8). Papers report
split 1, or the mean over the three splits: train each split in its own workdir.
"""

from configs import finetune


def get_config(run: str = ""):
  config = finetune.get_config(run)
  config.name = "ucf101_finetune"
  config.dataset.name = "ucf101/split1"
  config.dataset.eval_split = "test"
  config.dataset.test_split = "test"
  config.model.dropout_rate = 0.8
  config.batch_size = config.eval_batch_size = 32
  config.num_epochs = 25
  config.optimizer.base_lr = 0.001
  config.optimizer.base_batch_size = 64
  config.optimizer.schedule = "step"
  config.optimizer.decay_epochs = (10, 20)
  config.optimizer.warmup_epochs = 0.0
  return config
