"""Times one CoST(a) layer: three view convolutions versus the fused 3x3x3 convolution,
with each convolution implementation (`config.model.conv_impl`).

  python -m benchmarks.cost_layer [--shape=N,T,H,W,C] [--dtype=float32] [--reps=20] \
      [--conv_impl=3d,2d]

Prints the median forward and forward+backward time of each path and their ratio, measured
side by side in one run on whatever device JAX sees.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from cost_jax.models.cost import CoST


def _median_time(fn, args, reps):
  jax.block_until_ready(fn(*args))  # compile and warm up
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times)), float(np.percentile(times, 90) - np.percentile(times, 10))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shape", default="8,4,28,28,128", help="N,T,H,W,C (C_in = C_out)")
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--reps", type=int, default=20)
  parser.add_argument("--conv_impl", default="3d,2d", help="implementations to time")
  args = parser.parse_args()
  n, t, h, w, c = (int(s) for s in args.shape.split(","))
  dtype = jnp.dtype(args.dtype)
  x = jax.random.normal(jax.random.key(0), (n, t, h, w, c), dtype)
  print(f"device: {jax.devices()[0].device_kind}  input {x.shape} {dtype}")
  for impl in args.conv_impl.split(","):
    results = {}
    for fused in (False, True):
      layer = CoST(c, "a", fused=fused, impl=impl, dtype=dtype)
      params = layer.init(jax.random.key(1), x)["params"]
      fwd = jax.jit(lambda p, x, layer=layer: layer.apply({"params": p}, x))
      loss = lambda p, x, layer=layer: jnp.sum(
          layer.apply({"params": p}, x).astype(jnp.float32) ** 2)
      bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
      results[fused] = (_median_time(fwd, (params, x), args.reps),
                        _median_time(bwd, (params, x), args.reps))
      name = f"{impl} {'fused 3x3x3' if fused else 'three views'}"
      (f, fs), (b, bs) = results[fused]
      print(f"{name:16s} forward {f*1e3:8.2f} ms (spread {fs*1e3:.2f})   "
            f"forward+backward {b*1e3:8.2f} ms (spread {bs*1e3:.2f})")
    ratio_f = results[True][0][0] / results[False][0][0]
    ratio_b = results[True][1][0] / results[False][1][0]
    print(f"{impl}: fused / views time: forward {ratio_f:.2f}x, forward+backward "
          f"{ratio_b:.2f}x")

if __name__ == "__main__":
  main()
