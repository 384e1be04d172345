r"""Where the train step's time goes against PyTorch's, convolution by convolution: every
distinct convolution of a network, timed as its train step runs it, in JAX and in
PyTorch, taking turns.

  python -m benchmarks.conv_layers [--variant=c2d] [--conv_impl=auto] [--batch=8] \
      [--clip=8,112] [--rounds=10]

The convolutions are those `video_ops.conv` runs while the configured network (configs/
kinetics.py with the flags above) is traced; identical ones (input shape, kernel,
strides, padding) are timed once and counted. Each is timed forward, and as a train-like
step: forward, then the input gradient (not for the network's first convolution, whose
input is the clip) and the kernel gradient of 1/2 sum(y^2). PyTorch runs `F.conv3d` on
channels-last 3-D tensors, as `cost_jax/bench/torch_models.py` does (on the GPU when JAX
runs on one), in a process of its own that imports torch only; each round times every
convolution in JAX, then in PyTorch. Prints per convolution the median milliseconds of
both and their ratio, then the sums weighted by how many the network has. Without torch
installed, JAX's column only.
"""

import json
import os
import sys
import time
import traceback

import numpy as np

_TORCH_CHILD = "--torch_child"


def _layer_text(layer: dict) -> str:
  kt, kh, kw, i, o = layer["kernel"]
  return (f"{'x'.join(map(str, layer['input'][:4]))} {kt}x{kh}x{kw} {i}->{o} "
          f"s{''.join(map(str, layer['strides']))}")


def capture(config, batch: int) -> list[dict]:
  """The distinct convolutions the network runs, in the order met: input, kernel and
  output shapes, strides, explicit padding, count, and whether the input needs a
  gradient (all but the first)."""
  import jax
  import jax.numpy as jnp
  from cost_jax import models
  from cost_jax import summary
  from cost_jax.models import video_ops

  layers, original = {}, video_ops.conv

  def recorder(x, kernel, strides=1, padding="SAME", impl="auto"):
    s = video_ops._triple(strides)
    key = (tuple(x.shape), tuple(kernel.shape), s,
           video_ops.explicit_padding(x.shape, kernel.shape[:3], s, padding))
    y = original(x, kernel, strides, padding, impl)
    layers.setdefault(key, {"input": key[0], "kernel": key[1], "strides": s,
                            "padding": key[3], "output": tuple(y.shape), "count": 0,
                            "input_grad": bool(layers)})
    layers[key]["count"] += 1
    return y

  model = models.create_model(config.model)
  clip = jax.ShapeDtypeStruct(summary.clip_shape(config, batch), jnp.float32)
  video_ops.conv = recorder
  try:
    jax.eval_shape(lambda v: model.init(jax.random.key(0), v), clip)
  finally:
    video_ops.conv = original
  return list(layers.values())


def jax_runs(layers: list[dict], impl: str):
  """Per convolution, (forward, step): calls with no arguments that return when done."""
  import jax
  from cost_jax.models import video_ops

  rng = np.random.default_rng(0)
  runs = []
  for layer in layers:
    x = jax.device_put(rng.standard_normal(layer["input"], np.float32))
    k = jax.device_put(rng.standard_normal(layer["kernel"], np.float32) * 0.05)
    f = lambda x, k, l=layer: video_ops.conv(x, k, l["strides"], l["padding"], impl)

    def step(x, k, f=f, wrt_x=layer["input_grad"]):  # the gradients of 1/2 sum(y^2)
      y, vjp = jax.vjp(f, x, k) if wrt_x else jax.vjp(lambda k: f(x, k), k)
      return vjp(y)

    fwd, step = jax.jit(f), jax.jit(step)
    runs.append((lambda fwd=fwd, x=x, k=k: jax.block_until_ready(fwd(x, k)),
                 lambda step=step, x=x, k=k: jax.block_until_ready(step(x, k))))
  return runs


def torch_runs(layers: list[dict], gpu: bool = False):
  """`jax_runs` for PyTorch: `F.conv3d` on channels-last 3-D tensors, on the GPU with
  `gpu` (each convolution's fastest cuDNN algorithm picked at its first call)."""
  import torch
  import torch.nn.functional as F

  torch.manual_seed(0)
  cl = torch.channels_last_3d
  device = torch.device("cuda" if gpu else "cpu")
  torch.backends.cudnn.benchmark = gpu
  sync = torch.cuda.synchronize if gpu else (lambda: None)
  runs = []
  for layer in layers:
    n, t, h, w, c = layer["input"]
    kt, kh, kw, i, o = layer["kernel"]
    pads = layer["padding"]
    x = torch.randn(n, c, t, h, w, device=device).contiguous(memory_format=cl)
    x.requires_grad_(layer["input_grad"])
    k = (torch.randn(o, i, kt, kh, kw, device=device) * 0.05).contiguous(
        memory_format=cl).requires_grad_()
    symmetric = all(lo == hi for lo, hi in pads)

    def conv(x=x, k=k, s=layer["strides"], pads=pads, symmetric=symmetric):
      if symmetric:
        return F.conv3d(x, k, stride=s, padding=[lo for lo, _ in pads])
      flat = [p for pair in reversed(pads) for p in pair]  # (w_lo, w_hi, h_lo, ...)
      return F.conv3d(F.pad(x, flat), k, stride=s)

    def forward(conv=conv):
      with torch.no_grad():
        y = conv()
      sync()
      return y

    def step(conv=conv, x=x, k=k):
      y = conv()
      y.backward(y.detach())
      sync()
      x.grad = k.grad = None

    n, t, h, w, o = layer["output"]
    shape = tuple(forward().shape)
    if shape != (n, o, t, h, w):  # the same convolution as JAX's
      raise ValueError(f"{_layer_text(layer)}: PyTorch's output is {shape}, "
                       f"JAX's {tuple(layer['output'])} (N, T, H, W, C)")
    runs.append((forward, step))
  return runs


