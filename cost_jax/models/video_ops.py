"""How video convolutions and pools run: as XLA's 3-D ops, or lowered to 2-D ones.

Every video network of `cost_jax.models` convolves and pools clips `(N, T, H, W, C)`
through this module; `impl` (`config.model.conv_impl`) picks how, never what:

  "3d"    one `conv_general_dilated` (or `reduce_window`) over (T, H, W).
  "2d"    the same operation from 2-D convolutions over frames or planes, the form XLA's
          CPU backend runs fast (its 3-D convolutions take a slow generic path):
            1 x k_h x k_w       one 2-D convolution over the N*T frames
            k_t x 1 x k_w       one 2-D convolution over the (T, W) planes of every row,
            k_t x k_h x 1       or over the (T, H) planes of every column (the clip
                                transposed): CoST's T-W and T-H views, "after a simple
                                reshaping", as the paper puts it
            k_t x k_h x k_w     one 2-D convolution of the frames, their k_t temporal
                                taps side by side in channels, or (temporal stride 1,
                                no more output channels than input ones) one 2-D
                                convolution giving k_t outputs per frame (the
                                edge frames only those that reach an output),
                                summed shifted in time
            k_t x 1 x 1         one 2-D convolution over the (T, H*W) plane of every
                                clip, its gradient that of a matrix product over
                                channels in the same two forms (k_t = 1: the product)
          and pools as a 2-D pool over frames followed by a 1-D pool over time.
          Temporal taps that read only padding (3 x 3 x 3 over a clip of one frame)
          are left out.
  "auto"  the faster of the two on the platform that runs it (`AUTO`, measured).

Strides and padding apply on every axis in every form; parameters are identical (the
`Conv` module has `nn.Conv`'s names and shapes), so a checkpoint, a converted PyTorch file
or an ImageNet inflation loads whichever implementation runs it, and outputs agree to
float rounding.
"""

import functools
import itertools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

IMPLS = ("auto", "3d", "2d")
# What "auto" runs, per platform. CPU: "2d", 2.7x to 3.5x faster train steps of every R50
# variant than "3d" on the 2-core CPU (`python -m cost_jax.bench.model ... --conv_impl=3d,2d`,
# docs/performance.md). GPU: "2d", 0.61x to 0.65x the train step time of "3d" for C2D,
# C3D 3x3x3 and CoST(a) on an H200 (R50, 8x224^2, batch 32, bfloat16; docs/performance.md).
# TPU: "3d" until measured there.
AUTO = {"cpu": "2d", "gpu": "2d"}

Padding = str | Sequence[tuple[int, int]]
_DN_2D = ("NHWC", "HWIO", "NHWC")
_DN_3D = ("NDHWC", "DHWIO", "NDHWC")


