"""An independent 2-D ResNet in torchvision's layout, used as a reference by the tests.

Works directly on the state dict (NCHW activations, OIHW kernels), so it shares no code and
no layout conversion with `cost_jax`.
"""

import jax
import jax.numpy as jnp
import numpy as np


def state_dict_shapes(blocks=(3, 4, 6, 3), width=64, num_classes=1000):
  """Key -> shape of a torchvision Bottleneck ResNet state dict."""
  shapes = {"conv1.weight": (width, 3, 7, 7)}

  def bn(prefix, c):
    for f in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{prefix}.{f}"] = (c,)
    shapes[f"{prefix}.num_batches_tracked"] = ()

  bn("bn1", width)
  c_in = width
  for layer, n in enumerate(blocks):
    w = width * 2 ** layer
    for b in range(n):
      p = f"layer{layer + 1}.{b}"
      shapes[f"{p}.conv1.weight"] = (w, c_in, 1, 1)
      shapes[f"{p}.conv2.weight"] = (w, w, 3, 3)
      shapes[f"{p}.conv3.weight"] = (4 * w, w, 1, 1)
      for i, c in ((1, w), (2, w), (3, 4 * w)):
        bn(f"{p}.bn{i}", c)
      if b == 0:
        shapes[f"{p}.downsample.0.weight"] = (4 * w, c_in, 1, 1)
        bn(f"{p}.downsample.1", 4 * w)
      c_in = 4 * w
  shapes["fc.weight"] = (num_classes, c_in)
  shapes["fc.bias"] = (num_classes,)
  return shapes


def random_state_dict(seed=0, **kwargs):
  return random_arrays(state_dict_shapes(**kwargs), seed)


def random_arrays(shapes, seed=0):
  """A plausible state dict for `shapes`: He-scaled kernels, positive running variances."""
  rng = np.random.default_rng(seed)
  sd = {}
  for k, s in shapes.items():
    if k.endswith("num_batches_tracked"):
      sd[k] = np.zeros(s, np.int64)
    elif k.endswith("running_var"):
      sd[k] = rng.uniform(0.5, 1.5, s).astype(np.float32)
    elif k.endswith(".weight") and len(s) == 4:
      sd[k] = (rng.normal(size=s) * np.sqrt(2.0 / (s[0] * s[2] * s[3]))).astype(np.float32)
    else:
      sd[k] = (rng.normal(size=s) * 0.1).astype(np.float32)
  return sd


def _conv(x, w, stride=1):
  pad = w.shape[2] // 2
  return jax.lax.conv_general_dilated(x, jnp.asarray(w), (stride, stride),
                                      ((pad, pad), (pad, pad)),
                                      dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _bn(x, sd, p):
  scale = sd[f"{p}.weight"] / np.sqrt(sd[f"{p}.running_var"] + 1e-5)
  shift = sd[f"{p}.bias"] - sd[f"{p}.running_mean"] * scale
  return x * scale[None, :, None, None] + shift[None, :, None, None]


def forward(sd, images, blocks):
  """Eval-mode logits of the 2-D ResNet for `images` (N, H, W, 3)."""
  x = jnp.transpose(jnp.asarray(images, jnp.float32), (0, 3, 1, 2))
  x = jax.nn.relu(_bn(_conv(x, sd["conv1.weight"], 2), sd, "bn1"))
  x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 3, 3), (1, 1, 2, 2),
                            ((0, 0), (0, 0), (1, 1), (1, 1)))
  for layer, n in enumerate(blocks):
    for b in range(n):
      p = f"layer{layer + 1}.{b}"
      stride = 2 if layer > 0 and b == 0 else 1
      y = jax.nn.relu(_bn(_conv(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
      y = jax.nn.relu(_bn(_conv(y, sd[f"{p}.conv2.weight"], stride), sd, f"{p}.bn2"))
      y = _bn(_conv(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
      if f"{p}.downsample.0.weight" in sd:
        x = _bn(_conv(x, sd[f"{p}.downsample.0.weight"], stride), sd, f"{p}.downsample.1")
      x = jax.nn.relu(x + y)
  x = x.mean(axis=(2, 3))
  return x @ sd["fc.weight"].T + sd["fc.bias"]