def time_round(runs) -> list[tuple[float, float]]:
  """One call of each (forward, step): seconds."""
  out = []
  for forward, step in runs:
    start = time.perf_counter()
    forward()
    middle = time.perf_counter()
    step()
    out.append((middle - start, time.perf_counter() - middle))
  return out


def torch_child(stdin=sys.stdin, stdout=sys.stdout):
  """Reads the layers and the device (one JSON line), then answers each line with one
  round's times (`{"times": ...}`), or `{"error": traceback}`; as `torch_models.serve`,
  anything else printed goes to stderr."""
  sys.stdout = sys.stderr

  def answer(**message):
    stdout.write(json.dumps(message) + "\n")
    stdout.flush()

  try:
    runs = torch_runs(**json.loads(stdin.readline()))
  except Exception:  # reported to the parent, which raises it
    answer(error=traceback.format_exc())
    return
  answer(ready=True)
  for _ in stdin:
    answer(times=time_round(runs))


def torch_rounds(layers: list[dict], gpu: bool = False):
  """The PyTorch side in a process of its own (`torch_child`), prepared: its `ask("round",
  ...)["times"]` times one round."""
  from cost_jax.bench import torch_process
  child = torch_process.TorchChild(
      ["-m", "benchmarks.conv_layers", _TORCH_CHILD], "PyTorch convolutions",
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  child.ask(json.dumps({"layers": layers, "gpu": gpu}), "preparing")
  return child


def table(layers, jax_t, torch_t) -> str:
  """Medians per convolution and count-weighted sums, in ms."""
  med = lambda t: np.median(np.asarray(t), axis=0) * 1e3 if t else None
  j, p = med(jax_t), med(torch_t)
  lines = [f"{'convolution (N x T x H x W kernel I->O strides)':<44}{'count':>6}"
           f"{'jax fwd':>9}{'torch fwd':>10}{'jax step':>10}{'torch step':>11}"
           f"{'step ratio':>11}{'count x diff':>13}"]
  counts = np.array([l["count"] for l in layers])
  for n, layer in enumerate(layers):
    row = f"{_layer_text(layer):<44}{layer['count']:>6}{j[n, 0]:>9.1f}"
    if p is None:
      row += f"{'-':>10}{j[n, 1]:>10.1f}{'-':>11}"
    else:
      row += (f"{p[n, 0]:>10.1f}{j[n, 1]:>10.1f}{p[n, 1]:>11.1f}{j[n, 1] / p[n, 1]:>11.2f}"
              f"{layer['count'] * (j[n, 1] - p[n, 1]):>13.1f}")
    lines.append(row)
  js = counts @ j
  total = f"{'sum over the network':<44}{counts.sum():>6}{js[0]:>9.1f}"
  if p is None:
    lines.append(total + f"{'-':>10}{js[1]:>10.1f}")
  else:
    ps = counts @ p
    lines.append(total + f"{ps[0]:>10.1f}{js[1]:>10.1f}{ps[1]:>11.1f}{js[1] / ps[1]:>11.2f}"
                 f"{js[1] - ps[1]:>13.1f}")
  return "\n".join(lines)


def main(argv):
  del argv
  from absl import flags
  import jax
  from configs import kinetics
  from cost_jax.models import video_ops

  f = flags.FLAGS
  config = kinetics.get_config()
  config.model.variant, config.model.conv_impl = f.variant, f.conv_impl
  config.model.dtype = "float32"
  config.input.num_frames, config.input.crop_size = map(int, f.clip)
  layers = capture(config, f.batch)
  impl = video_ops.resolve(f.conv_impl)
  runs = jax_runs(layers, impl)
  try:
    torch_side = torch_rounds(layers, gpu=jax.devices()[0].platform == "gpu")
  except RuntimeError as e:  # torch missing: JAX only
    print(f"PyTorch not timed ({e}); pip install torch==2.13.0 to compare", flush=True)
    torch_side = None
  jax_t, torch_t = [], []
  for r in range(f.warmup + f.rounds):
    times = time_round(runs)
    other = torch_side.ask("round", "timing a round")["times"] if torch_side else None
    if r >= f.warmup:
      jax_t.append(times)
      if other:
        torch_t.append(other)
  if torch_side:
    torch_side.close()
  device = jax.devices()[0]
  where = (f"cpu ({os.cpu_count()} cores)" if device.platform == "cpu"
           else f"{device.platform} ({device.device_kind})")
  print(f"{f.variant} convolutions, conv_impl {impl}, batch {f.batch}, clip "
        f"{f.clip[0]}x{f.clip[1]}^2, float32, {where}, medians of {f.rounds} rounds, ms")
  print(table(layers, jax_t, torch_t))


if __name__ == "__main__":
  if _TORCH_CHILD in sys.argv:
    torch_child()
  else:
    from absl import app, flags
    flags.DEFINE_string("variant", "c2d", "ResNet variant.")
    flags.DEFINE_string("conv_impl", "auto", "auto, 3d or 2d.")
    flags.DEFINE_integer("batch", 8, "Clips per step.")
    flags.DEFINE_list("clip", ["8", "112"], "Frames and crop size.")
    flags.DEFINE_integer("rounds", 10, "Timed rounds.")
    flags.DEFINE_integer("warmup", 2, "Untimed rounds first.")
    app.run(main)
