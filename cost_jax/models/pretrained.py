"""Pretrained weights: published Kinetics video checkpoints, loaded exactly, and 2-D
ImageNet networks, inflated.

Video checkpoints (`from_pytorchvideo`, `from_mmaction2`, `ZOO`): PyTorchVideo's zoo
ResNets (`c2d_r50`, `i3d_r50`, `slow_r50`, `r2plus1d_r50`, a `.pyth` dict whose
`model_state` is the state dict) and the CoST authors' MMAction2 layout (`c2d_r50`,
`i3d_r50`, `costa_r50`, `costb_r50`: `backbone.*`, `cls_head.*`) become a `ResNet3D` of
the same layout and its variables, every array copied (`checkpoint_formats`); the model
takes clips `(N, T, H, W, 3)` already normalised with the checkpoint's recipe and returns
logits. `load_matching` copies the variables of one run into another network (fine-tuning
with a new head).

ImageNet initialisation: a 2-D network's state dict inflated into its video version.

Two families, both in torchvision's layout, read from `.safetensors` or `.npz` (no torch
needed) or `.pth`/`.pt` (needs torch):
  ResNet (torchvision/timm: `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
    `layer1.0.downsample.0.weight`, `fc.weight`, ...) -> `ResNet3D`, any variant;
  GoogLeNet with batch norm (`conv1.conv.weight`, `conv1.bn.weight`,
    `inception3a.branch2.1.conv.weight`, ...) -> `InceptionV1Video` (I3D, S3D, S3D-G).
docs/design.md §3:

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

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from cost_jax import errors
from cost_jax.models import checkpoint_formats as formats, inception3d, resnet3d

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
  """A torchvision-layout state dict from .safetensors, .npz or .pth/.pt (see
  `checkpoint_formats.read_state_dict`)."""
  return formats.read_state_dict(path, what="the config.init_from checkpoint")


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


def _resnet_target(key: str, known: dict[str, str]) -> tuple[str, str] | None:
  """(collection, path) of a torchvision ResNet key in the model (`known`, from the
  format's table); None for keys with no counterpart; ValueError for foreign keys."""
  if key in known:
    collection, _, path = known[key].partition("/")
    return collection, path
  if key.endswith("num_batches_tracked") or key.startswith("fc.") or re.match(
      r"^(conv1|bn1)\.|^layer\d\.\d+\.(conv\d|bn\d|downsample\.[01])\.", key):
    return None  # e.g. conv2 of a marked R(2+1)D block: no 2-D counterpart
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
  if file_family == "resnet":
    known = {k: v for k, v in formats.key_map(variables, "torchvision").items()
             if not k.startswith("fc.")}
    target_path = lambda key: _resnet_target(key, known)
  else:
    target_path = _googlenet_target
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


# ---------------------------------------------------------------------------- video zoo

# Pixel normalisation of each family, on 0..255 pixels: PyTorchVideo's 0.45 / 0.225 on
# 0..1; the authors' ImageNet statistics (docs/design.md §3).
PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD = (114.75,) * 3, (57.375,) * 3
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  """A published Kinetics-400 checkpoint: the network and its test recipe."""
  variant: str           # `config.model.variant` of the same layout (depth 50)
  num_frames: int
  frame_stride: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  top1: float            # published Kinetics-400 top-1 (%)
  source: str            # where the figure and the file come from


_PTV = "PyTorchVideo model zoo"
_PAPER = "CoST paper, Table 4 (the authors' MMAction2 release)"
ZOO = {
    "pytorchvideo": {
        "c2d_r50": ZooEntry("pytorchvideo_c2d", 8, 8, PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD,
                            71.46, f"{_PTV}: C2D_8x8_R50.pyth"),
        "i3d_r50": ZooEntry("pytorchvideo_i3d", 8, 8, PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD,
                            73.27, f"{_PTV}: I3D_8x8_R50.pyth"),
        "slow_r50": ZooEntry("pytorchvideo_slow", 8, 8, PYTORCHVIDEO_MEAN,
                             PYTORCHVIDEO_STD, 74.58, f"{_PTV}: SLOW_8x8_R50.pyth"),
        "r2plus1d_r50": ZooEntry("pytorchvideo_r2plus1d", 16, 4, PYTORCHVIDEO_MEAN,
                                 PYTORCHVIDEO_STD, 76.01, f"{_PTV}: R2PLUS1D_16x4_R50.pyth"),
    },
    "mmaction2": {
        "c2d_r50": ZooEntry("c2d", 8, 8, IMAGENET_MEAN, IMAGENET_STD, 71.5, _PAPER),
        "i3d_r50": ZooEntry("c3d", 8, 8, IMAGENET_MEAN, IMAGENET_STD, 73.3, _PAPER),
        "costa_r50": ZooEntry("costa", 8, 8, IMAGENET_MEAN, IMAGENET_STD, 73.6, _PAPER),
        "costb_r50": ZooEntry("costb", 8, 8, IMAGENET_MEAN, IMAGENET_STD, 74.1, _PAPER),
    },
}


def zoo_entry(fmt: str, arch: str) -> ZooEntry:
  if fmt not in ZOO:
    raise errors.ConfigError(f"unknown checkpoint format {fmt!r}: use one of "
                             f"{', '.join(ZOO)}")
  if arch not in ZOO[fmt]:
    raise errors.ConfigError(f"unknown {fmt} architecture {arch!r}: use one of "
                             f"{', '.join(ZOO[fmt])}")
  return ZOO[fmt][arch]


def format_context(fmt: str, variant: str) -> dict:
  """Values the format's key table needs for a network of `variant`."""
  if fmt == "pytorchvideo":
    return formats.pytorchvideo_context(resnet3d.PYTORCHVIDEO[variant])
  return {}


def _head_classes(state_dict: dict, fmt: str, context: dict) -> int | None:
  head = formats.torch_key("params/head/kernel", fmt, context)
  return int(np.shape(state_dict[head])[0]) if head in state_dict else None


def from_checkpoint(source, fmt: str, arch: str, *, width: int = 64,
                    dtype=jnp.float32) -> tuple[resnet3d.ResNet3D, dict]:
  """The network of a published checkpoint and its variables, every array copied.

  Args:
    source: a `.pyth`/`.pth` file (needs torch), `.safetensors`/`.npz`, or a state dict
      of torch tensors or numpy arrays (bare, or under `model_state` / `state_dict`).
    fmt: 'pytorchvideo' or 'mmaction2'; arch: a key of `ZOO[fmt]`.
    width: channels of res2's bottleneck (64 for the published networks).
  Returns:
    (model, variables): `model.apply(variables, clips, train=False)` takes clips
    `(N, T, H, W, 3)` normalised with the entry's mean and std, and returns logits.
  Raises:
    `checkpoint_formats.CheckpointMismatchError` naming the missing, unexpected and
    mis-shaped keys when the file holds another network.
  """
  entry = zoo_entry(fmt, arch)
  state_dict = formats.read_state_dict(source)
  context = format_context(fmt, entry.variant)
  model = resnet3d.ResNet3D(depth=50, variant=entry.variant, width=width, dtype=dtype,
                            num_classes=_head_classes(state_dict, fmt, context) or 400)
  clip = jnp.zeros((1, entry.num_frames, 224, 224, 3))
  abstract = jax.eval_shape(model.init, jax.random.key(0), clip)
  variables = formats.load_exact(abstract, state_dict, fmt, context,
                                 what=f"{fmt}'s {arch}")
  return model, variables


def from_pytorchvideo(source, arch: str, **kwargs) -> tuple[resnet3d.ResNet3D, dict]:
  """`from_checkpoint` for PyTorchVideo's zoo (`c2d_r50`, `i3d_r50`, `slow_r50`,
  `r2plus1d_r50`)."""
  return from_checkpoint(source, "pytorchvideo", arch, **kwargs)


def from_mmaction2(source, arch: str, **kwargs) -> tuple[resnet3d.ResNet3D, dict]:
  """`from_checkpoint` for the authors' MMAction2 layout (`c2d_r50`, `i3d_r50`,
  `costa_r50`, `costb_r50`)."""
  return from_checkpoint(source, "mmaction2", arch, **kwargs)


def load_matching(variables: dict, source: dict, name: str = "the run"
                  ) -> tuple[dict, LoadReport]:
  """`variables` with every array of `source` (same collection, path and shape) copied:
  fine-tuning a run's network on other classes loads all but the classifier.

  Raises a `ConfigError` when a backbone variable (anything but the head) is missing or
  of another shape: the config builds another network than the run's.
  """
  loaded, kept, mismatched = [], [], []
  new = {}
  for collection in ("params", "batch_stats"):
    flat = traverse_util.flatten_dict(dict(variables[collection]), sep="/")
    theirs = traverse_util.flatten_dict(dict(source.get(collection, {})), sep="/")
    for path, value in flat.items():
      full = f"{collection}/{path}"
      other = theirs.get(path)
      if other is not None and np.shape(other) == np.shape(value):
        flat[path] = np.asarray(other, value.dtype)
        loaded.append(full)
      else:
        kept.append(full)
        if not path.startswith("head/"):
          mismatched.append(full if other is None else
                            f"{full} {np.shape(other)} there, {np.shape(value)} here")
    new[collection] = traverse_util.unflatten_dict(flat, sep="/")
  if mismatched:
    raise errors.ConfigError(
        f"config.init_from={name} holds another network: {len(mismatched)} variables "
        f"differ (e.g. {'; '.join(mismatched[:3])}); use the model config of that run "
        "(its config.json: model.variant, depth, width)")
  unused = sorted(
      f"{c}/{p}" for c in ("params", "batch_stats")
      for p in traverse_util.flatten_dict(dict(source.get(c, {})), sep="/")
      if f"{c}/{p}" not in loaded)
  return new, LoadReport(sorted(loaded), sorted(kept), unused)