# Kaiming normal with fan-out, as the authors initialise every convolution.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def symmetric_padding(kernel: Sequence[int]) -> tuple[tuple[int, int], ...]:
  """k // 2 on both sides of every axis: PyTorch's padding for odd kernels."""
  return tuple((k // 2, k // 2) for k in kernel)


def resolve(impl: str, platform: str | None = None) -> str:
  """'3d' or '2d' for `impl`; 'auto' by `AUTO` for `platform` (default: JAX's backend)."""
  if impl not in IMPLS:
    raise ValueError(f"conv_impl={impl!r}: choose one of {', '.join(IMPLS)}")
  if impl != "auto":
    return impl
  return AUTO.get(platform or jax.default_backend(), "3d")


def _triple(v) -> tuple[int, int, int]:
  return (v,) * 3 if isinstance(v, int) else tuple(v)


def explicit_padding(shape, window, strides, padding: Padding) -> tuple[tuple[int, int], ...]:
  """((lo, hi),) * 3 over (T, H, W) for 'SAME', 'VALID' or explicit pairs."""
  if isinstance(padding, str):
    return tuple(jax.lax.padtype_to_pads(shape[1:4], window, strides, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _pad_axis(x, axis: int, pad: tuple[int, int], value=0.0):
  if pad == (0, 0):
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = pad
  return jnp.pad(x, widths, constant_values=value)


def _taps(x, axis: int, size: int, stride: int, pad: tuple[int, int]):
  """The `size` shifted, strided slices of `x` along `axis` that a window of `size`
  taps reads (zero padding `pad`): tap d holds input d + stride * o for output o."""
  x = _pad_axis(x, axis, pad)
  out = (x.shape[axis] - size) // stride + 1
  return [jax.lax.slice_in_dim(x, d, d + (out - 1) * stride + 1, stride, axis)
          for d in range(size)]


def _subsample(x, axis: int, stride: int, pad: tuple[int, int]):
  """A kernel of size 1 along `axis`: its padding and stride only pick positions."""
  return _taps(x, axis, 1, stride, pad)[0]


def _conv2d(x, kernel, strides, padding):
  return jax.lax.conv_general_dilated(x, kernel, tuple(strides), tuple(padding),
                                      dimension_numbers=_DN_2D)


@jax.custom_vjp
def _matmul(x, kernel):
  """`x (..., I) @ kernel (I, O)`."""
  return jnp.einsum("...c,co->...o", x, kernel)


def _matmul_fwd(x, kernel):
  return _matmul(x, kernel), (x, kernel)


def _matmul_bwd(res, dy):
  x, kernel = res
  dx = jnp.einsum("...o,co->...c", dy, kernel)
  # The kernel gradient contracts the N*T*H*W positions of x and dy. XLA:CPU multiplies
  # the transposed first operand, written out in a transposed layout by its producer
  # (about 130 ms for a 51 MB activation on the 2-core CPU): the operand with fewer
  # channels goes first.
  c, o = kernel.shape
  x2, dy2 = x.reshape(-1, c), dy.reshape(-1, o)
  dk = x2.T @ dy2 if c <= o else (dy2.T @ x2).T
  return dx, dk


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _over_frames(x, kernel2d, strides2d, padding2d):
  """A 2-D convolution of every frame: `(N, T, H, W, I)` -> `(N, T, H', W', O)`."""
  n, t = x.shape[:2]
  y = _conv2d(x.reshape((n * t,) + x.shape[2:]), kernel2d, strides2d, padding2d)
  return y.reshape((n, t) + y.shape[1:])


def _over_planes(x, kernel2d, other: int, strides, padding):
  """A 2-D convolution over the planes of T and one spatial axis, for every position of
  the `other` spatial axis (2: H, 3: W), which the kernel does not span."""
  x = _subsample(x, other, strides[other - 1], padding[other - 1])
  spanned = 3 if other == 2 else 2
  # (N, other, T, spanned, C): the planes as a batch of images.
  xp = jnp.moveaxis(x, other, 1)
  n, o = xp.shape[:2]
  y = _conv2d(xp.reshape((n * o,) + xp.shape[2:]), kernel2d,
              (strides[0], strides[spanned - 1]), (padding[0], padding[spanned - 1]))
  return jnp.moveaxis(y.reshape((n, o) + y.shape[1:]), 1, other)


def _live_taps(kernel, size: int, pad: tuple[int, int]):
  """The kernel without its leading and trailing temporal taps that read only padding
  at temporal stride 1 (k_t = 3 over a clip of one frame: the middle tap), and the
  padding that keeps every output where it was."""
  kt, lo, hi = kernel.shape[0], pad[0], pad[1]
  out = size + lo + hi - kt + 1
  if out < 1:
    return kernel, pad
  first, last = max(0, lo - out + 1), min(kt - 1, lo + size - 1)
  if (first, last) == (0, kt - 1):
    return kernel, pad
  return kernel[first:last + 1], (lo - first, hi - (kt - 1 - last))


def _taps_side_by_side(x, kt: int, stride: int, pad: tuple[int, int]):
  """`(N, T', ..., k_t * I)`: the temporal taps each output reads, side by side in
  channels, for a kernel whose taps are stacked likewise (`_stack_taps(kernel, 2)`)."""
  taps = _taps(x, 1, kt, stride, pad)
  return taps[0] if kt == 1 else jnp.concatenate(taps, axis=-1)


def _shifted_sum(z, kt: int, pad: tuple[int, int]):
  """`y[:, t] = sum_d z_d[:, t + d - lo]` (zero outside the clip), for `z (N, T, ...,
  k_t * O)` holding the k_t taps' outputs `z_d` of every frame side by side: a k_t x 1
  x 1 window at temporal stride 1 applied after the channel contraction."""
  taps = _taps(z.reshape(z.shape[:-1] + (kt, z.shape[-1] // kt)), 1, kt, 1, pad)
  y = taps[0][..., 0, :]
  for d in range(1, kt):
    y = y + taps[d][..., d, :]
  return y


def _stack_taps(kernel, axis: int):
  """`(k_t, k_h, k_w, I, O)` -> `(k_h, k_w, ...)` with the k_t taps merged into the
  input (`axis=2`: `k_t * I`) or output (`axis=3`: `k_t * O`) channels, tap-major."""
  kt, kh, kw, c_in, c_out = kernel.shape
  return jnp.moveaxis(kernel, 0, axis).reshape((kh, kw) + ((kt * c_in, c_out) if axis == 2
                                                           else (c_in, kt * c_out)))


def _frame_groups(size: int, kt: int, pad: tuple[int, int]):
  """[(first, stop, d0, d1)]: the runs of frames [first, stop) of a clip of `size`
  frames whose temporal taps d0..d1 feed an output at temporal stride 1; their other
  taps land in the padding (3 x 3 x 3, padding 1: the first frame feeds taps 0 and 1,
  the last taps 1 and 2, the others all three)."""
  lo, hi = pad
  out = size + lo + hi - kt + 1
  groups = []
  for f in range(size):
    taps = (max(0, f + lo - out + 1), min(kt - 1, f + lo))
    if groups and groups[-1][2:] == taps:
      groups[-1] = (groups[-1][0], f + 1) + taps
    else:
      groups.append((f, f + 1) + taps)
  return groups


def _taps_outputs(x, kernel, pad, channels, skip_padding: bool):
  """`(N, T, ..., k_t * O)`: every frame's k_t taps' outputs side by side, for
  `_shifted_sum`. With `skip_padding`, each run of frames of `_frame_groups` computes
  only the taps that reach an output (zeros for the others): at 4 frames, 3 x 3 x 3,
  10 of 12 frame-tap products. On the 2-vCPU AMD EPYC the whole 3x3x3 C3D's and
  CoST(a)'s inference steps took 0.96x the time, their train steps 0.97x and 0.99x
  (`_over_frames_skipping`, docs/performance.md)."""
  kt, c_out = kernel.shape[0], kernel.shape[-1]
  stacked = _stack_taps(kernel, 3)
  if not skip_padding:
    return channels(x, stacked)
  zs = []
  for first, stop, d0, d1 in _frame_groups(x.shape[1], kt, pad):
    z = channels(x[:, first:stop], stacked[..., d0 * c_out:(d1 + 1) * c_out])
    zs.append(_pad_axis(z, z.ndim - 1, (d0 * c_out, (kt - 1 - d1) * c_out)))
  return zs[0] if len(zs) == 1 else jnp.concatenate(zs, axis=1)


def _outputs_side_by_side(kernel, strides) -> bool:
  """Whether `_contract` puts the temporal taps' outputs side by side (temporal stride
  1, no more output channels than input ones) rather than their inputs."""
  kt, _, _, c_in, c_out = kernel.shape
  return strides[0] == 1 and kt > 1 and c_out <= c_in


def _contract(x, kernel, strides, padding, channels, skip_padding: bool = False):
  """`channels(x, kernel2d)`: the frames' k_h x k_w x I contraction, for a kernel of
  k_t temporal taps, in the form that writes less: the taps' inputs side by side
  (k_t * I channels in), or, at temporal stride 1 with no more output channels than
  input ones, the taps' outputs side by side (k_t * O out; `_taps_outputs`, which
  `skip_padding` passes on) summed shifted in time. On a 2-vCPU AMD EPYC the second
  took 0.62x to 0.98x the first's forward time for the R50's 3 x 1 x 1 and 3 x 3 x 3
  layers, 0.82x to 1.11x its train-like step, and 0.78x to 0.96x the whole C3D, 3x3x3
  C3D and CoST(a) train steps (docs/performance.md)."""
  kt = kernel.shape[0]
  if _outputs_side_by_side(kernel, strides):
    z = _taps_outputs(x, kernel, padding[0], channels, skip_padding)
    return _shifted_sum(z, kt, padding[0])
  return channels(_taps_side_by_side(x, kt, strides[0], padding[0]), _stack_taps(kernel, 2))


def _over_time(x, kernel, strides, padding):
  """k_t x 1 x 1: matrix products over channels (`_contract`)."""
  x = _subsample(_subsample(x, 2, strides[1], padding[1]), 3, strides[2], padding[2])
  return _contract(x, kernel, strides, padding, lambda x, k: _matmul(x, k[0, 0]))


def _with_gradient_of(forward, reference):
  """`forward(x, kernel, strides, padding)` with the gradient of `reference`, a form of
  the same function whose own forward is slower but whose gradient is faster or smaller.
  `strides` and `padding` must be tuples (hashable)."""

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
  def f(x, kernel, strides, padding):
    return forward(x, kernel, strides, padding)

  def f_fwd(x, kernel, strides, padding):
    return forward(x, kernel, strides, padding), (x, kernel)

  def f_bwd(strides, padding, res, dy):
    return jax.vjp(lambda x, k: reference(x, k, strides, padding), *res)[1](dy)

  f.defvjp(f_fwd, f_bwd)
  return functools.wraps(forward)(f)


def _time_planes(x, kernel, strides, padding):
  """k_t x 1 x 1 (k_t > 1) as one 2-D convolution over the (T, H*W) plane of every clip.
  On the 2-vCPU AMD EPYC, for the R50 C3D's seven 3 x 1 x 1 layers, its forward took
  0.68x to 0.99x `_over_time`'s matrix products' time, but its own train-like step up to
  1.28x theirs; with their gradient (`_over_time_planes`), 0.86x to 1.03x
  (docs/performance.md)."""
  x = _subsample(_subsample(x, 2, strides[1], padding[1]), 3, strides[2], padding[2])
  n, t, h, w, c = x.shape
  y = _conv2d(x.reshape(n, t, h * w, c), kernel[:, 0], (strides[0], 1),
              (padding[0], (0, 0)))
  return y.reshape((n, y.shape[1], h, w, y.shape[-1]))


_over_time_planes = _with_gradient_of(_time_planes, _over_time)


def _over_frames_taps(x, kernel, strides, padding, skip_padding=False):
  """k_t x k_h x k_w by 2-D convolutions of the frames (`_contract`)."""
  return _contract(x, kernel, strides, padding,
                   lambda x, k: _over_frames(x, k, strides[1:], padding[1:]), skip_padding)


def _frame_taps_skipping(x, kernel, strides, padding):
  """`_over_frames_taps` computing no tap that lands only in the padding. Its own
  gradient saves every run of frames for the kernel gradient, a copy of the input: the
  3x3x3 C3D train step's memory 1.10x on the CPU; 1.03x with the gradient of the form
  that computes every tap (`_over_frames_skipping`), for the same time."""
  return _over_frames_taps(x, kernel, strides, padding, skip_padding=True)


_over_frames_skipping = _with_gradient_of(_frame_taps_skipping, _over_frames_taps)


def conv_2d(x, kernel, strides, padding):
  """`conv_3d` computed by 2-D convolutions and matrix products (module docstring)."""
  if strides[0] == 1:
    kernel, pad_t = _live_taps(kernel, x.shape[1], padding[0])
    padding = (pad_t,) + tuple(padding[1:])
  kt, kh, kw = kernel.shape[:3]
  if kh == kw == 1:
    if kt == 1:
      return _over_time(x, kernel, strides, padding)
    return _over_time_planes(x, kernel, tuple(strides), tuple(padding))
  if kt > 1 and kh == 1:
    return _over_planes(x, kernel[:, 0], 2, strides, padding)
  if kt > 1 and kw == 1:
    return _over_planes(x, kernel[:, :, 0], 3, strides, padding)
  # One 2-D convolution of the frames (faster than k_t convolutions summed).
  if (_outputs_side_by_side(kernel, strides)
      and len(_frame_groups(x.shape[1], kt, padding[0])) > 1):
    return _over_frames_skipping(x, kernel, tuple(strides), tuple(padding))
  return _over_frames_taps(x, kernel, strides, padding)


def conv_3d(x, kernel, strides, padding):
  return jax.lax.conv_general_dilated(x, kernel, tuple(strides), tuple(padding),
                                      dimension_numbers=_DN_3D)


def conv(x: jax.Array, kernel: jax.Array, strides=1, padding: Padding = "SAME",
         impl: str = "auto") -> jax.Array:
  """Cross-correlation of clips `(N, T, H, W, I)` with a `(k_t, k_h, k_w, I, O)` kernel.

  Args:
    strides: an int or (s_t, s_h, s_w).
    padding: 'SAME', 'VALID' or ((lo, hi),) * 3 over (T, H, W), zeros.
    impl: '3d', '2d' or 'auto' (module docstring).
  Returns:
    `(N, T', H', W', O)`, as `jax.lax.conv_general_dilated` gives it.
  """
  strides = _triple(strides)
  padding = explicit_padding(x.shape, kernel.shape[:3], strides, padding)
  if resolve(impl) == "3d":
    return conv_3d(x, kernel, strides, padding)
  return conv_2d(x, kernel, strides, padding)


def _reduce_window(x, init, op, window, strides, padding):
  return jax.lax.reduce_window(x, init, op, tuple(window), tuple(strides), tuple(padding))


def _pool(x, init, op, window, strides, padding: Padding, impl: str):
  """`reduce_window` of clips over (T, H, W), padded with `init`: one 5-D window ('3d'),
  or a 2-D window over the frames then a 1-D one over time ('2d'). Max and sum are
  separable, and the first maximum in (t, h, w) order is the first in time of the
  first in each frame, so gradients go to the same element in both."""
  window, strides = _triple(window), _triple(strides)
  pads = explicit_padding(x.shape, window, strides, padding)
  if resolve(impl) == "3d":
    return _reduce_window(x, init, op, (1,) + window + (1,), (1,) + strides + (1,),
                          ((0, 0),) + pads + ((0, 0),))
  if window[1:] != (1, 1) or strides[1:] != (1, 1) or pads[1:] != ((0, 0), (0, 0)):
    n, t = x.shape[:2]
    y = _reduce_window(x.reshape((n * t,) + x.shape[2:]), init, op,
                       (1,) + window[1:] + (1,), (1,) + strides[1:] + (1,),
                       ((0, 0),) + pads[1:] + ((0, 0),))
    x = y.reshape((n, t) + y.shape[1:])
  if window[0] != 1 or strides[0] != 1 or pads[0] != (0, 0):
    n, t, h, w, c = x.shape
    y = _reduce_window(x.reshape(n, t, h * w * c), init, op, (1, window[0], 1),
                       (1, strides[0], 1), ((0, 0), pads[0], (0, 0)))
    x = y.reshape((n, y.shape[1], h, w, c))
  return x


def _window_taps(x, window, strides, pads, value):
  """The strided slices of `x` (padded with `value`) that each tap of a (t, h, w)
  window reads, taps in (t, h, w) order."""
  x = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=value)
  out = [(x.shape[a + 1] - window[a]) // strides[a] + 1 for a in range(3)]
  taps = []
  for offset in itertools.product(*(range(k) for k in window)):
    start = (0,) + offset + (0,)
    limit = (x.shape[0],) + tuple(o + s * (n - 1) + 1 for o, s, n in
                                  zip(offset, strides, out)) + (x.shape[-1],)
    taps.append(jax.lax.slice(x, start, limit, (1,) + tuple(strides) + (1,)))
  return taps


def max_pool(x, window, strides=1, padding: Padding = "VALID", impl: str = "auto"):
  """Max pooling of clips `(N, T, H, W, C)` over a (t, h, w) `window` (`nn.max_pool`'s
  result: padding counts as -inf).

  '2d' takes the maximum of the window's strided slices and sends the gradient to the
  first maximum in (t, h, w) order, as `reduce_window`'s does (`_max_of_taps`); XLA:CPU
  computes `reduce_window`'s gradient from index arrays the size of the input (on the
  2-core CPU, the R50 stem and res2 pools took about 0.4 s of a 3 s training step that
  way)."""
  if resolve(impl) == "3d":
    return _pool(x, -jnp.inf, jax.lax.max, window, strides, padding, impl)
  window, strides = _triple(window), _triple(strides)
  pads = explicit_padding(x.shape, window, strides, padding)
  # Over (h, w), then over t: the first maximum of each frame's window, then the first
  # in time of those, is the first in (t, h, w) order (k_h k_w + k_t taps, not their
  # product).
  for keep in ((1, 2), (0,)):
    w = tuple(k if a in keep else 1 for a, k in enumerate(window))
    if w == (1, 1, 1) and all(strides[a] == 1 and pads[a] == (0, 0) for a in keep):
      continue
    st = tuple(s if a in keep else 1 for a, s in enumerate(strides))
    pd = tuple(p if a in keep else (0, 0) for a, p in enumerate(pads))
    x = _max_of_taps(x, w, st, pd, x.shape)
  return x


def _first_max(taps):
  """The maximum of `taps`, each replacing the maximum so far only when larger, and the
  index of the first tap that holds it."""
  index = jnp.uint8 if len(taps) <= 256 else jnp.int32
  y, first = taps[0], jnp.zeros(taps[0].shape, index)
  for d, tap in enumerate(taps[1:], 1):
    larger = tap > y
    y, first = jnp.where(larger, tap, y), jnp.where(larger, index(d), first)
  return y, first


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_of_taps(x, window, strides, pads, shape):
  """The maximum over a (t, h, w) window of `x` (of `shape`) padded with -inf; its
  gradient goes to the first maximum in (t, h, w) order, as `reduce_window`'s does."""
  return _first_max(_window_taps(x, window, strides, pads, -jnp.inf))[0]


def _max_of_taps_fwd(x, window, strides, pads, shape):
  return _first_max(_window_taps(x, window, strides, pads, -jnp.inf))  # (y, residual)


def _max_of_taps_bwd(window, strides, pads, shape, first, dy):
  # Each tap's share of dy goes back through the tap's strided slice (its transpose:
  # an interior-padded copy). JAX's own gradient of the chain of `where`s is a chain of
  # selects per tap, which XLA:CPU recomputes for every tap and element in the fusion
  # that scatters them: the R50 stem pool's took 186 ms of a 2.5 s C2D step (traced),
  # 20 ms this way (docs/performance.md).
  zero = jnp.zeros((), dy.dtype)
  shares = [jnp.where(first == d, dy, zero) for d in range(math.prod(window))]
  taps = jax.linear_transpose(lambda x: _window_taps(x, window, strides, pads, 0.0),
                              jax.ShapeDtypeStruct(shape, dy.dtype))
  return taps(shares)


_max_of_taps.defvjp(_max_of_taps_fwd, _max_of_taps_bwd)


def avg_pool(x, window, strides=1, padding: Padding = "VALID", impl: str = "auto"):
  """Average pooling of clips over a (t, h, w) `window`; padding counts as zeros in the
  average (`nn.avg_pool`'s default)."""
  window = _triple(window)
  total = _pool(x, 0.0, jax.lax.add, window, strides, padding, impl)
  return total / (window[0] * window[1] * window[2])


class Conv(nn.Module):
  """`nn.Conv` over clips (same parameters: `kernel` `(k_t, k_h, k_w, I, O)`, `bias`),
  run by `conv` with `impl`."""
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: Padding = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        tuple(self.kernel_size) + (x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv(x, kernel, self.strides, self.padding, self.impl)
    return y if bias is None else y + bias
