r"""Kinetics-400, ResNet-101 CoST(b), 8x8 clips (the paper's 77.5 top-1 model).

  python -m cost_jax.main --config=configs/kinetics_r101.py --workdir=DIR \
      --config.init_from=resnet101_imagenet.safetensors
"""

from configs import kinetics


def get_config():
  config = kinetics.get_config()
  config.name = "kinetics400_r101"
  config.model.depth = 101
  return config
