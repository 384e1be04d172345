"""Inception-v1 video backbones: I3D, S3D and S3D-G, the paper's other 3-D baselines.

Input `(N, T, H, W, 3)` float clips, output `(N, num_classes)` float32 logits. The layout
is Inception-v1 (GoogLeNet with batch norm) as inflated by Carreira & Zisserman (CVPR 2017)
and made separable and gated by Xie et al. (ECCV 2018); shapes for a 64x224x224 clip:

  conv1  7x7x7 /2, 64           -> 32x112x112    (Conv3d_1a_7x7)
  pool   1x3x3 /(1,2,2)         -> 32x56x56      (MaxPool3d_2a_3x3)
  conv2  1x1x1, 64; conv3 3x3x3, 192             (Conv3d_2b_1x1, Conv3d_2c_3x3)
  pool   1x3x3 /(1,2,2)         -> 32x28x28      (MaxPool3d_3a_3x3)
  inception3a, 3b               -> 480 channels  (Mixed_3b, 3c)
  pool   3x3x3 /2               -> 16x14x14      (MaxPool3d_4a_3x3)
  inception4a .. 4e             -> 832 channels  (Mixed_4b .. 4f)
  pool   2x2x2 /2               -> 8x7x7         (MaxPool3d_5a_2x2)
  inception5a, 5b               -> 1024 channels (Mixed_5b, 5c)
  avg pool 2x7x7 /1 (valid), dropout, 1x1x1 conv to logits, mean over time

Each Inception block has four branches: 1x1x1; 1x1x1 then 3x3x3; 1x1x1 then 3x3x3;
3x3x3 max pool then 1x1x1 (`MIXED` lists their widths). Every conv is followed by batch
norm and ReLU. The variants:

  i3d   every k x k conv inflated to k x k x k
  s3d   every k x k x k conv separable: 1 x k x k, BN, ReLU, then k x 1 x 1, BN, ReLU;
        the temporal conv starts as the identity (its centre tap), as in the public
        S3D-G code, so a fresh or ImageNet-inflated S3D first computes a 2-D network
  s3dg  s3d plus self-gating after conv3 and after every branch of every block:
        `x * sigmoid(W mean_{t,h,w}(x))`, W a `(C, C)` matrix without bias

Module names follow torchvision's GoogLeNet (`conv1`, `inception3a/branch2_1`, ...; the
papers' names are in brackets above), which is what `cost_jax.models.pretrained` maps
ImageNet weights onto. Convolutions pad k // 2 on both sides (PyTorch's convention, so
ImageNet weights see the alignment they were trained with); pools pad 'SAME', which equals
torchvision's ceil-mode pools on even sizes. Stage outputs are sown into `intermediates`
(`stem`, `mixed3`, `mixed4`, `mixed5`).
"""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cost_jax.models import video_ops
from cost_jax.models.batch_norm import BatchNorm
from cost_jax.models.video_ops import kaiming_fan_out, symmetric_padding

VARIANTS = ("i3d", "s3d", "s3dg")

# Per block: (1x1, 3x3 reduce, 3x3, second 3x3 reduce, second 3x3, pool projection).
MIXED = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
BN_EPSILON = 1e-3  # Inception-v1's (and torchvision GoogLeNet's)


