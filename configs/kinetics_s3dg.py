r"""Kinetics-400 with S3D-G (Xie et al., ECCV 2018): separable Inception-v1 with gating.

  python -m cost_jax.main --config=configs/kinetics_s3dg.py --workdir=DIR \
      --config.dataset.data_dir=TFDS_DIR [--config.model.variant=s3d]

Input as in the paper: 64 frames, 224x224 random crops, horizontal flips. The paper trains
like I3D (synchronous SGD, momentum 0.9, initial learning rate 0.1) from ImageNet
Inception-v1 weights; its public code uses dropout 0.2 (keep probability 0.8). This config
keeps the paper's input and uses the project's fixed step schedule scaled to the batch.
"""

from configs import kinetics_i3d


def get_config():
  config = kinetics_i3d.get_config()
  config.name = "kinetics400_s3dg"
  config.model.variant = "s3dg"
  config.model.dropout_rate = 0.2
  return config
