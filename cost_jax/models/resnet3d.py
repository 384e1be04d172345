"""Video ResNets with a pluggable spatio-temporal convolution (docs/design.md §2).

Input `(N, T, H, W, 3)` float clips, output `(N, num_classes)` float32 logits. Bottleneck
blocks, stride in the 3x3 conv, temporal max pool (kernel 2, stride 2) after res2. Every
block is a C2D block except the *marked* ones, which the variant changes:

  variant     conv1 of a marked block   conv2 of a marked block
  c2d         1x1x1                     1x3x3
  c3d         3x1x1 (padding 1 in time) 1x3x3   (the paper's I3D-style baseline)
  c3d_full    1x1x1                     3x3x3
  r2plus1d    1x1x1                     1x3x3 (M channels), BN, ReLU, 3x1x1
  costa       1x1x1                     CoST(a)
  costb       1x1x1                     CoST(b)

Where every temporal kernel sits is a `Layout`; the paper's variants derive theirs from
the marking (`paper_layout`), and `PYTORCHVIDEO` holds the layouts of PyTorchVideo's
model zoo ResNets (`pytorchvideo_c2d`, `_i3d`, `_slow`, `_r2plus1d`, depth 50), so that
its Kinetics checkpoints load exactly (`cost_jax.models.pretrained`).

Module names follow torchvision's ResNet (`res{2..5}_{block}/conv1`, `bn1`, ...,
`downsample_conv`, `downsample_bn`; `stem_conv`, `stem_bn`; `head`), which is what
`cost_jax.models.pretrained` maps ImageNet weights onto. The outputs of the stem and of
every stage are sown into `intermediates` (`stem`, `res2`..`res5`) for feature extraction.
"""

import dataclasses
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cost_jax.models import video_ops
from cost_jax.models.batch_norm import BatchNorm
from cost_jax.models.cost import CoST
from cost_jax.models.video_ops import kaiming_fan_out, symmetric_padding

# Per variant: (temporal kernel of conv1, kind of conv2) in a marked block.
VARIANTS = {
    "c2d": (1, "2d"),
    "c3d": (3, "2d"),
    "c3d_full": (1, "3d"),
    "r2plus1d": (1, "r2plus1d"),
    "costa": (1, "costa"),
    "costb": (1, "costb"),
}

