"""The video ResNet family: shapes, parameter counts, gradients, learning, time mixing."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from conftest import random_variables
from cost_jax import models
from cost_jax.models import ResNet3D, ResNetTiny
from cost_jax.models.resnet3d import VARIANTS

# docs/design.md §2, 400 classes, BatchNorm scale and bias counted.
R50_PARAMS = {"c2d": 24_327_632, "c3d": 29_013_456, "costa": 24_333_968,
              "costb": 25_085_464}
TINY_CLIP = (2, 4, 32, 32, 3)


def _abstract_variables(model, shape):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("variant", sorted(R50_PARAMS))
def test_r50_parameter_counts_match_the_paper(variant):
  variables = _abstract_variables(ResNet3D(depth=50, variant=variant), (1, 8, 224, 224, 3))
  assert _count(variables["params"]) == R50_PARAMS[variant]


@pytest.mark.parametrize("depth", [50, 101])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_full_size_output_shapes(depth, variant):
  model = ResNet3D(depth=depth, variant=variant, num_classes=400)
  x = jax.ShapeDtypeStruct((2, 8, 224, 224, 3), jnp.float32)
  variables = _abstract_variables(model, x.shape)
  out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
  assert out.shape == (2, 400) and out.dtype == jnp.float32
  # res4 and res5 are the deep stages: R101 has 23 blocks in res4.
  n_res4 = len([k for k in variables["params"] if k.startswith("res4_")])
  assert n_res4 == {50: 6, 101: 23}[depth]


def test_cost_and_c3d_parameter_overheads():
  counts = {v: _count(_abstract_variables(ResNet3D(variant=v), (1, 8, 224, 224, 3))
                      ["params"]) for v in ("c2d", "costa", "c3d_full", "r2plus1d")}
  assert counts["costa"] <= counts["c2d"] * 1.01
  # R(2+1)D's middle width makes each factorised pair about as large as a 3x3x3 conv.
  assert abs(counts["r2plus1d"] - counts["c3d_full"]) / counts["c3d_full"] < 0.01


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tiny_forward_and_every_parameter_gets_a_gradient(variant):
  model = ResNetTiny(variant=variant, num_classes=5, dropout_rate=0.0)
  x = jax.random.normal(jax.random.key(0), TINY_CLIP)
  variables = random_variables(model, x)
  labels = jnp.array([1, 3])

  def loss_fn(params):
    logits, _ = model.apply({**variables, "params": params}, x, train=True,
                            mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  grads = jax.jit(jax.grad(loss_fn))(variables["params"])
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(p) for p, g in flat if not np.any(np.asarray(g) != 0)]
  assert not dead, f"parameters without gradient: {dead}"
  assert jax.eval_shape(model.apply, variables, x).shape == (2, 5)


@pytest.mark.parametrize("variant", ["costa", "costb"])
def test_tiny_model_loss_falls(variant):
  model = ResNetTiny(variant=variant, num_classes=4, dropout_rate=0.0)
  x = jax.random.normal(jax.random.key(0), (8, 4, 32, 32, 3))
  labels = jnp.arange(8) % 4
  variables = random_variables(model, x)
  tx = optax.sgd(0.05, momentum=0.9)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(p):
      logits, state = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                  mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), state
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state["batch_stats"], opt_state, loss

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  losses = []
  for _ in range(15):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("variant,invariant", [("c2d", True), ("costa", False),
                                               ("costb", False), ("c3d", False)])
def test_swapping_frames_within_pooling_pairs(variant, invariant):
  """C2D only sees time through the pairwise max pool after res2; CoST mixes time."""
  model = ResNetTiny(variant=variant, num_classes=5)
  x = jax.random.normal(jax.random.key(0), TINY_CLIP)
  variables = random_variables(model, x)
  swapped = x[:, jnp.array([1, 0, 3, 2])]
  apply = jax.jit(model.apply)
  a, b = apply(variables, x), apply(variables, swapped)
  assert np.allclose(a, b, atol=1e-5) == invariant


def test_bfloat16_compute():
  model = ResNetTiny(variant="costb", num_classes=5, dtype=jnp.bfloat16)
  x = jax.random.normal(jax.random.key(0), TINY_CLIP)
  variables = random_variables(model, x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  assert jax.jit(model.apply)(variables, x).dtype == jnp.float32


def test_remat_gives_the_same_gradients():
  x = jax.random.normal(jax.random.key(0), TINY_CLIP)
  plain = ResNetTiny(variant="costb", num_classes=5, dropout_rate=0.0)
  variables = random_variables(plain, x)

  def grads(model):
    def loss(p):
      out, _ = model.apply({**variables, "params": p}, x, train=True,
                           mutable=["batch_stats"])
      return (out ** 2).sum()
    return jax.jit(jax.grad(loss))(variables["params"])

  remat = ResNetTiny(variant="costb", num_classes=5, dropout_rate=0.0, remat=True)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               grads(plain), grads(remat))


def _model_config(**overrides):
  config = ml_collections.ConfigDict(dict(variant="costa", depth=14, width=8,
                                          num_classes=5, dropout_rate=0.5,
                                          dtype="float32"))
  config.update(overrides)
  return config


@pytest.mark.parametrize("field,value", [("variant", "cost"), ("depth", 34),
                                         ("dtype", "float16")])
def test_create_model_names_the_wrong_field(field, value):
  with pytest.raises(ValueError, match=f"config.model.{field}"):
    models.create_model(_model_config(**{field: value}))


def test_create_model_builds_the_configured_network():
  model = models.create_model(_model_config(variant="costb"), num_classes=7)
  assert (model.variant, model.depth, model.num_classes) == ("costb", 14, 7)
