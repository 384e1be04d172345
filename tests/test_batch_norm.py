"""`models.batch_norm.BatchNorm` against `nn.BatchNorm`: the same variables, outputs,
running statistics and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cost_jax.models.batch_norm import BatchNorm


def _run(cls, variables, x, train, dtype):
  module = cls(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype)

  def loss(params, x):
    y, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]},
                              x, mutable=["batch_stats"])
    # Weights that differ per position and channel, so that every term of the gradient
    # counts.
    w = jnp.cos(jnp.arange(y.size, dtype=jnp.float32)).reshape(y.shape)
    return jnp.sum(w * y.astype(jnp.float32) ** 2), (y, updates["batch_stats"])

  (_, (y, stats)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
      variables["params"], x)
  return y, stats, grads


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("train", [True, False])
def test_equals_flax_batch_norm(train, dtype):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(3.0, 2.0, (2, 3, 4, 5, 6)), dtype)
  ours = BatchNorm().init(jax.random.key(0), x)
  flax_vars = nn.BatchNorm(use_running_average=False).init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, flax_vars)
  variables = {"params": {"scale": jnp.asarray(rng.normal(1, 0.3, 6), jnp.float32),
                          "bias": jnp.asarray(rng.normal(0, 0.3, 6), jnp.float32)},
               "batch_stats": {"mean": jnp.asarray(rng.normal(0, 1, 6), jnp.float32),
                               "var": jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32)}}
  want = _run(nn.BatchNorm, variables, x, train, dtype)
  got = _run(BatchNorm, variables, x, train, dtype)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               rtol=tol, atol=tol * float(jnp.max(jnp.abs(b))))
  # The batch statistics moved the running ones in training only.
  moved = not np.allclose(got[1]["mean"], variables["batch_stats"]["mean"])
  assert moved == train


def test_gradient_through_the_returned_statistics():
  from cost_jax.models.batch_norm import normalise_batch
  x = jnp.asarray(np.random.default_rng(1).normal(1.0, 2.0, (3, 4, 5)), jnp.float32)
  a, b = jnp.arange(5.0), jnp.arange(5.0)[::-1]
  ones, zeros = jnp.ones(5), jnp.zeros(5)

  def ours(x):
    _, mean, var = normalise_batch(x, ones, zeros, jnp.float32(1e-5))
    return jnp.sum(a * mean + b * var)

  def reference(x):
    return jnp.sum(a * jnp.mean(x, (0, 1)) + b * jnp.var(x, (0, 1)))

  np.testing.assert_allclose(jax.grad(ours)(x), jax.grad(reference)(x), rtol=1e-4, atol=1e-6)