# Marked blocks per stage (res2..res5), docs/design.md §2.
MARKED = {
    50: ((0, 1, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (1, 0, 1)),
    101: ((0, 1, 0), (1, 0, 1, 0), tuple(1 - i % 2 for i in range(23)), (0, 1, 0)),
    # The tiny preset for tests and the CPU demo: one block per stage, all marked.
    14: ((1,), (1,), (1,), (1,)),
}
STAGE_SIZES = {depth: tuple(len(s) for s in marked) for depth, marked in MARKED.items()}


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a video ResNet's temporal kernels and strides sit.

  `conv1_t` (temporal kernel of conv1) and `conv2` (kind of conv2: '2d' 1x3x3, '3d'
  3x3x3, 'r2plus1d' spatial-then-temporal with M channels, 'r2plus1d_tx' temporal
  (3x1x1) then spatial (1x3x3) with the block's width, as PyTorchVideo builds it,
  'costa', 'costb') hold one entry per block, per stage.
  """
  conv1_t: tuple[tuple[int, ...], ...]
  conv2: tuple[tuple[str, ...], ...]
  stem_t: int = 1                              # temporal kernel of the 7x7 stem conv
  stem_pool: bool = True                       # 1x3x3 max pool, stride 2, after the stem
  res2_pool: bool = True                       # 2x1x1 max pool, stride 2, after res2
  stride_s: tuple[int, ...] = (1, 2, 2, 2)     # spatial stride of each stage
  stride_t: tuple[int, ...] = (1, 1, 1, 1)     # temporal stride of each stage
  # PyTorchVideo's head: a (t, h, w) average pool, stride 1, before the global mean (it
  # weighs border positions less once the feature map outgrows the window); None: mean.
  head_pool: tuple[int, int, int] | None = None


def paper_layout(variant: str, depth: int) -> Layout:
  """docs/design.md §2: the variant changes the marked blocks only."""
  conv1_t, conv2 = VARIANTS[variant]
  marked = MARKED[depth]
  return Layout(conv1_t=tuple(tuple(conv1_t if m else 1 for m in s) for s in marked),
                conv2=tuple(tuple(conv2 if m else "2d" for m in s) for s in marked))


def _per_stage(values, depth=50) -> tuple[tuple, ...]:
  """Per-stage patterns, repeated over each stage's blocks (`(3, 1)` -> 3, 1, 3, 1...)."""
  return tuple(tuple(v[i % len(v)] for i in range(n))
               for v, n in zip(values, STAGE_SIZES[depth]))


# PyTorchVideo 0.1.5's `pytorchvideo.models.hub` ResNets (Kinetics-400 zoo), depth 50.
PYTORCHVIDEO = {
    "pytorchvideo_c2d": Layout(conv1_t=_per_stage(((1,),) * 4),
                               conv2=_per_stage((("2d",),) * 4), head_pool=(4, 7, 7)),
    "pytorchvideo_i3d": Layout(conv1_t=_per_stage(((3,), (3, 1), (3, 1), (1, 3))),
                               conv2=_per_stage((("2d",),) * 4), stem_t=5,
                               head_pool=(4, 7, 7)),
    "pytorchvideo_slow": Layout(conv1_t=_per_stage(((1,), (1,), (3,), (3,))),
                                conv2=_per_stage((("2d",),) * 4), res2_pool=False,
                                head_pool=(8, 7, 7)),
    "pytorchvideo_r2plus1d": Layout(conv1_t=_per_stage(((1,),) * 4),
                                    conv2=_per_stage((("r2plus1d_tx",),) * 4),
                                    stem_pool=False, res2_pool=False,
                                    stride_s=(2, 2, 2, 2), stride_t=(1, 1, 2, 2),
                                    head_pool=(4, 7, 7)),
}


def r2plus1d_mid_channels(c_in: int, c_out: int) -> int:
  """M of R(2+1)D: the (2+1)-D pair has the parameters of one 3x3x3 conv."""
  return (27 * c_in * c_out) // (9 * c_in + 3 * c_out)


class R2Plus1DConv(nn.Module):
  """1x3x3 conv to M channels, BN, ReLU, 3x1x1 conv (Tran et al. 2018)."""
  features: int
  strides: Sequence[int] = (1, 1, 1)
  conv: Callable = video_ops.Conv
  norm: Callable = BatchNorm

  @nn.compact
  def __call__(self, x):
    mid = r2plus1d_mid_channels(x.shape[-1], self.features)
    s_t, s_h, s_w = self.strides
    x = self.conv(mid, (1, 3, 3), (1, s_h, s_w), symmetric_padding((1, 3, 3)), name="spatial")(x)
    x = nn.relu(self.norm(name="bn_mid")(x))
    return self.conv(self.features, (3, 1, 1), (s_t, 1, 1), symmetric_padding((3, 1, 1)),
                     name="temporal")(x)


class TemporalSpatialConv(nn.Module):
  """3x1x1 conv, BN, ReLU, 1x3x3 conv, all `features` wide: PyTorchVideo's R(2+1)D."""
  features: int
  strides: Sequence[int] = (1, 1, 1)
  conv: Callable = video_ops.Conv
  norm: Callable = BatchNorm

  @nn.compact
  def __call__(self, x):
    s_t, s_h, s_w = self.strides
    x = self.conv(self.features, (3, 1, 1), (s_t, 1, 1), symmetric_padding((3, 1, 1)),
                  name="temporal")(x)
    x = nn.relu(self.norm(name="bn_mid")(x))
    return self.conv(self.features, (1, 3, 3), (1, s_h, s_w), symmetric_padding((1, 3, 3)),
                     name="spatial")(x)


class Bottleneck(nn.Module):
  """1x1 (or 3x1x1) -> spatio-temporal 3x3 -> 1x1, with a projection shortcut."""
  width: int
  strides: tuple[int, int, int]
  conv1_t: int
  conv2_kind: str
  conv: Callable
  norm: Callable
  cost_fused: bool
  conv_impl: str
  dtype: Any
  zero_init_residual: bool

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.width, (self.conv1_t, 1, 1), 1, symmetric_padding((self.conv1_t, 1, 1)),
                  name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    strides = self.strides
    if self.conv2_kind == "2d":
      y = self.conv(self.width, (1, 3, 3), strides, symmetric_padding((1, 3, 3)), name="conv2")(y)
    elif self.conv2_kind == "3d":
      y = self.conv(self.width, (3, 3, 3), strides, symmetric_padding((3, 3, 3)), name="conv2")(y)
    elif self.conv2_kind == "r2plus1d":
      y = R2Plus1DConv(self.width, strides, self.conv, self.norm, name="conv2")(y)
    elif self.conv2_kind == "r2plus1d_tx":
      y = TemporalSpatialConv(self.width, strides, self.conv, self.norm, name="conv2")(y)
    else:
      y = CoST(self.width, self.conv2_kind[-1], strides, fused=self.cost_fused,
               impl=self.conv_impl, dtype=self.dtype, name="conv2")(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = self.conv(self.width * 4, (1, 1, 1), 1, "VALID", name="conv3")(y)
    scale_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = self.norm(name="bn3", scale_init=scale_init)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.width * 4, (1, 1, 1), strides, "VALID",
                           name="downsample_conv")(residual)
      residual = self.norm(name="downsample_bn")(residual)
    return nn.relu(residual + y)


class ResNet3D(nn.Module):
  """A video ResNet (see the module docstring for the variants).

  Attributes:
    depth: 50, 101 or 14 (the tiny preset); picks the blocks per stage and the marking.
    variant: one of `VARIANTS`, or of `PYTORCHVIDEO` (depth 50).
    num_classes: size of the classifier.
    width: channels of res2's bottleneck (64 in the paper; the stem has the same width).
    dropout_rate: dropout before the classifier.
    dtype: compute dtype (float32 or bfloat16); parameters and logits are float32.
    cost_fused: run CoST(a) as one 3x3x3 convolution (see `CoST.fused`).
    conv_impl: how convolutions and pools run, '3d', '2d' or 'auto' (`video_ops`);
      the parameters are the same in all three.
    bn_momentum: decay of the BatchNorm running statistics (0.9 is PyTorch's 0.1).
    zero_init_residual: start every block as the identity (last BN scale 0).
    remat: recompute each block's activations in the backward pass to save memory.
  """
  depth: int = 50
  variant: str = "c2d"
  num_classes: int = 400
  width: int = 64
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32
  cost_fused: bool = True
  conv_impl: str = "auto"
  bn_momentum: float = 0.9
  zero_init_residual: bool = False
  remat: bool = False

  # Top-level module prefixes of each stage, for `cost_jax.summary`.
  STAGES = {"stem": ("stem_",), "res2": ("res2_",), "res3": ("res3_",), "res4": ("res4_",),
            "res5": ("res5_",), "head": ("head",)}

  def layout(self) -> Layout:
    if self.variant in PYTORCHVIDEO:
      if self.depth != 50:
        raise ValueError(f"{self.variant} exists at depth 50 only, not {self.depth}")
      return PYTORCHVIDEO[self.variant]
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown variant {self.variant!r}: choose one of "
                       f"{sorted(VARIANTS) + sorted(PYTORCHVIDEO)}")
    if self.depth not in MARKED:
      raise ValueError(f"unknown depth {self.depth}: choose one of {sorted(MARKED)}")
    return paper_layout(self.variant, self.depth)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    layout = self.layout()
    impl = self.conv_impl
    conv = functools.partial(video_ops.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=kaiming_fan_out, impl=impl)
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5, dtype=self.dtype)
    block_cls = nn.remat(Bottleneck) if self.remat else Bottleneck

    x = x.astype(self.dtype)
    stem = (layout.stem_t, 7, 7)
    x = conv(self.width, stem, (1, 2, 2), symmetric_padding(stem), name="stem_conv")(x)
    x = nn.relu(norm(name="stem_bn")(x))
    if layout.stem_pool:
      x = video_ops.max_pool(x, (1, 3, 3), (1, 2, 2), symmetric_padding((1, 3, 3)), impl)
    self.sow("intermediates", "stem", x)
    for stage, (conv1_ts, conv2_kinds) in enumerate(zip(layout.conv1_t, layout.conv2)):
      for block, (conv1_t, conv2_kind) in enumerate(zip(conv1_ts, conv2_kinds)):
        first = block == 0
        x = block_cls(
            width=self.width * 2 ** stage,
            strides=((layout.stride_t[stage], layout.stride_s[stage],
                      layout.stride_s[stage]) if first else (1, 1, 1)),
            conv1_t=conv1_t, conv2_kind=conv2_kind,
            conv=conv, norm=norm, cost_fused=self.cost_fused, conv_impl=impl,
            dtype=self.dtype,
            zero_init_residual=self.zero_init_residual,
            name=f"res{stage + 2}_{block}")(x)
      if stage == 0 and layout.res2_pool:
        x = video_ops.max_pool(x, (2, 1, 1), (2, 1, 1), "VALID", impl)
      self.sow("intermediates", f"res{stage + 2}", x)
    if layout.head_pool:
      window = tuple(min(w, n) for w, n in zip(layout.head_pool, x.shape[1:4]))
      x = video_ops.avg_pool(x, window, (1, 1, 1), "VALID", impl)
    x = x.mean(axis=(1, 2, 3)).astype(jnp.float32)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01),
                    name="head")(x)


# Presets, in the style of flax/examples/imagenet.
ResNet50 = functools.partial(ResNet3D, depth=50)
ResNet101 = functools.partial(ResNet3D, depth=101)
ResNetTiny = functools.partial(ResNet3D, depth=14, width=8)
# PyTorchVideo's Kinetics-400 zoo networks (`pytorchvideo.models.hub.<name>_r50`).
C2D_R50 = functools.partial(ResNet3D, depth=50, variant="pytorchvideo_c2d")
I3D_R50 = functools.partial(ResNet3D, depth=50, variant="pytorchvideo_i3d")
SLOW_R50 = functools.partial(ResNet3D, depth=50, variant="pytorchvideo_slow")
R2PLUS1D_R50 = functools.partial(ResNet3D, depth=50, variant="pytorchvideo_r2plus1d")
