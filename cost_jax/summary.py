r"""Prints the parameter count, GFLOPs and per-stage shapes of the configured model.

  python -m cost_jax.summary --config=configs/kinetics.py \
      [--config.model.variant=costb --config.model.depth=101]

Needs no dataset: the clip shape comes from `config.input` and the class count from
`config.model.num_classes`. Nothing is compiled and no parameter is allocated.
"""

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from cost_jax import cli, models

def clip_shape(config, batch: int = 1) -> tuple[int, ...]:
  """`(batch, T, H, W, 3)` of a training clip under `config.input`."""
  return (batch, config.input.num_frames, config.input.crop_size, config.input.crop_size, 3)


def count_params(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def program_flops(fn, *args) -> float | None:
  """FLOPs of `fn(*args)` as written (a multiply-add is 2), from XLA's cost analysis of
  the program before any backend rewrites it; `args` may be arrays or shape structs.

  Counted by the CPU backend on every platform: GPU and TPU plugins give no analysis of
  an unoptimised program, and their compiled one leaves out the convolutions they hand
  to libraries (cuDNN). None where JAX has no CPU backend (`JAX_PLATFORMS` without cpu).
  """
  args = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
  try:
    cpu = jax.devices("cpu")[0]
  except RuntimeError:
    return None
  with jax.default_device(cpu):
    analysis = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
    analysis = analysis[0]
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def forward_flops(model, variables, shape) -> float | None:
  """FLOPs of one inference forward pass of `model` on float32 clips of `shape`."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return program_flops(lambda v, x: model.apply(v, x, train=False), variables, x)


def summarize(config, batch: int = 1) -> dict:
  """Shapes, parameters per stage and FLOPs per clip in a batch of `batch` (the
  per-batch work, BatchNorm's at inference, is shared), all from abstract evaluation.

  Returns:
    {'params': int, 'flops': float (per clip), 'stages': [(name, shape, params), ...]}
  """
  model = models.create_model(config.model)
  shape = clip_shape(config, batch)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  outputs = {k: v[0].shape[1:] for k, v in state["intermediates"].items()
             if isinstance(v, tuple)}  # stage outputs (inner layers sow into sub-dicts)
  params = variables["params"]
  stages = []
  for name, prefixes in type(model).STAGES.items():
    count = count_params([v for k, v in params.items() if k.startswith(prefixes)])
    out = outputs.get(name, (model.num_classes,))
    stages.append((name, tuple(out), count))
  # FLOPs of the operations as defined, however they run: XLA counts the 3-D forms
  # without the taps on zero padding, which the 2-D lowering of `video_ops` computes.
  flops = forward_flops(model.clone(conv_impl="3d"), variables, shape)
  flops = flops / batch if flops is not None else None
  return {"params": count_params(params), "flops": flops, "stages": stages}


def main(argv):
  del argv
  config = flags.FLAGS.config
  summary = summarize(config)
  m, i = config.model, config.input
  family = "Inception-v1" if m.variant in models.inception3d.VARIANTS else f"ResNet-{m.depth}"
  print(f"model: {family} {m.variant}, width {m.width}, {m.num_classes} classes, "
        f"clip {i.num_frames}x{i.crop_size}x{i.crop_size}, compute {m.dtype}")
  print(f"{'stage':8s}{'output (T, H, W, C)':>24s}{'params':>14s}")
  for name, out, count in summary["stages"]:
    print(f"{name:8s}{str(out):>24s}{count:>14,d}")
  print(f"params: {summary['params']}")
  flops = summary["flops"]
  print(f"gflops: {flops / 1e9:.2f}" if flops
        else "gflops: - (JAX has no CPU backend to count them)")


if __name__ == "__main__":
  # Defined here, not at import, so that other tools can import this module.
  config_flags.DEFINE_config_file("config", None, "Experiment config file.")
  flags.mark_flags_as_required(["config"])
  cli.run(main)
