"""ImageNet initialisation from a torchvision-layout 2-D ResNet state dict."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

import resnet2d_reference as ref
from cost_jax.models import ResNet3D, ResNetTiny
from cost_jax.models import pretrained

TINY = dict(blocks=(1, 1, 1, 1), width=8, num_classes=6)


def _variables(model, shape=(1, 4, 32, 32, 3)):
  return jax.jit(model.init)(jax.random.key(0), jnp.zeros(shape))


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_c2d_on_identical_frames_equals_the_2d_resnet(tmp_path, fmt):
  sd = ref.random_state_dict(seed=1, **TINY)
  path = tmp_path / f"resnet.{fmt}"
  if fmt == "safetensors":
    save_file(sd, str(path))
  else:
    np.savez(path, **sd)
  model = ResNetTiny(variant="c2d", num_classes=6)
  variables, report = pretrained.load_imagenet_file(_variables(model), path)
  # The classifier keeps its initialisation; give it the file's to compare logits.
  assert report.kept_init == ["params/head/bias", "params/head/kernel"]
  assert "fc.weight" in report.unused_keys
  variables["params"]["head"] = {"kernel": sd["fc.weight"].T, "bias": sd["fc.bias"]}

  image = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3), minval=-2, maxval=2)
  clip = jnp.repeat(image[:, None], 4, axis=1)
  expected = ref.forward(sd, image, TINY["blocks"])
  np.testing.assert_allclose(jax.jit(model.apply)(variables, clip), expected,
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["c3d", "c3d_full", "costa", "costb", "r2plus1d"])
def test_inflation_rules(variant):
  sd = ref.random_state_dict(seed=1, **TINY)
  model = ResNetTiny(variant=variant, num_classes=6)
  before = _variables(model)
  variables, report = pretrained.load_imagenet(before, sd)
  conv1 = variables["params"]["res2_0"]["conv1"]["kernel"]
  hwio = np.transpose(sd["layer1.0.conv1.weight"], (2, 3, 1, 0))
  if variant == "c3d":  # 1x1 -> 3x1x1, repeated over time and divided by 3
    assert conv1.shape[0] == 3
    np.testing.assert_allclose(conv1, np.repeat(hwio[None], 3, 0) / 3, rtol=1e-6)
  conv2 = variables["params"]["res3_0"]["conv2"]
  w2 = np.transpose(sd["layer2.0.conv2.weight"], (2, 3, 1, 0))
  if variant in ("costa", "costb"):  # the CoST kernel takes the 3x3 kernel unchanged
    np.testing.assert_array_equal(conv2["kernel"], w2)
    kept = {k for k in report.kept_init if "res3_0/conv2" in k}
    assert kept == ({"params/res3_0/conv2/alpha"} if variant == "costa" else
                    {"params/res3_0/conv2/fc1/kernel", "params/res3_0/conv2/fc2/kernel"})
    np.testing.assert_array_equal(conv2.get("alpha", 0), before["params"]["res3_0"][
        "conv2"].get("alpha", 0))
  elif variant == "c3d_full":
    np.testing.assert_allclose(conv2["kernel"], np.repeat(w2[None], 3, 0) / 3, rtol=1e-6)
  elif variant == "r2plus1d":  # factorised convs have no 2-D counterpart
    assert "layer2.0.conv2.weight" in report.unused_keys
    assert "params/res3_0/conv2/spatial/kernel" in report.kept_init
  np.testing.assert_array_equal(variables["batch_stats"]["res2_0"]["bn1"]["mean"],
                                sd["layer1.0.bn1.running_mean"])


def test_full_r50_layout_maps_every_backbone_array():
  sd = {k: np.zeros(s, np.float32)
        for k, s in ref.state_dict_shapes(blocks=(3, 4, 6, 3), width=64).items()}
  model = ResNet3D(depth=50, variant="costb")
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 64, 64, 3)))
  _, report = pretrained.load_imagenet(variables, sd)
  kept = [k for k in report.kept_init if not ("/fc1/" in k or "/fc2/" in k or "/head/" in k)]
  assert kept == []
  assert sorted(k for k in report.unused_keys if "num_batches" not in k) == ["fc.bias",
                                                                           "fc.weight"]


def test_wrong_depth_is_refused():
  sd = ref.random_state_dict(blocks=(1, 1, 2, 1), width=8)
  with pytest.raises(ValueError, match=r"\(1, 1, 2, 1\) blocks per stage.*config.model.depth"):
    pretrained.load_imagenet(_variables(ResNetTiny(variant="c2d")), sd)


def test_wrong_width_names_the_key():
  sd = ref.random_state_dict(width=16, **{k: v for k, v in TINY.items() if k != "width"})
  with pytest.raises(ValueError, match=r"shape mismatch for 'bn1.bias'.*\(16,\).*\(8,\)"):
    pretrained.load_imagenet(_variables(ResNetTiny(variant="c2d")), sd)


def test_foreign_key_and_missing_file():
  sd = ref.random_state_dict(**TINY)
  sd["blocks.0.attn.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError, match=r"unexpected key 'blocks.0.attn.weight'"):
    pretrained.load_imagenet(_variables(ResNetTiny(variant="c2d")), sd)
  with pytest.raises(FileNotFoundError, match="config.init_from"):
    pretrained.read_state_dict("/nonexistent/resnet50.safetensors")
