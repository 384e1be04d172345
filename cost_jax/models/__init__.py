"""Video models. `create_model(config.model)` builds the configured network."""

import jax.numpy as jnp

from cost_jax.errors import ConfigError

from cost_jax.models import inception3d, resnet3d, video_ops
from cost_jax.models.cost import CoST
from cost_jax.models.inception3d import I3D, S3D, S3DG, InceptionV1Video
from cost_jax.models.resnet3d import (C2D_R50, I3D_R50, MARKED, PYTORCHVIDEO, R2PLUS1D_R50,
                                      SLOW_R50, ResNet3D, ResNet50, ResNet101, ResNetTiny)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Every `config.model.variant`: the ResNet family (docs/design.md §2), Inception-v1, and
# the layouts of PyTorchVideo's zoo ResNets (depth 50).
VARIANTS = tuple(resnet3d.VARIANTS) + inception3d.VARIANTS + tuple(PYTORCHVIDEO)


def create_model(model_config, num_classes: int | None = None):
  """Builds the network a `config.model` describes.

  Args:
    model_config: fields `variant`, `depth` (ResNets only), `width`, `num_classes`,
      `dropout_rate`, `dtype` ('float32' or 'bfloat16'), and optionally `conv_impl`
      ('auto', '3d' or '2d'), `cost_fused`, `bn_momentum`, `zero_init_residual`, `remat`.
    num_classes: overrides `model_config.num_classes` (the dataset knows it best).
  Returns:
    A `ResNet3D` or an `InceptionV1Video`.
  Raises:
    ConfigError (a ValueError) naming the config field and the valid values when one
    is wrong.
  """
  m = model_config
  if m.variant not in VARIANTS:
    raise ConfigError(f"config.model.variant={m.variant!r} is unknown: set it to one of "
                     f"{', '.join(sorted(VARIANTS))}")
  if m.dtype not in DTYPES:
    raise ConfigError(f"config.model.dtype={m.dtype!r} is unknown: set it to one of "
                     f"{', '.join(DTYPES)}")
  conv_impl = m.get("conv_impl", "auto")  # absent from configs written before it
  if conv_impl not in video_ops.IMPLS:
    raise ConfigError(f"config.model.conv_impl={conv_impl!r} is unknown: set it to one "
                      f"of {', '.join(video_ops.IMPLS)}")
  common = dict(variant=m.variant, num_classes=num_classes or m.num_classes, width=m.width,
                dropout_rate=m.dropout_rate, dtype=DTYPES[m.dtype], conv_impl=conv_impl)
  if m.variant in inception3d.VARIANTS:
    optional = {k: m[k] for k in ("bn_momentum", "remat") if k in m}
    return InceptionV1Video(**common, **optional)
  if m.variant in PYTORCHVIDEO and m.depth != 50:
    raise ConfigError(f"config.model.depth={m.depth}: {m.variant} exists at depth 50 only")
  if m.depth not in MARKED:
    raise ConfigError(f"config.model.depth={m.depth} is unknown: set it to one of "
                     f"{', '.join(map(str, sorted(MARKED)))} (14 is the tiny preset)")
  optional = {k: m[k] for k in ("cost_fused", "bn_momentum", "zero_init_residual", "remat")
              if k in m}
  return ResNet3D(depth=m.depth, **common, **optional)


__all__ = ["CoST", "ResNet3D", "ResNet50", "ResNet101", "ResNetTiny", "InceptionV1Video",
           "I3D", "S3D", "S3DG", "C2D_R50", "I3D_R50", "SLOW_R50", "R2PLUS1D_R50",
           "VARIANTS", "MARKED", "PYTORCHVIDEO", "create_model"]
