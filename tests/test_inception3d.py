"""I3D, S3D and S3D-G: shapes, the separable and gated blocks, gradients, inflation."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import googlenet2d_reference as ref
from conftest import random_variables
from cost_jax.models import inception3d, pretrained
from cost_jax.models.inception3d import InceptionV1Video, SelfGating, Unit

TINY = functools.partial(InceptionV1Video, width=8, num_classes=5)


@pytest.mark.parametrize("variant", inception3d.VARIANTS)
def test_full_size_shapes_at_64x224x224(variant):
  model = InceptionV1Video(variant=variant, num_classes=400)
  x = jax.ShapeDtypeStruct((2, 64, 224, 224, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  logits, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  assert logits.shape == (2, 400) and logits.dtype == jnp.float32
  shapes = {k: v[0].shape for k, v in state["intermediates"].items()}
  assert shapes == {"stem": (2, 32, 28, 28, 192), "mixed3": (2, 32, 28, 28, 480),
                    "mixed4": (2, 16, 14, 14, 832), "mixed5": (2, 8, 7, 7, 1024)}
  gates = [k for k in traverse_util.flatten_dict(variables["params"], sep="/")
           if "gate" in k]
  assert (len(gates) == 1 + 4 * 9) == (variant == "s3dg")


@pytest.mark.parametrize("variant", inception3d.VARIANTS)
def test_small_clip_shapes(variant):
  model = TINY(variant=variant)
  x = jax.ShapeDtypeStruct((2, 8, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  logits, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  assert logits.shape == (2, 5)
  shapes = {k: v[0].shape for k, v in state["intermediates"].items()}
  assert shapes == {"stem": (2, 4, 4, 4, 24), "mixed3": (2, 4, 4, 4, 60),
                    "mixed4": (2, 2, 2, 2, 104), "mixed5": (2, 1, 1, 1, 128)}


def test_i3d_runs_on_a_small_clip():
  # S3D and S3D-G run in the inflation and gradient tests below.
  model = TINY(variant="i3d")
  x = jax.random.normal(jax.random.key(1), (2, 4, 16, 16, 3))
  variables = random_variables(model, x)
  logits = jax.jit(model.apply)(variables, x)
  assert logits.shape == (2, 5) and np.all(np.isfinite(logits))


def test_every_parameter_gets_a_gradient():
  # S3D-G holds every kind of parameter of the family (its non-separable units are
  # I3D's code path); compiling I3D's gradient too would only cost CI time.
  model = TINY(variant="s3dg", dropout_rate=0.0)
  x = jax.random.normal(jax.random.key(1), (2, 4, 16, 16, 3))
  variables = random_variables(model, x)

  def loss(params):
    logits, _ = model.apply({**variables, "params": params}, x, train=True,
                            mutable=["batch_stats"])
    return jnp.sum(logits ** 2)

  grads = traverse_util.flatten_dict(jax.jit(jax.grad(loss))(variables["params"]), sep="/")
  dead = [k for k, g in grads.items() if not np.any(np.asarray(g))]
  assert not dead, f"no gradient reaches {dead}"


def test_separable_unit_is_spatial_then_temporal_conv():
  unit = Unit(6, (3, 3, 3), (2, 2, 2), separable=True,
              conv=functools.partial(nn.Conv, use_bias=False),
              norm=functools.partial(nn.BatchNorm, use_running_average=True, epsilon=1e-3))
  x = jax.random.normal(jax.random.key(0), (2, 6, 10, 10, 4))
  variables = unit.init(jax.random.key(1), x)
  p, s = variables["params"], variables["batch_stats"]
  # A fresh temporal conv is the identity: its centre tap, nothing else.
  centre = np.zeros((3, 1, 1, 6, 6))
  centre[1, 0, 0] = np.eye(6)
  np.testing.assert_array_equal(p["temporal_conv"]["kernel"], centre)
  # Random weights and statistics, then the definition written out with lax.
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  variables = jax.tree.unflatten(tree, [jax.random.uniform(k, l.shape, minval=0.5,
                                                           maxval=1.5)
                                        for k, l in zip(keys, leaves)])
  p, s = variables["params"], variables["batch_stats"]

  def conv_bn_relu(x, kernel, strides, pad, bn_p, bn_s):
    y = jax.lax.conv_general_dilated(x, kernel, strides, pad,
                                     dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    y = (y - bn_s["mean"]) / jnp.sqrt(bn_s["var"] + 1e-3) * bn_p["scale"] + bn_p["bias"]
    return jax.nn.relu(y)

  y = conv_bn_relu(x, p["conv"]["kernel"], (1, 2, 2), ((0, 0), (1, 1), (1, 1)), p["bn"],
                   s["bn"])
  y = conv_bn_relu(y, p["temporal_conv"]["kernel"], (2, 1, 1), ((1, 1), (0, 0), (0, 0)),
                   p["temporal_bn"], s["temporal_bn"])
  assert p["conv"]["kernel"].shape == (1, 3, 3, 4, 6)
  assert p["temporal_conv"]["kernel"].shape == (3, 1, 1, 6, 6)
  np.testing.assert_allclose(unit.apply(variables, x), y, rtol=1e-5, atol=1e-5)


def test_self_gating_is_sigmoid_of_pooled_features_times_features():
  x = jax.random.normal(jax.random.key(0), (3, 4, 5, 5, 7))
  gate = SelfGating()
  variables = gate.init(jax.random.key(1), x)
  w = jax.random.normal(jax.random.key(2), (7, 7))
  y = gate.apply({"params": {"transform": {"kernel": w}}}, x)
  assert jax.tree.leaves(variables["params"])[0].shape == (7, 7)  # no bias
  expected = x * jax.nn.sigmoid(x.mean(axis=(1, 2, 3)) @ w)[:, None, None, None, :]
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def _inflated(variant, state_dict, shape, abstract=False):
  model = TINY(variant=variant)
  init = functools.partial(model.init, jax.random.key(0))
  x = jnp.zeros(shape)
  # Loading needs only shapes and dtypes; `abstract` skips computing the initial values.
  variables = jax.eval_shape(init, x) if abstract else jax.jit(init)(x)
  loaded, report = pretrained.load_imagenet(variables, state_dict)
  return model, jax.tree.map(
      lambda v: jnp.asarray(v) if isinstance(v, (np.ndarray, jax.Array)) else v,
      loaded), report


def test_inflated_s3d_on_identical_frames_equals_the_2d_googlenet():
  sd = ref.random_state_dict(width=8)
  # 32x32 keeps every pooled size even, where 'SAME' pools equal ceil-mode ones.
  frames = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  clip = np.repeat(frames[:, None], 4, axis=1)                 # (2, 4, 32, 32, 3)
  model, variables, report = _inflated("s3d", sd, clip.shape)
  # Jitted: one compilation costs less than running every op of either network eagerly.
  _, state = jax.jit(functools.partial(model.apply, mutable=["intermediates"]))(variables,
                                                                                 clip)
  video = np.asarray(state["intermediates"]["mixed5"][0])      # (2, T', 1, 1, 128)
  image = np.transpose(np.asarray(jax.jit(lambda f: ref.features(sd, f))(frames)),
                       (0, 2, 3, 1))
  assert video.shape[2:] == image.shape[1:] == (1, 1, 128)
  for t in range(video.shape[1]):
    np.testing.assert_allclose(video[:, t], image, rtol=1e-4, atol=1e-4)
  assert "fc.weight" in report.unused_keys and "aux1.conv.conv.weight" in report.unused_keys
  assert all("head" in k or "temporal" in k for k in report.kept_init)


def test_i3d_inflation_repeats_kernels_over_time_divided_by_length():
  sd = ref.random_state_dict(width=8)
  _, variables, report = _inflated("i3d", sd, (1, 8, 32, 32, 3), abstract=True)
  params = variables["params"]
  stem = np.asarray(params["conv1"]["conv"]["kernel"])          # (7, 7, 7, 3, 8)
  assert stem.shape[0] == 7
  np.testing.assert_allclose(stem.sum(axis=0),
                             np.transpose(sd["conv1.conv.weight"], (2, 3, 1, 0)), rtol=1e-5)
  np.testing.assert_allclose(stem[0], stem[3])
  b = np.asarray(params["inception4c"]["branch3_1"]["conv"]["kernel"])
  np.testing.assert_allclose(
      b.sum(axis=0), np.transpose(sd["inception4c.branch3.1.conv.weight"], (2, 3, 1, 0)),
      rtol=1e-5)
  np.testing.assert_array_equal(variables["batch_stats"]["inception5b"]["branch4_1"]["bn"]
                                ["var"], sd["inception5b.branch4.1.bn.running_var"])
  assert all(k.startswith("params/head") for k in report.kept_init)


def test_a_resnet_file_is_refused_for_an_inception_model():
  import resnet2d_reference
  with pytest.raises(ValueError, match="2-D resnet but the model is a googlenet"):
    _inflated("s3dg", resnet2d_reference.random_state_dict(width=8), (1, 8, 32, 32, 3),
              abstract=True)
