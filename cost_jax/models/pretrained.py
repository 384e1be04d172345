"""ImageNet initialisation: a 2-D network's state dict inflated into its video version.

Two families, both in torchvision's layout, read from `.safetensors` or `.npz` (no torch
needed) or `.pth`/`.pt` (needs torch):
  ResNet (torchvision/timm: `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
    `layer1.0.downsample.0.weight`, `fc.weight`, ...) -> `ResNet3D`, any variant;
  GoogLeNet with batch norm (`conv1.conv.weight`, `conv1.bn.weight`,
    `inception3a.branch2.1.conv.weight`, ...) -> `InceptionV1Video` (I3D, S3D, S3D-G).
DESIGN section 3:

  2-D kernel (O, I, kh, kw)  ->  kernel (kh, kw, I, O), then by target shape:
    (kh, kw, I, O)        the CoST kernel, unchanged
    (1, kh, kw, I, O)     a C2D kernel
    (k, kh, kw, I, O)     inflated: repeated k times over time and divided by k
  BatchNorm weight/bias -> scale/bias, running_mean/var -> batch_stats mean/var.

CoST coefficients, fc1, fc2, R(2+1)D's factorised convs, S3D-G's gates and the classifier
keep their initialisation; `load_imagenet` reports which parameters came from the file.
In S3D and S3D-G the temporal conv of a separable unit starts as the identity; its batch
norm (`temporal_bn`) gets running variance `1 - epsilon`, so that the pair passes its input
through exactly and an inflated S3D computes the 2-D network on every frame.
"""

import dataclasses
import os
import re

import numpy as np
from etils import epath
from flax import traverse_util

from cost_jax.models import inception3d

_LAYER_KEY = re.compile(r"^layer(\d)\.(\d+)\.(.+)$")
_INCEPTION_KEY = re.compile(r"^(conv[123]|inception\d[a-e])\.(?:(branch\d)(?:\.(\d))?\.)?"
                            r"(conv|bn)\.(weight|bias|running_mean|running_var)$")
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


