"""The two implementations of video convolutions and pools (`config.model.conv_impl`):
the 2-D lowering equals XLA's 3-D ops, forward and backward, in every case the networks
use (temporal strides, asymmetric padding, the planes of CoST's views), and whole
networks give the same outputs and gradients with the same parameters."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_variables
from cost_jax import models
from cost_jax.models import video_ops

# (kernel (t, h, w), strides, padding): one case per branch of `video_ops.conv_2d`, with
# the strides and paddings of the networks (I3D's 7x7x7 /2 stem, PyTorchVideo's 5x7x7
# stem and temporal strides, shortcuts) and asymmetric ones.
CONV_CASES = [
    ((1, 1, 1), (1, 1, 1), "VALID"),
    ((1, 1, 1), (1, 2, 2), "VALID"),                       # a strided shortcut
    ((1, 1, 1), (2, 2, 2), ((0, 0), (0, 1), (1, 0))),
    ((3, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (0, 0))),      # c3d's conv1
    ((3, 1, 1), (2, 1, 1), "SAME"),                        # R(2+1)D's temporal stride
    ((3, 1, 1), (2, 2, 2), ((1, 0), (0, 0), (0, 0))),
    ((1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1))),
    ((1, 7, 7), (1, 2, 2), ((0, 0), (3, 3), (3, 3))),      # the ResNet stem
    ((3, 3, 3), (1, 1, 1), ((1, 1),) * 3),                 # c3d_full, fused CoST(a)
    ((3, 3, 3), (2, 2, 2), ((1, 0), (0, 2), (1, 1))),
    ((7, 7, 7), (2, 2, 2), ((3, 3),) * 3),                 # the I3D stem
    ((5, 7, 7), (1, 2, 2), "SAME"),                        # PyTorchVideo's I3D stem
    ((3, 1, 3), (2, 2, 2), ((1, 1), (0, 0), (1, 1))),      # CoST's T-W view
    ((3, 3, 1), (1, 2, 1), ((1, 1), (1, 1), (0, 0))),      # CoST's T-H view
    ((2, 1, 3), (1, 1, 2), ((0, 1), (1, 0), (2, 0))),
    # (frames, in, out channels) other than (7, 3, 4): no more outputs than inputs (the
    # taps' outputs summed shifted in time), and clips whose padding some taps only read.
    ((3, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (0, 0)), (7, 4, 3)),
    ((3, 3, 3), (1, 2, 2), ((2, 0), (1, 1), (0, 1)), (7, 4, 4)),
    ((3, 3, 3), (1, 1, 1), ((1, 1),) * 3, (4, 4, 3)),        # edge frames skip 1 tap
    ((5, 3, 3), (1, 1, 1), ((2, 2), (1, 1), (1, 1)), (3, 4, 4)),
    ((3, 3, 3), (1, 1, 1), ((1, 1),) * 3, (1, 4, 3)),        # one frame: the middle tap
    ((3, 1, 3), (1, 1, 1), ((1, 1), (0, 0), (1, 1)), (1, 3, 4)),
    ((5, 1, 1), (1, 1, 1), ((4, 0), (0, 0), (0, 0)), (2, 4, 3)),
    ((3, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (0, 0)), (1, 3, 4)),
]


def _close(a, b, rtol=1e-5):
  """Equal to `rtol` of the largest magnitude (float32 sums in another order)."""
  a, b = np.asarray(a), np.asarray(b)
  assert a.shape == b.shape
  np.testing.assert_allclose(a, b, rtol=0, atol=rtol * max(np.abs(a).max(), 1e-30))


@pytest.mark.parametrize("kernel,strides,padding,sizes",
                         [case + ((7, 3, 4),) * (len(case) == 3) for case in CONV_CASES])
def test_conv_2d_equals_conv_3d_forward_and_backward(kernel, strides, padding, sizes):
  frames, c_in, c_out = sizes
  x = jax.random.normal(jax.random.key(0), (2, frames, 9, 8, c_in))
  w = (jax.random.normal(jax.random.key(1), kernel + (c_in, c_out))
       / np.sqrt(np.prod(kernel) * c_in))
  probe = jax.random.normal(jax.random.key(2), video_ops.conv(x, w, strides, padding,
                                                               "3d").shape)

  @functools.partial(jax.jit, static_argnums=0)
  def value_and_grads(impl, x, w):
    f = lambda x, w: jnp.sum(video_ops.conv(x, w, strides, padding, impl) * probe)
    return video_ops.conv(x, w, strides, padding, impl), jax.grad(f, (0, 1))(x, w)

  y3, (gx3, gw3) = value_and_grads("3d", x, w)
  y2, (gx2, gw2) = value_and_grads("2d", x, w)
  _close(y2, y3)
  _close(gx2, gx3)
  _close(gw2, gw3)


def test_conv_2d_skips_taps_that_read_only_padding():
  # A 3x3x3 kernel over a clip of one frame (CoST's res5 at 8x112^2): only the middle
  # temporal tap reads the frame, so a 3x3 convolution with a third of the kernel runs.
  x, w = jnp.ones((2, 1, 4, 4, 8)), jnp.ones((3, 3, 3, 8, 8))
  jaxpr = jax.make_jaxpr(lambda x, w: video_ops.conv(x, w, 1, "SAME", "2d"))(x, w)
  assert [e.invars[1].aval.shape for e in _eqns(jaxpr.jaxpr)
          if e.primitive.name == "conv_general_dilated"] == [(3, 3, 8, 8)]


def test_conv_2d_skips_taps_whose_outputs_land_in_the_padding():
  # 3x3x3 over 4 frames, padding 1: the first frame feeds taps 0 and 1, the middle two
  # all three, the last taps 1 and 2 (output channels: the taps' outputs side by side).
  x, w = jnp.ones((2, 4, 4, 4, 8)), jnp.ones((3, 3, 3, 8, 8))
  jaxpr = jax.make_jaxpr(lambda x, w: video_ops.conv(x, w, 1, "SAME", "2d"))(x, w)
  assert sorted((e.invars[0].aval.shape[0], e.invars[1].aval.shape[-1])
                for e in _eqns(jaxpr.jaxpr)
                if e.primitive.name == "conv_general_dilated") == [(2, 16), (2, 16), (4, 24)]


def _eqns(jaxpr):
  """The equations of `jaxpr` and of the jaxprs inside it (custom gradients, calls)."""
  for e in jaxpr.eqns:
    yield e
    for p in e.params.values():
      inner = getattr(p, "jaxpr", p)
      if hasattr(inner, "eqns"):
        yield from _eqns(inner)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("window,strides,padding", [
    ((1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1))),      # the ResNet stem pool
    ((2, 1, 1), (2, 1, 1), "VALID"),                       # after res2
    ((3, 3, 3), (1, 1, 1), "SAME"),                        # Inception branch 4
    ((3, 3, 3), (2, 2, 2), "SAME"),
])
def test_pools_equal_flax_and_each_other_with_ties(kind, window, strides, padding):
  # After a ReLU, many equal maxima: the gradient must go to the same one.
  x = jax.nn.relu(jax.random.normal(jax.random.key(0), (2, 5, 9, 8, 3)))
  ours = {"max": video_ops.max_pool, "avg": video_ops.avg_pool}[kind]
  flax_pool = {"max": nn.max_pool, "avg": nn.avg_pool}[kind]
  grads = {}
  for impl in ("3d", "2d"):
    y = ours(x, window, strides, padding, impl)
    _close(y, flax_pool(x, window, strides, padding))
    grads[impl] = jax.grad(lambda x: jnp.sum(jnp.sin(ours(x, window, strides, padding,
                                                          impl))))(x)
  np.testing.assert_array_equal(grads["2d"] != 0, grads["3d"] != 0)
  _close(grads["2d"], grads["3d"])


def test_head_average_pool_equals_flax():
  x = jax.random.normal(jax.random.key(0), (2, 3, 8, 8, 3))
  for impl in ("3d", "2d"):  # Inception's head pool
    _close(video_ops.avg_pool(x, (2, 7, 7), 1, "VALID", impl), nn.avg_pool(x, (2, 7, 7)))


def test_auto_is_2d_on_cpus_and_gpus_and_3d_elsewhere():
  assert video_ops.resolve("auto", "cpu") == video_ops.resolve("auto", "gpu") == "2d"
  assert video_ops.resolve("auto", "tpu") == "3d"
  assert video_ops.resolve("3d", "cpu") == "3d"
  with pytest.raises(ValueError, match="conv_impl='2D'"):
    video_ops.resolve("2D")


def test_conv_module_has_nn_conv_parameters():
  x = jnp.ones((1, 4, 6, 6, 3))
  ours = video_ops.Conv(5, (3, 3, 3), (1, 2, 2), "SAME")
  theirs = nn.Conv(5, (3, 3, 3), (1, 2, 2), "SAME")
  v_ours, v_theirs = ours.init(jax.random.key(0), x), theirs.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_theirs)
  # The same initial values, and the same function of them.
  jax.tree.map(np.testing.assert_array_equal, v_ours, v_theirs)
  _close(ours.apply(v_theirs, x), theirs.apply(v_theirs, x))


class _Mixed(models.ResNet3D):
  """A tiny ResNet whose blocks hold every kind of block the variants use, so that two
  networks check them all (a network per variant compiles seven times as long)."""
  mix: tuple = ()

  def layout(self):
    conv1_t, conv2, extra = self.mix
    return models.resnet3d.Layout(conv1_t=tuple((t,) for t in conv1_t),
                                  conv2=tuple((k,) for k in conv2), **extra)


MIXES = {
    # The paper's variants: c3d's 3x1x1 conv1, c3d_full, R(2+1)D, CoST(a) fused, CoST(b).
    "paper": ((3, 1, 3, 1), ("3d", "r2plus1d", "costa", "costb"), {}),
    # PyTorchVideo's layouts: a 5x7x7 stem, temporal strides, R(2+1)D as PyTorchVideo
    # builds it, no stem pool, a head pool; c2d and CoST(a) as three views.
    "pytorchvideo": ((1, 3, 1, 1), ("2d", "r2plus1d_tx", "costa", "2d"),
                     dict(stem_t=5, stem_pool=False, res2_pool=False,
                          stride_s=(2, 2, 2, 2), stride_t=(1, 1, 2, 2),
                          head_pool=(2, 3, 3))),
}


def _rel_close(a, b, rtol=1e-5):
  """Relative difference of the whole arrays below `rtol` (float32 sums reordered)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape
  assert np.linalg.norm(a - b) <= rtol * max(np.linalg.norm(a), 1e-30)