def centre_identity_init(key, shape, dtype=jnp.float32):
  """A `(k, 1, 1, C, C)` temporal kernel that passes its input through (centre tap)."""
  del key
  k, _, _, c_in, c_out = shape
  kernel = np.zeros(shape, np.float32)
  kernel[k // 2, 0, 0] = np.eye(c_in, c_out)
  return jnp.asarray(kernel, dtype)


class SelfGating(nn.Module):
  """`x * sigmoid(W mean(x))`: one weight per channel pair, pooled over T, H, W."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    pooled = x.astype(jnp.float32).mean(axis=(1, 2, 3))              # (N, C)
    w = nn.Dense(x.shape[-1], use_bias=False, kernel_init=nn.initializers.normal(0.01),
                 name="transform")(pooled)
    return x * jax.nn.sigmoid(w).astype(self.dtype)[:, None, None, None]


class Unit(nn.Module):
  """Conv (no bias), BN, ReLU; with `separable`, the k x k x k kernel is split into
  1 x k x k (`conv`, `bn`) then k x 1 x 1 (`temporal_conv`, `temporal_bn`)."""
  features: int
  kernel: Sequence[int]
  strides: Sequence[int] = (1, 1, 1)
  separable: bool = False
  conv: Callable = video_ops.Conv
  norm: Callable = BatchNorm

  @nn.compact
  def __call__(self, x):
    kt, kh, kw = self.kernel
    st, sh, sw = self.strides
    if self.separable and kt > 1:
      x = self.conv(self.features, (1, kh, kw), (1, sh, sw), symmetric_padding((1, kh, kw)),
                    name="conv")(x)
      x = nn.relu(self.norm(name="bn")(x))
      x = self.conv(self.features, (kt, 1, 1), (st, 1, 1), symmetric_padding((kt, 1, 1)),
                    kernel_init=centre_identity_init, name="temporal_conv")(x)
      return nn.relu(self.norm(name="temporal_bn")(x))
    x = self.conv(self.features, self.kernel, self.strides, symmetric_padding(self.kernel),
                  name="conv")(x)
    return nn.relu(self.norm(name="bn")(x))


def _max_pool(x, window, strides, impl):
  return video_ops.max_pool(x, window, strides, "SAME", impl)


class InceptionBlock(nn.Module):
  """Four branches concatenated; `gating` gates each branch's output (S3D-G)."""
  widths: Sequence[int]
  unit: Callable
  gating: bool
  dtype: Any
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    b1, b2_reduce, b2, b3_reduce, b3, b4 = self.widths
    branches = [
        self.unit(b1, (1, 1, 1), name="branch1")(x),
        self.unit(b2, (3, 3, 3), name="branch2_1")(
            self.unit(b2_reduce, (1, 1, 1), name="branch2_0")(x)),
        self.unit(b3, (3, 3, 3), name="branch3_1")(
            self.unit(b3_reduce, (1, 1, 1), name="branch3_0")(x)),
        self.unit(b4, (1, 1, 1), name="branch4_1")(
            _max_pool(x, (3, 3, 3), (1, 1, 1), self.conv_impl)),
    ]
    if self.gating:
      branches = [SelfGating(self.dtype, name=f"gate{i + 1}")(b)
                  for i, b in enumerate(branches)]
    return jnp.concatenate(branches, axis=-1)


class InceptionV1Video(nn.Module):
  """I3D, S3D or S3D-G (see the module docstring).

  Attributes:
    variant: 'i3d', 's3d' or 's3dg'.
    num_classes: size of the classifier.
    width: channels of the stem (64 in the papers); every width scales with it, so 8
      gives a network 8 times thinner for tests.
    dropout_rate: dropout before the classifier.
    dtype: compute dtype (float32 or bfloat16); parameters and logits are float32.
    bn_momentum: decay of the BatchNorm running statistics.
    conv_impl: how convolutions and pools run, '3d', '2d' or 'auto' (`video_ops`).
    remat: recompute each Inception block's activations in the backward pass.
  """
  variant: str = "i3d"
  num_classes: int = 400
  width: int = 64
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9
  conv_impl: str = "auto"
  remat: bool = False

  STAGES = {"stem": ("conv1", "conv2", "conv3"), "mixed3": ("inception3",),
            "mixed4": ("inception4",), "mixed5": ("inception5",), "head": ("head",)}

  def _channels(self, c: int) -> int:
    return max(1, c * self.width // 64)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown variant {self.variant!r}: choose one of {VARIANTS}")
    impl = self.conv_impl
    conv = functools.partial(video_ops.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=kaiming_fan_out, impl=impl)
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=BN_EPSILON,
                             dtype=self.dtype)
    unit = functools.partial(Unit, separable=self.variant != "i3d", conv=conv, norm=norm)
    gating = self.variant == "s3dg"
    block_cls = nn.remat(InceptionBlock) if self.remat else InceptionBlock
    ch = self._channels

    x = x.astype(self.dtype)
    x = unit(ch(64), (7, 7, 7), (2, 2, 2), name="conv1")(x)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2), impl)
    x = unit(ch(64), (1, 1, 1), name="conv2")(x)
    x = unit(ch(192), (3, 3, 3), name="conv3")(x)
    if gating:
      x = SelfGating(self.dtype, name="conv3_gate")(x)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2), impl)
    self.sow("intermediates", "stem", x)
    pools = {"inception4a": ((3, 3, 3), (2, 2, 2)), "inception5a": ((2, 2, 2), (2, 2, 2))}
    for name, widths in MIXED.items():
      if name in pools:
        self.sow("intermediates", f"mixed{int(name[9]) - 1}", x)
        x = _max_pool(x, *pools[name], impl)
      x = block_cls(tuple(ch(c) for c in widths), unit, gating, self.dtype, impl,
                    name=name)(x)
    self.sow("intermediates", "mixed5", x)

    t, h, w = x.shape[1:4]
    x = video_ops.avg_pool(x, (min(t, 2), min(h, 7), min(w, 7)), 1, "VALID", impl)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = video_ops.Conv(self.num_classes, (1, 1, 1), dtype=self.dtype, name="head",
                       kernel_init=nn.initializers.normal(0.01), impl=impl)(x)
    # Logits averaged over time (and over space when the clip is larger than 224).
    return x.astype(jnp.float32).mean(axis=(1, 2, 3))


I3D = functools.partial(InceptionV1Video, variant="i3d")
S3D = functools.partial(InceptionV1Video, variant="s3d")
S3DG = functools.partial(InceptionV1Video, variant="s3dg")
