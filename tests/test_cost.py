"""The CoST layer against docs/design.md §1, through independent formulations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cost_jax.models.cost import CoST, fused_kernel

STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 1, 1)]


def _input(shape=(2, 6, 9, 7, 4), seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


def _plane_conv(x, kernel, axes, strides):
  """A view as 2-D convolutions over the planes spanned by `axes` of (T, H, W)."""
  # Move the two spanned axes to (1, 2), the third to the batch.
  other = ({1, 2, 3} - set(axes)).pop()
  perm = (0, other) + tuple(axes) + (4,)
  xp = jnp.transpose(x, perm)
  n, o, a, b, c = xp.shape
  y = jax.lax.conv_general_dilated(
      xp.reshape(n * o, a, b, c), kernel, (strides[axes[0] - 1], strides[axes[1] - 1]),
      ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
  y = y.reshape(n, o, *y.shape[1:])[:, ::strides[other - 1]]
  return jnp.transpose(y, np.argsort(perm))


def _reference(x, kernel, coefficients, strides):
  """y = sum_v a_v * view_v, each view a 2-D conv on its planes; coefficients (3, O)."""
  views = [_plane_conv(x, kernel, axes, strides) for axes in ((2, 3), (1, 3), (1, 2))]
  return sum(coefficients[v] * views[v] for v in range(3))


def _params(layer, x, alpha=None, seed=1):
  params = layer.init(jax.random.key(seed), x)["params"]
  if alpha is not None:
    params = {**params, "alpha": jnp.asarray(alpha, jnp.float32)}
  return params


@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("fused", [False, True])
def test_hw_only_equals_c2d_conv(strides, fused):
  x = _input()
  layer = CoST(5, "a", strides, fused=fused)
  alpha = np.stack([np.zeros(5), np.full(5, -np.inf), np.full(5, -np.inf)])
  params = _params(layer, x, alpha)
  conv = nn.Conv(5, (1, 3, 3), strides, ((0, 0), (1, 1), (1, 1)), use_bias=False)
  expected = conv.apply({"params": {"kernel": params["kernel"][None]}}, x)
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected, atol=1e-5)


@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("fused", [False, True])
def test_costa_matches_three_plane_reference(strides, fused):
  x = _input()
  layer = CoST(5, "a", strides, fused=fused)
  alpha = jax.random.normal(jax.random.key(3), (3, 5))
  params = _params(layer, x, alpha)
  expected = _reference(x, params["kernel"], jax.nn.softmax(alpha, axis=0), strides)
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected,
                             atol=1e-5, rtol=1e-5)


def test_fused_kernel_has_19_taps_and_equals_views():
  x = _input()
  views, fused = CoST(5, "a", fused=False), CoST(5, "a", fused=True)
  params = _params(views, x, jax.random.normal(jax.random.key(4), (3, 5)))
  np.testing.assert_allclose(fused.apply({"params": params}, x),
                             views.apply({"params": params}, x), atol=1e-5)
  k = fused_kernel(jnp.ones((3, 3, 1, 1)), jnp.ones((3, 1)) / 3)
  assert int((k != 0).sum()) == 19


@pytest.mark.parametrize("strides", [(1, 1, 1), (1, 2, 2)])
def test_fused_path_gradients_equal_the_views_path(strides):
  x = _input()
  views, fused = CoST(5, "a", strides, fused=False), CoST(5, "a", strides, fused=True)
  params = _params(views, x, jax.random.normal(jax.random.key(5), (3, 5)))

  def grads(layer):
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x)))
    return jax.grad(loss, argnums=(0, 1))(params, x)

  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               grads(views), grads(fused))


def test_alpha_initialisation():
  x = _input()
  params = _params(CoST(5, "a"), x)
  np.testing.assert_allclose(params["alpha"][:, 0], [0.7, -0.7, -0.7])
  coefficients = jax.nn.softmax(params["alpha"], axis=0)[:, 0]
  np.testing.assert_allclose(coefficients, [0.670, 0.165, 0.165], atol=2e-3)


def _costb_coefficients(layer, params, x):
  _, state = layer.apply({"params": params}, x, mutable=["intermediates"])
  return state["intermediates"]["coefficients"][0]


def test_costb_coefficients_normalised_and_input_dependent():
  x = _input((3, 6, 9, 7, 4))
  layer = CoST(5, "b")
  params = layer.init(jax.random.key(1), x)["params"]
  # Larger F1/F2 than the 0.01 init, so that input dependence shows above rounding.
  params = jax.tree.map(lambda p: p * 100.0, params)
  params["kernel"] = params["kernel"] / 100.0
  coefficients = _costb_coefficients(layer, params, x)
  assert coefficients.shape == (3, 5, 3)
  assert (coefficients > 0).all()
  np.testing.assert_allclose(coefficients.sum(-1), 1.0, atol=1e-6)
  assert not np.allclose(coefficients[0], coefficients[1], atol=1e-4)
  other = _costb_coefficients(layer, params, 3.0 * _input((3, 6, 9, 7, 4), seed=7))
  assert not np.allclose(coefficients, other, atol=1e-4)


def test_costb_matches_reference():
  x = _input()
  layer = CoST(5, "b", (1, 2, 2))
  params = layer.init(jax.random.key(1), x)["params"]
  views = [_plane_conv(x, params["kernel"], a, (1, 2, 2)) for a in ((2, 3), (1, 3), (1, 2))]
  pooled = np.stack([v.max(axis=(1, 2, 3)) for v in views], -1)       # (N, O, 3)
  q = np.einsum("nov,op->npv", pooled, params["fc1"]["kernel"])
  r = q @ np.asarray(params["fc2"]["kernel"])
  coefficients = jax.nn.softmax(r, axis=-1)
  expected = sum(coefficients[:, None, None, None, :, v] * views[v] for v in range(3))
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected, atol=1e-5)


@pytest.mark.parametrize("variant", ["a", "b"])
def test_time_is_mixed(variant):
  """Shuffling frames permutes a C2D conv's output but changes CoST's."""
  x = _input((2, 6, 8, 8, 4))
  perm = np.array([3, 0, 5, 1, 4, 2])
  layer = CoST(5, variant)
  params = layer.init(jax.random.key(2), x)["params"]
  y, y_shuffled = (layer.apply({"params": params}, v) for v in (x, x[:, perm]))
  assert not np.allclose(y[:, perm], y_shuffled, atol=1e-3)
  c2d = nn.Conv(5, (1, 3, 3), padding=((0, 0), (1, 1), (1, 1)), use_bias=False)
  cp = c2d.init(jax.random.key(2), x)
  np.testing.assert_allclose(c2d.apply(cp, x)[:, perm], c2d.apply(cp, x[:, perm]), atol=1e-6)


@pytest.mark.parametrize("variant", ["a", "b"])
def test_bfloat16_compute_keeps_float32_params(variant):
  x = _input()
  layer = CoST(5, variant, dtype=jnp.bfloat16)
  params = layer.init(jax.random.key(1), x)["params"]
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  y = layer.apply({"params": params}, x)
  assert y.dtype == jnp.bfloat16
  full = CoST(5, variant).apply({"params": params}, x)
  np.testing.assert_allclose(y.astype(jnp.float32), full, atol=0.1, rtol=0.05)
