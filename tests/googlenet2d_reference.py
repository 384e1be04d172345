"""An independent 2-D GoogLeNet (batch norm) in torchvision's layout, a test reference.

Works on the state dict directly (NCHW activations, OIHW kernels, PyTorch's ceil-mode
pools), sharing no code and no layout conversion with `cost_jax`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

import resnet2d_reference

# torchvision's GoogLeNet: (name, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj).
BLOCKS = [("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64),
          ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
          ("inception4c", 128, 128, 256, 24, 64, 64), ("inception4d", 112, 144, 288, 32, 64, 64),
          ("inception4e", 256, 160, 320, 32, 128, 128),
          ("inception5a", 256, 160, 320, 32, 128, 128),
          ("inception5b", 384, 192, 384, 48, 128, 128)]


def state_dict_shapes(width=64, num_classes=1000):
  """Key -> shape; every channel count scaled by width / 64."""
  ch = lambda c: max(1, c * width // 64)
  shapes = {}

  def unit(prefix, c_in, c_out, k):
    shapes[f"{prefix}.conv.weight"] = (ch(c_out), c_in, k, k)
    for f in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{prefix}.bn.{f}"] = (ch(c_out),)
    shapes[f"{prefix}.bn.num_batches_tracked"] = ()
    return ch(c_out)

  c = unit("conv1", 3, 64, 7)
  c = unit("conv2", c, 64, 1)
  c = unit("conv3", c, 192, 3)
  for name, b1, b2r, b2, b3r, b3, b4 in BLOCKS:
    out = unit(f"{name}.branch1", c, b1, 1)
    out += unit(f"{name}.branch2.1", unit(f"{name}.branch2.0", c, b2r, 1), b2, 3)
    out += unit(f"{name}.branch3.1", unit(f"{name}.branch3.0", c, b3r, 1), b3, 3)
    out += unit(f"{name}.branch4.1", c, b4, 1)
    c = out
  shapes["fc.weight"] = (num_classes, c)
  shapes["fc.bias"] = (num_classes,)
  shapes["aux1.conv.conv.weight"] = (128, ch(512), 1, 1)  # present in torchvision files
  return shapes


def random_state_dict(seed=0, **kwargs):
  return resnet2d_reference.random_arrays(state_dict_shapes(**kwargs), seed)


def _unit(x, sd, p, stride=1):
  w = sd[f"{p}.conv.weight"]
  pad = w.shape[2] // 2
  x = jax.lax.conv_general_dilated(x, jnp.asarray(w), (stride, stride),
                                   ((pad, pad), (pad, pad)),
                                   dimension_numbers=("NCHW", "OIHW", "NCHW"))
  scale = sd[f"{p}.bn.weight"] / np.sqrt(sd[f"{p}.bn.running_var"] + 1e-3)
  shift = sd[f"{p}.bn.bias"] - sd[f"{p}.bn.running_mean"] * scale
  return jax.nn.relu(x * scale[None, :, None, None] + shift[None, :, None, None])


def _max_pool(x, k, s, p=0):
  """torch.nn.MaxPool2d(k, s, p, ceil_mode=True)."""
  pads = [(0, 0), (0, 0)]
  for n in x.shape[2:]:
    out = math.ceil((n + 2 * p - k) / s) + 1
    pads.append((p, (out - 1) * s + k - n - p))
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, s, s), pads)


def features(sd, images):
  """Eval-mode output of inception5b, `(N, 1024 * width / 64, H/32, W/32)`, for `(N, H, W, 3)`."""
  x = jnp.transpose(jnp.asarray(images, jnp.float32), (0, 3, 1, 2))
  x = _max_pool(_unit(x, sd, "conv1", 2), 3, 2)
  x = _max_pool(_unit(_unit(x, sd, "conv2"), sd, "conv3"), 3, 2)
  for name, *_ in BLOCKS:
    if name == "inception4a":
      x = _max_pool(x, 3, 2)
    if name == "inception5a":
      x = _max_pool(x, 2, 2)
    x = jnp.concatenate([
        _unit(x, sd, f"{name}.branch1"),
        _unit(_unit(x, sd, f"{name}.branch2.0"), sd, f"{name}.branch2.1"),
        _unit(_unit(x, sd, f"{name}.branch3.0"), sd, f"{name}.branch3.1"),
        _unit(_max_pool(x, 3, 1, 1), sd, f"{name}.branch4.1")], axis=1)
  return x