def _compare(make, x, grads=True):
  variables = random_variables(make(conv_impl="3d"), x)

  @functools.partial(jax.jit, static_argnums=0)
  def outputs(impl, params, x):
    model = make(conv_impl=impl)
    f = lambda p, x: model.apply({**variables, "params": p}, x)
    if not grads:
      return f(params, x), ()
    loss = lambda p, x: jnp.sum(f(p, x) * jnp.arange(f(p, x).shape[-1], dtype=jnp.float32))
    return f(params, x), jax.grad(loss, (0, 1))(params, x)

  out3, grads3 = outputs("3d", variables["params"], x)
  out2, grads2 = outputs("2d", variables["params"], x)
  _rel_close(out2, out3)
  jax.tree.map(_rel_close, grads2, grads3)


@pytest.mark.parametrize("mix", MIXES)
def test_resnets_agree_across_implementations(mix):
  """Logits, and gradients of every parameter and of the input (eval-mode BatchNorm
  keeps the comparison well conditioned), equal in both implementations."""
  make = functools.partial(_Mixed, depth=14, width=8, num_classes=6, mix=MIXES[mix],
                           variant="c2d", cost_fused=mix == "paper")
  _compare(make, jax.random.normal(jax.random.key(0), (2, 8, 32, 32, 3)))


@pytest.mark.parametrize("variant", ["i3d", "s3dg"])  # s3dg holds every unit of s3d
def test_inception_networks_agree_across_implementations(variant):
  make = functools.partial(models.InceptionV1Video, variant=variant, width=8, num_classes=6)
  _compare(make, jax.random.normal(jax.random.key(0), (2, 8, 32, 32, 3)), grads=False)


@pytest.mark.parametrize("separable,gating", [(False, False), (True, True)])
def test_inception_block_gradients_agree(separable, gating):
  from cost_jax.models import inception3d

  def make(conv_impl):
    conv = functools.partial(video_ops.Conv, use_bias=False, impl=conv_impl)
    unit = functools.partial(inception3d.Unit, separable=separable, conv=conv,
                             norm=functools.partial(nn.BatchNorm, use_running_average=True))
    return inception3d.InceptionBlock((4, 4, 6, 2, 4, 4), unit, gating, jnp.float32,
                                      conv_impl)

  class Block(nn.Module):
    conv_impl: str

    @nn.compact
    def __call__(self, x):
      return make(self.conv_impl)(x)

  _compare(Block, jax.random.normal(jax.random.key(0), (2, 4, 6, 6, 5)))
