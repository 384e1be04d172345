"""PyTorch checkpoints of video ResNets: reading them, and one key table per format.

A table maps a `ResNet3D` module path (`res3_0/conv2`) to the PyTorch module that holds
the same weights (`backbone.layer2.0.conv2.conv` in MMAction2); leaves are renamed by
`LEAVES` (`kernel` -> `weight`, BatchNorm `scale`/`bias`/`mean`/`var` -> `weight`/`bias`/
`running_mean`/`running_var`) and laid out by `to_flax`. The formats:

  torchvision   2-D ImageNet ResNets (`conv1`, `layer1.0.conv1`, `fc`), for inflation
  mmaction2     the CoST authors' release and MMAction2's zoo (`backbone.*`, `cls_head.*`)
  pytorchvideo  PyTorchVideo's zoo (`blocks.N.res_blocks.M.branch2.conv_a`, ...)

`load_exact` copies a checkpoint of the same network into model variables, refusing any
missing, unexpected or mis-shaped key with a message that names them.
"""

import re

import numpy as np
from etils import epath
from flax import traverse_util

from cost_jax import errors

_STAGE = r"res(?P<stage>\d)_(?P<block>\d+)"
# (module path regex, PyTorch module template): the first full match wins. Templates may
# use the regex's groups, `layer` (= stage - 1, PyTorch's numbering) and the values of
# `context` (`ptv_stage`, `ptv_head`: positions in PyTorchVideo's `blocks` list).
TABLES = {
    "torchvision": (
        (r"stem_conv", "conv1"), (r"stem_bn", "bn1"),
        (_STAGE + r"/(?P<m>conv\d|bn\d)", "layer{layer}.{block}.{m}"),
        (_STAGE + r"/downsample_conv", "layer{layer}.{block}.downsample.0"),
        (_STAGE + r"/downsample_bn", "layer{layer}.{block}.downsample.1"),
        (r"head", "fc"),
    ),
    "mmaction2": (
        (r"stem_conv", "backbone.conv1.conv"), (r"stem_bn", "backbone.conv1.bn"),
        (_STAGE + r"/conv(?P<k>\d)", "backbone.layer{layer}.{block}.conv{k}.conv"),
        (_STAGE + r"/conv2/(?P<fc>fc[12])", "backbone.layer{layer}.{block}.conv2.conv.{fc}"),
        (_STAGE + r"/bn(?P<k>\d)", "backbone.layer{layer}.{block}.conv{k}.bn"),
        (_STAGE + r"/downsample_(?P<m>conv|bn)", "backbone.layer{layer}.{block}.downsample.{m}"),
        (r"head", "cls_head.fc_cls"),
    ),
    "pytorchvideo": (
        (r"stem_conv", "blocks.0.conv"), (r"stem_bn", "blocks.0.norm"),
        (_STAGE + r"/conv1", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_a"),
        (_STAGE + r"/conv2", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_b"),
        (_STAGE + r"/conv2/temporal", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_b.conv_t"),
        (_STAGE + r"/conv2/bn_mid", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_b.norm"),
        (_STAGE + r"/conv2/spatial", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_b.conv_xy"),
        (_STAGE + r"/conv3", "blocks.{ptv_stage}.res_blocks.{block}.branch2.conv_c"),
        (_STAGE + r"/bn(?P<k>[123])", "blocks.{ptv_stage}.res_blocks.{block}.branch2.norm_{abc}"),
        (_STAGE + r"/downsample_conv", "blocks.{ptv_stage}.res_blocks.{block}.branch1_conv"),
        (_STAGE + r"/downsample_bn", "blocks.{ptv_stage}.res_blocks.{block}.branch1_norm"),
        (r"head", "blocks.{ptv_head}.proj"),
    ),
}
FORMATS = tuple(TABLES)
# (collection, leaf) -> PyTorch parameter or buffer name.
LEAVES = {("params", "kernel"): "weight", ("params", "scale"): "weight",
          ("params", "bias"): "bias", ("params", "alpha"): "alpha",
          ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
IGNORED = ("num_batches_tracked",)  # PyTorch BatchNorm bookkeeping, no counterpart


def pytorchvideo_context(layout) -> dict:
  """Where stages and head sit in PyTorchVideo's `blocks` (a res2 pool is a block too)."""
  stages = (1, 3, 4, 5) if layout.res2_pool else (1, 2, 3, 4)
  return {"ptv_stages": stages, "ptv_head": stages[-1] + 1}


def torch_key(path: str, fmt: str, context: dict | None = None) -> str | None:
  """The PyTorch key of a flat variable path (`params/res3_0/conv2/kernel`), or None."""
  collection, _, rest = path.partition("/")
  module, _, leaf = rest.rpartition("/")
  name = LEAVES.get((collection, leaf))
  if name is None:
    return None
  for pattern, template in TABLES[fmt]:
    match = re.fullmatch(pattern, module)
    if match:
      groups = match.groupdict()
      values = dict(context or {}, **groups)
      if "stage" in groups:
        stage = int(groups["stage"])
        values["layer"] = stage - 1
        if "ptv_stages" in values:
          values["ptv_stage"] = values["ptv_stages"][stage - 2]
      if "k" in groups:
        values["abc"] = "abc"[int(groups["k"]) - 1]
      return f"{template.format(**values)}.{name}"
  return None


def to_flax(value: np.ndarray, path: str, target_shape) -> np.ndarray:
  """A PyTorch array in the layout of the flax variable `path` of `target_shape`: conv
  kernels (O, I, t, h, w) -> (t, h, w, I, O), a CoST kernel (O, I, [1,] 3, 3) ->
  (3, 3, I, O), Linear weights (out, in) -> (in, out); other leaves unchanged."""
  value = np.asarray(value)
  if not path.endswith("kernel"):
    return value
  ndim = len(target_shape)
  if ndim == 5 and value.ndim == 5:
    return np.transpose(value, (2, 3, 4, 1, 0))
  if ndim == 4 and value.ndim in (4, 5):
    if value.ndim == 5:
      if value.shape[2] != 1:
        return value  # left as is: reported as mis-shaped
      value = value[:, :, 0]
    return np.transpose(value, (2, 3, 1, 0))
  if ndim == 2 and value.ndim == 2:
    return value.T
  return value


def torch_shape(path: str, flax_shape) -> tuple[int, ...]:
  """The PyTorch layout of a flax variable's shape (the inverse of `to_flax`)."""
  shape = tuple(flax_shape)
  if not path.endswith("kernel"):
    return shape
  if len(shape) == 5:
    return (shape[4], shape[3]) + shape[:3]
  if len(shape) == 4:
    return (shape[3], shape[2]) + shape[:2]
  if len(shape) == 2:
    return shape[::-1]
  return shape


def key_map(variables: dict, fmt: str, context: dict | None = None) -> dict[str, str]:
  """{PyTorch key: flat variable path} for every variable the format holds."""
  out = {}
  for collection in ("params", "batch_stats"):
    for path in traverse_util.flatten_dict(dict(variables.get(collection, {})), sep="/"):
      full = f"{collection}/{path}"
      key = torch_key(full, fmt, context)
      if key is not None:
        out[key] = full
  return out


def _names(keys, limit=3) -> str:
  keys = sorted(keys)
  return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit
                                    else "")


class CheckpointMismatchError(errors.UserError, ValueError):
  """A checkpoint that does not hold the weights of the network asked for."""


def load_exact(variables: dict, state_dict: dict, fmt: str, context: dict | None = None,
               what: str = "the network") -> dict:
  """`variables` with every array taken from `state_dict` (PyTorch layout, format `fmt`).

  Raises `CheckpointMismatchError` naming the first missing, unexpected and mis-shaped
  keys when the checkpoint is not exactly `what`.
  """
  mapping = key_map(variables, fmt, context)
  flat = {c: traverse_util.flatten_dict(dict(variables[c]), sep="/") for c in variables}
  given = {k for k in state_dict if not k.endswith(IGNORED)}
  missing, unexpected = set(mapping) - given, given - set(mapping)
  converted, misshaped = {}, []
  for key in sorted(set(mapping) & given):
    collection, _, path = mapping[key].partition("/")
    target = flat[collection][path]
    value = to_flax(state_dict[key], path, target.shape)
    if tuple(value.shape) != tuple(target.shape):
      misshaped.append(f"{key} {tuple(np.shape(state_dict[key]))}, expected "
                       f"{torch_shape(path, target.shape)}")
      continue
    converted[(collection, path)] = value.astype(target.dtype)
  if missing or unexpected or misshaped:
    parts = [f"{label} {len(keys)}: {_names(keys)}" for label, keys in (
        ("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys]
    raise CheckpointMismatchError(f"the checkpoint does not hold {what} ({fmt} layout): "
                                  + "; ".join(parts))
  new = {}
  for collection, leaves in flat.items():
    leaves = dict(leaves)
    for (c, path), value in converted.items():
      if c == collection:
        leaves[path] = value
    new[collection] = traverse_util.unflatten_dict(leaves, sep="/")
  return new


# ---------------------------------------------------------------------------- reading

def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
      value = value.float()
    return value.numpy()
  return np.asarray(value)


def unwrap(checkpoint) -> dict:
  """The state dict inside a checkpoint dict: PyTorchVideo's `model_state`, MMAction2's
  `state_dict`, torchvision's bare dict."""
  if not isinstance(checkpoint, dict):
    raise CheckpointMismatchError(f"the checkpoint is a {type(checkpoint).__name__}, not a "
                                  "dict of arrays (a state_dict)")
  for key in ("model_state", "state_dict", "model"):
    if isinstance(checkpoint.get(key), dict):
      return checkpoint[key]
  return checkpoint


def read_state_dict(source, what: str = "checkpoint") -> dict[str, np.ndarray]:
  """Arrays by PyTorch key from a state dict (torch tensors or numpy arrays) or a file:
  `.safetensors` or `.npz` (no torch needed), `.pth`, `.pt`, `.pyth` (torch needed)."""
  if isinstance(source, dict):
    return {k: _to_numpy(v) for k, v in unwrap(source).items() if not isinstance(v, dict)}
  path = epath.Path(source)
  if not path.exists():
    raise errors.MissingInputError(f"{what} {path} does not exist")
  suffix = path.suffix.lower()
  if suffix == ".safetensors":
    from safetensors.numpy import load as load_safetensors
    return dict(load_safetensors(path.read_bytes()))
  if suffix == ".npz":
    with path.open("rb") as f, np.load(f) as data:
      return {k: data[k] for k in data.files}
  if suffix in (".pth", ".pt", ".pyth", ".ckpt"):
    try:
      import torch
    except ImportError:
      raise errors.UserError(f"reading {path} needs PyTorch: pip install torch (the CPU "
                             "build is enough); the converted run needs no torch") from None
    try:
      with path.open("rb") as f:
        checkpoint = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  torch raises many kinds for a damaged file
      raise CheckpointMismatchError(
          f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: "
          f"{str(e).splitlines()[0] if str(e) else ''}): is the download complete?"
      ) from None
    return read_state_dict(checkpoint)
  raise errors.UserError(f"unsupported checkpoint format {suffix!r} for {path}: use "
                         ".pyth, .pth, .safetensors or .npz")
