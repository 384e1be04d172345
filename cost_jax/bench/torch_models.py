"""PyTorch reference: the ResNet-50 family of docs/design.md §2, for side-by-side timing.

Written the way the authors' PyTorch release runs CoST: the shared kernel viewed as three
`conv3d` weights, three `conv3d` calls, then a weighted sum (CoST(a): softmax of `alpha`;
CoST(b): max-pooled views -> fc1 -> fc2 -> softmax), with the module names of their
MMAction2 checkpoints (docs/design.md §3b), so that it is also the reference the MMAction2
import is tested against. Used by `python -m cost_jax.bench.model --torch` and the tests;
needs `pip install torch` (CPU or CUDA build), and only this module imports it, when the
PyTorch side is asked for.

The benchmark runs it in a process of its own, as PyTorch's users do, started as
`python torch_models.py --serve` (`cost_jax.bench.torch_process`): that process imports
torch and this file only, never `cost_jax` or JAX.
"""

import functools
import json
import sys
import time
import traceback
import types

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("c2d", "c3d", "c3d_full", "costa", "costb")
MARKED = ((0, 1, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (1, 0, 1))  # R50, docs/design.md §2


class CoST(nn.Module):
  """The shared kernel is `weight` (O, I, 1, 3, 3), the H-W view's shape; the T-W and T-H
  views use the same numbers laid out as (O, I, 3, 1, 3) and (O, I, 3, 3, 1)."""

  def __init__(self, c_in, c_out, stride, variant):
    super().__init__()
    self.variant, self.stride = variant, (1, stride, stride)
    self.weight = nn.Parameter(torch.empty(c_out, c_in, 1, 3, 3))
    nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
    if variant == "a":
      self.alpha = nn.Parameter(torch.tensor([0.7, -0.7, -0.7])[:, None].repeat(1, c_out))
    else:
      self.fc1 = nn.Linear(c_out, c_out, bias=False)
      self.fc2 = nn.Linear(3, 3, bias=False)

  def forward(self, x):
    w = self.weight[:, :, 0]
    views = [F.conv3d(x, w.unsqueeze(2), stride=self.stride, padding=(0, 1, 1)),
             F.conv3d(x, w.unsqueeze(3), stride=self.stride, padding=(1, 0, 1)),
             F.conv3d(x, w.unsqueeze(4), stride=self.stride, padding=(1, 1, 0))]
    if self.variant == "a":
      a = torch.softmax(self.alpha, dim=0)                           # (3, O)
      return sum(a[i].view(1, -1, 1, 1, 1) * v for i, v in enumerate(views))
    pooled = torch.stack([v.amax(dim=(2, 3, 4)) for v in views], dim=1)  # (N, 3, O)
    a = torch.softmax(self.fc2(self.fc1(pooled).transpose(1, 2)), dim=-1)  # (N, O, 3)
    return sum(a[..., i].view(a.shape[0], -1, 1, 1, 1) * v for i, v in enumerate(views))


class ConvModule(nn.Module):
  """MMCV's ConvModule as MMAction2 uses it: `conv` then `bn`, ReLU unless told not to."""

  def __init__(self, conv, channels, relu=True):
    super().__init__()
    self.conv, self.bn, self.relu = conv, nn.BatchNorm3d(channels), relu

  def forward(self, x):
    x = self.bn(self.conv(x))
    return F.relu(x) if self.relu else x


def _conv(c_in, c_out, kernel, stride=(1, 1, 1)):
  return nn.Conv3d(c_in, c_out, kernel, stride, tuple(k // 2 for k in kernel), bias=False)


class Bottleneck(nn.Module):
  def __init__(self, c_in, width, stride, marked, variant):
    super().__init__()
    t1 = 3 if marked and variant == "c3d" else 1
    self.conv1 = ConvModule(_conv(c_in, width, (t1, 1, 1)), width)
    if marked and variant in ("costa", "costb"):
      conv2 = CoST(width, width, stride, variant[-1])
    else:
      k = 3 if marked and variant == "c3d_full" else 1
      conv2 = _conv(width, width, (k, 3, 3), (1, stride, stride))
    self.conv2 = ConvModule(conv2, width)
    self.conv3 = ConvModule(_conv(width, 4 * width, (1, 1, 1)), 4 * width, relu=False)
    self.downsample = None
    if stride != 1 or c_in != 4 * width:
      self.downsample = ConvModule(
          _conv(c_in, 4 * width, (1, 1, 1), (1, stride, stride)), 4 * width, relu=False)

  def forward(self, x):
    y = self.conv3(self.conv2(self.conv1(x)))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Backbone(nn.Module):
  def __init__(self, variant, width, marked):
    super().__init__()
    self.conv1 = ConvModule(nn.Conv3d(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3),
                                      bias=False), width)
    c_in = width
    for s, stage in enumerate(marked):
      blocks = []
      for b, m in enumerate(stage):
        blocks.append(Bottleneck(c_in, width * 2 ** s, 2 if s > 0 and b == 0 else 1, m,
                                 variant))
        c_in = 4 * width * 2 ** s
      setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
    self.out_channels = c_in

  def forward(self, x):                                   # (N, 3, T, H, W)
    x = F.max_pool3d(self.conv1(x), (1, 3, 3), (1, 2, 2), (0, 1, 1))
    x = F.max_pool3d(self.layer1(x), (2, 1, 1), (2, 1, 1))
    return self.layer4(self.layer3(self.layer2(x)))


class Head(nn.Module):
  def __init__(self, c_in, num_classes, dropout):
    super().__init__()
    self.dropout = nn.Dropout(dropout)
    self.fc_cls = nn.Linear(c_in, num_classes)

  def forward(self, x):
    return self.fc_cls(self.dropout(x.mean(dim=(2, 3, 4))))


class Recognizer(nn.Module):
  """The authors' network in MMAction2's layout: `backbone.conv1.conv.weight`,
  `backbone.layer1.0.conv2.conv.alpha`, `cls_head.fc_cls.weight`, ... (docs/design.md §3b)."""

  def __init__(self, variant="c2d", num_classes=400, width=64, dropout=0.5,
               marked=MARKED):
    super().__init__()
    if variant not in VARIANTS:
      raise ValueError(f"no PyTorch reference for {variant!r}: one of {VARIANTS}")
    self.backbone = Backbone(variant, width, marked)
    self.cls_head = Head(self.backbone.out_channels, num_classes, dropout)

  def forward(self, x):                                   # (N, 3, T, H, W)
    return self.cls_head(self.backbone(x))


ResNet50 = functools.partial(Recognizer, marked=MARKED)


def prepare(config, variant, batch, compile_model: bool = False) -> dict:
  """The PyTorch network under the same settings, ready to time: `forward` and `train`
  (calls without arguments), `sync` (waits for a result) and `facts` (first-call times,
  versions, GPU memory).

  Tuned as a PyTorch user would on a GPU: channels-last 3-D weights and inputs, bfloat16
  autocast for a bfloat16 config, `cudnn.benchmark` (each convolution's fastest
  algorithm is picked on the first call, which the untimed first call absorbs), and with
  `compile_model` the network through `torch.compile`.
  """
  i, o = config.input, config.optimizer
  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  torch.backends.cudnn.benchmark = cuda
  bf16 = config.model.dtype == "bfloat16"
  eager = ResNet50(variant, config.model.num_classes, config.model.width,
                   config.model.dropout_rate).to(device)
  model = torch.compile(eager) if compile_model else eager
  for p in eager.parameters():  # channels-last for the 5-D conv weights only
    if p.dim() == 5:
      p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
  opt = torch.optim.SGD(eager.parameters(), lr=o.base_lr, momentum=o.momentum,
                        weight_decay=o.weight_decay)
  video = torch.randint(0, 256, (batch, 3, i.num_frames, i.crop_size, i.crop_size),
                        dtype=torch.uint8, device=device)
  labels = torch.randint(0, config.model.num_classes, (batch,), device=device)
  mean = torch.tensor(i.mean, device=device).view(1, 3, 1, 1, 1)
  std = torch.tensor(i.std, device=device).view(1, 3, 1, 1, 1)
  autocast = lambda: torch.autocast(device.type, torch.bfloat16, enabled=bf16)
  sync = (lambda _: torch.cuda.synchronize()) if cuda else (lambda _: None)

  def inputs():
    x = (video.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last_3d)

  def forward():
    model.eval()
    with torch.no_grad(), autocast():
      return model(inputs())

  def train_step():
    model.train()
    with autocast():
      loss = F.cross_entropy(model(inputs()).float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(eager.parameters(), o.grad_clip_norm)
    opt.step()
    return loss

  facts = {"threads": torch.get_num_threads(), "torch_version": torch.__version__,
           "torch_compile": compile_model}
  # First calls: kernel selection, allocations (and compilation with torch.compile).
  start = time.perf_counter()
  sync(forward())
  facts["forward_compile_s"] = time.perf_counter() - start
  start = time.perf_counter()
  sync(train_step())
  facts["train_compile_s"] = time.perf_counter() - start
  if cuda:
    facts["train_memory"] = {"device_peak_bytes": torch.cuda.max_memory_allocated()}
  return {"forward": forward, "train": train_step, "sync": sync, "facts": facts}


def _namespace(d):
  return types.SimpleNamespace(**{k: _namespace(v) if isinstance(v, dict) else v
                                  for k, v in d.items()})


def serve(stdin=sys.stdin, stdout=sys.stdout):
  """The benchmark's PyTorch process: reads one JSON line `{"config": {...}, "variant",
  "batch", "compile"}`, prepares the network and answers its facts, then runs each
  command line (`forward` or `train`; `exit` or end of input stops), answering
  `{"ok": true}` once the result is ready, or `{"error": traceback}`. Answers are the
  lines of `stdout` that start with `{`; anything else printed goes to stderr."""
  sys.stdout = sys.stderr

  def answer(**message):
    stdout.write(json.dumps(message) + "\n")
    stdout.flush()

  try:
    spec = json.loads(stdin.readline())
    p = prepare(_namespace(spec["config"]), spec["variant"], spec["batch"], spec["compile"])
  except Exception:  # reported to the parent, which raises it
    answer(error=traceback.format_exc())
    return
  answer(facts=p["facts"])
  for line in stdin:
    command = line.strip()
    if command == "exit":
      break
    try:
      p["sync"](p[command]())
      answer(ok=True)
    except Exception:
      answer(error=traceback.format_exc())


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
  serve()
