"""The CoST layer: one shared 3x3 kernel over the H-W, T-W and T-H views of a clip.

Shapes are channels-last: input `(N, T, H, W, C_in)`, output `(N, T', H', W', C_out)`.
The exact operation is `docs/design.md` §1; parameter names follow it so that
checkpoints from the authors' PyTorch release map onto this module one to one:

  kernel  (3, 3, C_in, C_out)   shared by the three views (a 2-D HWIO kernel)
  alpha   (3, C_out)            CoST(a): view logits, softmax over axis 0
  fc1     Dense, kernel (C_out, C_out), no bias   CoST(b)
  fc2     Dense, kernel (3, 3), no bias           CoST(b)

The mixing coefficients are sown into the `intermediates` collection under
`coefficients`, views last: `(C_out, 3)` for CoST(a), `(N, C_out, 3)` for CoST(b), in the
order (H-W, T-W, T-H).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cost_jax.models import video_ops
from cost_jax.models.video_ops import kaiming_fan_out

VIEWS = ("hw", "tw", "th")

def view_kernels(kernel: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The shared `(3, 3, I, O)` kernel as the three 3-D kernels `(t, h, w, I, O)`."""
  return kernel[None], kernel[:, None], kernel[:, :, None]


# Padding (t, h, w) of each view: 'same' along the two axes its kernel spans.
VIEW_PADDING = (((0, 0), (1, 1), (1, 1)), ((1, 1), (0, 0), (1, 1)), ((1, 1), (1, 1), (0, 0)))


def cost_views(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
               impl: str = "auto") -> list[jax.Array]:
  """The three view outputs `[y_hw, y_tw, y_th]`, each `(N, T', H', W', O)`; with the
  '2d' `impl`, 2-D convolutions over the frames, the (T, W) planes and the (T, H) planes
  (`video_ops`)."""
  return [video_ops.conv(x, k, strides, p, impl)
          for k, p in zip(view_kernels(kernel), VIEW_PADDING)]


def fused_kernel(kernel: jax.Array, coefficients: jax.Array) -> jax.Array:
  """The 3x3x3 kernel equivalent to CoST(a): 19 non-zero taps of 27.

  Args:
    kernel: `(3, 3, I, O)`, the shared kernel.
    coefficients: `(3, O)`, the mixing weights of (H-W, T-W, T-H).
  Returns:
    `(3, 3, 3, I, O)` with `K[1, i, j] += a_hw W[i, j]`, `K[i, 1, j] += a_tw W[i, j]`,
    `K[i, j, 1] += a_th W[i, j]`.
  """
  a_hw, a_tw, a_th = coefficients[0], coefficients[1], coefficients[2]
  k = jnp.zeros((3,) + kernel.shape, kernel.dtype)
  k = k.at[1, :, :].add(a_hw * kernel)
  k = k.at[:, 1, :].add(a_tw * kernel)
  k = k.at[:, :, 1].add(a_th * kernel)
  return k


def _alpha_init(key, shape, dtype=jnp.float32):
  del key
  return jnp.array([0.7, -0.7, -0.7], dtype)[:, None] * jnp.ones(shape, dtype)


class CoST(nn.Module):
  """Collaborative spatio-temporal convolution (CoST(a) or CoST(b)).

  Attributes:
    features: C_out.
    variant: 'a' (learned, input-independent coefficients) or 'b' (predicted per sample).
    strides: (s_t, s_h, s_w), used by all three views.
    fused: CoST(a) only. Run one 3x3x3 convolution with `fused_kernel` instead of three
      view convolutions; the two are equal up to rounding. Measured side by side with
      `python benchmarks/cost_layer.py` on the 2-core CPU (float32), fused / three views:
      0.92x forward and 0.84x forward+backward at (8, 4, 28, 28, 128); 0.92x and 0.98x at
      (4, 8, 56, 56, 64). Fused is never slower there, so it is the default. GPU and TPU
      figures are still to be measured with the same script.
    dtype: compute dtype; parameters stay in `param_dtype`.
    impl: how the convolutions run, '3d', '2d' or 'auto' (`video_ops`).
  """
  features: int
  variant: str = "a"
  strides: Sequence[int] = (1, 1, 1)
  fused: bool = True
  impl: str = "auto"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Any = kaiming_fan_out

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.variant not in ("a", "b"):
      raise ValueError(f"CoST variant must be 'a' or 'b', got {self.variant!r}")
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features),
                        self.param_dtype)
    x = x.astype(self.dtype)
    kernel = kernel.astype(self.dtype)

    if self.variant == "a":
      alpha = self.param("alpha", _alpha_init, (3, self.features), self.param_dtype)
      coefficients = jax.nn.softmax(alpha.astype(jnp.float32), axis=0)  # (3, O)
      self.sow("intermediates", "coefficients", coefficients.T)
      mix = coefficients.astype(self.dtype)
      if self.fused:
        k = fused_kernel(kernel, mix)
        return video_ops.conv(x, k, self.strides, ((1, 1),) * 3, self.impl)
      ys = cost_views(x, kernel, self.strides, self.impl)
      return mix[0] * ys[0] + mix[1] * ys[1] + mix[2] * ys[2]

    ys = cost_views(x, kernel, self.strides, self.impl)
    # Global max pooling of every view, views stacked on axis 1: (N, 3, O).
    pooled = jnp.stack([y.max(axis=(1, 2, 3)) for y in ys], axis=1).astype(jnp.float32)
    small = nn.initializers.normal(0.01)
    q = nn.Dense(self.features, use_bias=False, kernel_init=small, name="fc1",
                 param_dtype=self.param_dtype)(pooled)              # (N, 3, O)
    r = nn.Dense(3, use_bias=False, kernel_init=small, name="fc2",
                 param_dtype=self.param_dtype)(jnp.swapaxes(q, 1, 2))  # (N, O, 3)
    coefficients = jax.nn.softmax(r, axis=-1)
    self.sow("intermediates", "coefficients", coefficients)
    mix = coefficients.astype(self.dtype)[:, None, None, None]      # (N, 1, 1, 1, O, 3)
    return ys[0] * mix[..., 0] + ys[1] * mix[..., 1] + ys[2] * mix[..., 2]
