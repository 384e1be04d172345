r"""What BatchNorm costs in the R50 train step: Flax's `nn.BatchNorm`, the networks'
`cost_jax.models.batch_norm.BatchNorm` (hand-written gradient) and no normalisation at
all, timed side by side in one process with `cost_jax.bench.model`'s harness.

  python -m benchmarks.batch_norm [--variants=c2d,costb] [--batch=8] [--clip=8,112]

Runs the config's `conv_impl` ('auto'), float32, on whatever devices JAX sees.
"""

import flax.linen as nn
import jax.numpy as jnp
from absl import app, flags

from configs import kinetics
from cost_jax.bench import model as bench
from cost_jax.models import batch_norm, resnet3d

_VARIANTS = flags.DEFINE_list("variants", ["c2d", "costb"], "ResNet variants.")
_BATCH = flags.DEFINE_integer("batch", 8, "Clips per step.")
_CLIP = flags.DEFINE_list("clip", ["8", "112"], "Frames and crop size.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps.")


class NoNorm(nn.Module):
  """The identity, with `batch_stats` so that the train step runs unchanged."""
  use_running_average: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: object = None
  scale_init: object = None

  @nn.compact
  def __call__(self, x):
    self.variable("batch_stats", "mean", lambda: jnp.zeros((x.shape[-1],), jnp.float32))
    return x


NORMS = {"flax nn.BatchNorm": nn.BatchNorm, "cost_jax BatchNorm": batch_norm.BatchNorm,
         "none": NoNorm}


def main(argv):
  del argv
  config = kinetics.get_config()
  config.model.dtype = "float32"
  config.input.num_frames, config.input.crop_size = map(int, _CLIP.value)
  print(f"R50 train step, clip {_CLIP.value[0]}x{_CLIP.value[1]}^2, batch {_BATCH.value}, "
        f"float32, conv_impl {config.model.conv_impl}")
  print(f"{'variant':8s} {'normalisation':20s} {'step ms':>9s} {'vs flax':>8s}")
  try:
    for variant in _VARIANTS.value:
      config.model.variant = variant
      base = None
      for name, cls in NORMS.items():
        resnet3d.BatchNorm = cls  # what ResNet3D builds its norm layers from
        step = bench.benchmark_jax(config, _BATCH.value, 1,
                                   _REPEATS.value)["train"]["median_s"]
        base = base or step
        print(f"{variant:8s} {name:20s} {step * 1e3:9.1f} {step / base:8.2f}", flush=True)
  finally:
    resnet3d.BatchNorm = batch_norm.BatchNorm


if __name__ == "__main__":
  app.run(main)