@dataclasses.dataclass
class LoadReport:
  """What `load_imagenet` did, as flat '/'-joined variable paths and file keys."""
  loaded: list[str]
  kept_init: list[str]
  unused_keys: list[str]

  def __str__(self):
    lines = [f"loaded {len(self.loaded)} arrays from the file; "
             f"{len(self.kept_init)} keep their initialisation; "
             f"{len(self.unused_keys)} file keys unused"]
    if self.kept_init:
      lines.append("kept initialisation: " + ", ".join(self.kept_init))
    if self.unused_keys:
      lines.append("unused file keys: " + ", ".join(self.unused_keys))
    return "\n".join(lines)


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a torchvision-layout state dict from .safetensors, .npz or .pth/.pt."""
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"ImageNet checkpoint {path} does not exist: check "
                            "config.init_from")
  suffix = path.suffix.lower()
  if suffix == ".safetensors":
    from safetensors.numpy import load as load_safetensors
    return dict(load_safetensors(path.read_bytes()))
  if suffix == ".npz":
    with path.open("rb") as f, np.load(f) as data:
      return {k: data[k] for k in data.files}
  if suffix in (".pth", ".pt"):
    try:
      import torch
    except ImportError as e:
      raise ImportError(f"reading {path} needs torch (pip install torch), or convert it to "
                        ".safetensors first") from e
    with path.open("rb") as f:
      state = torch.load(f, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k: v.float().numpy() for k, v in state.items()}
  raise ValueError(f"unsupported checkpoint format {suffix!r} for {path}: use .safetensors, "
                   ".npz or .pth")


def _family(names, file: bool) -> str | None:
  """'resnet' or 'googlenet' from state-dict keys (`file`) or flat model parameter paths."""
  names = list(names)
  marks = {"resnet": ("layer1.",) if file else ("stem_conv",),
           "googlenet": ("inception3a.",) if file else ("inception3a",)}
  for family, prefixes in marks.items():
    if any(n.startswith(prefixes) for n in names):
      return family
  return None


def _googlenet_target(key: str) -> tuple[str, str] | None:
  """Maps a torchvision GoogLeNet key to (collection, path); None for ignored keys."""
  if key.endswith("num_batches_tracked") or key.startswith(("fc.", "aux1.", "aux2.")):
    return None
  match = _INCEPTION_KEY.match(key)
  if not match:
    raise ValueError(f"unexpected key {key!r}: the file is not a torchvision GoogLeNet "
                     "state dict")
  module, branch, index, layer, field = match.groups()
  path = module + (f"/{branch}" + (f"_{index}" if index else "") if branch else "")
  if layer == "conv" and field == "weight":
    return "params", f"{path}/conv/kernel"
  if layer == "bn":
    collection, leaf = _BN_FIELDS[field]
    return collection, f"{path}/bn/{leaf}"
  raise ValueError(f"unexpected key {key!r}: the file is not a torchvision GoogLeNet "
                   "state dict")


def _target_path(key: str) -> tuple[str, str] | None:
  """Maps a torchvision ResNet key to (collection, 'module/.../leaf'); None if ignored."""
  if key.endswith("num_batches_tracked") or key.startswith("fc."):
    return None
  module, _, field = key.rpartition(".")
  match = _LAYER_KEY.match(module + ".")
  if module in ("conv1", "bn1"):
    prefix, inner = "", "stem_conv" if module == "conv1" else "stem_bn"
  elif match:
    layer, block, inner = match.groups()
    prefix = f"res{int(layer) + 1}_{block}/"
    inner = inner.rstrip(".").replace("downsample.0", "downsample_conv").replace(
        "downsample.1", "downsample_bn")
  else:
    raise ValueError(f"unexpected key {key!r}: the file is not a torchvision/timm ResNet "
                     "state dict")
  if "conv" in inner and field == "weight":
    return "params", f"{prefix}{inner}/kernel"
  if field in _BN_FIELDS and "bn" in inner:
    collection, leaf = _BN_FIELDS[field]
    return collection, f"{prefix}{inner}/{leaf}"
  raise ValueError(f"unexpected key {key!r}: the file is not a torchvision/timm ResNet "
                   "state dict")


def _blocks_per_stage(names) -> tuple[int, ...]:
  counts = [0, 0, 0, 0]
  for name in names:
    m = re.match(r"^(?:layer(\d)\.|res(\d)_)(\d+)", name)
    if m:
      stage = int(m.group(1)) - 1 if m.group(1) else int(m.group(2)) - 2
      counts[stage] = max(counts[stage], int(m.group(3)) + 1)
  return tuple(counts)


def inflate_kernel(key: str, w: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
  """A 2-D conv kernel `(O, I, kh, kw)` as a kernel of `target_shape` (see module doc)."""
  hwio = np.transpose(w, (2, 3, 1, 0))
  if tuple(target_shape) == hwio.shape:
    return hwio
  if len(target_shape) == 5 and tuple(target_shape[1:]) == hwio.shape:
    k = target_shape[0]
    return np.repeat(hwio[None], k, axis=0) / k
  raise ValueError(f"shape mismatch for {key!r}: the file has {tuple(w.shape)} "
                   f"(as HWIO {hwio.shape}), the model expects {tuple(target_shape)}; "
                   "check config.model.width and that the file is a network of this depth")


def load_imagenet(variables: dict, state_dict: dict[str, np.ndarray]
                  ) -> tuple[dict, LoadReport]:
  """Copies a 2-D ResNet or GoogLeNet state dict into video network `variables`.

  Args:
    variables: `{'params': ..., 'batch_stats': ...}` of a `ResNet3D` or an
      `InceptionV1Video` (any variant).
    state_dict: torchvision-layout arrays, e.g. from `read_state_dict`.
  Returns:
    New variables (numpy leaves for loaded arrays) and a `LoadReport`.
  Raises:
    ValueError naming the offending key for a wrong depth or family, an unknown key or a
    shape mismatch.
  """
  flat = {c: traverse_util.flatten_dict(dict(variables[c]), sep="/")
          for c in ("params", "batch_stats")}
  file_family, model_family = _family(state_dict, True), _family(flat["params"], False)
  if file_family is None:
    raise ValueError("the file is neither a torchvision ResNet nor a GoogLeNet state dict "
                     f"(first keys: {', '.join(sorted(state_dict)[:3])})")
  if file_family != model_family:
    raise ValueError(f"the file holds a 2-D {file_family} but the model is a "
                     f"{model_family}: use a {model_family} checkpoint for "
                     "config.init_from, or change config.model.variant")
  if file_family == "resnet":
    file_blocks = _blocks_per_stage(state_dict)
    model_blocks = _blocks_per_stage(flat["params"])
    if file_blocks != model_blocks:
      raise ValueError(f"the file's ResNet has {file_blocks} blocks per stage but the model "
                       f"has {model_blocks}: set config.model.depth to match the file "
                       "(ResNet-50 has (3, 4, 6, 3), ResNet-101 (3, 4, 23, 3))")
  target_path = _target_path if file_family == "resnet" else _googlenet_target
  loaded, unused = set(), []
  for key in sorted(state_dict):
    target = target_path(key)
    if target is None:
      unused.append(key)
      continue
    collection, path = target
    if path not in flat[collection]:
      unused.append(key)  # e.g. conv2 of a marked R(2+1)D block: no 2-D counterpart
      continue
    value = np.asarray(state_dict[key], np.float32)
    old = flat[collection][path]
    if path.endswith("kernel"):
      value = inflate_kernel(key, value, old.shape)
    elif value.shape != old.shape:
      raise ValueError(f"shape mismatch for {key!r}: the file has {value.shape}, the model "
                       f"expects {old.shape}; check config.model.width")
    flat[collection][path] = value.astype(old.dtype)
    loaded.add(f"{collection}/{path}")
  for path in flat["batch_stats"]:
    # An identity temporal conv after an inflated spatial one: make its BN exact too.
    if path.endswith("temporal_bn/var") and f"batch_stats/{path[:-15]}bn/var" in loaded:
      old = flat["batch_stats"][path]
      flat["batch_stats"][path] = np.full(old.shape, 1.0 - inception3d.BN_EPSILON,
                                          old.dtype)
  kept = sorted(f"{c}/{p}" for c in flat for p in flat[c] if f"{c}/{p}" not in loaded)
  new = dict(variables)
  for c in flat:
    new[c] = traverse_util.unflatten_dict(flat[c], sep="/")
  return new, LoadReport(sorted(loaded), kept, unused)


def load_imagenet_file(variables: dict, path: str | os.PathLike) -> tuple[dict, LoadReport]:
  """`load_imagenet` on the state dict read from `path`."""
  return load_imagenet(variables, read_state_dict(str(path)))
