r"""Where the R50 train step spends its time: one `jax.profiler` trace of the step as
`cost_jax.bench.model` compiles it, summed per kind of XLA operation.

  python -m benchmarks.profile_step [--variant=c2d] [--conv_impl=auto] [--batch=8] \
      [--clip=8,112] [--steps=2] [--trace_dir=/tmp/cost_profile]

Prints, per kind of operation (the HLO name without its number: `ynn_fusion`,
`transpose_copy_fusion`, `convolution`, ...), the milliseconds per step summed over
XLA's threads, and the step's wall time. On the CPU, XLA records each operation on the
thread that ran it; convolutions hand their work to Eigen's pool, where only the call is
recorded, so thread time not covered by named operations is mostly convolutions. Reads
the trace with TensorFlow's XPlane protobuf (installed with requirements.txt); the trace
itself opens in TensorBoard's or Perfetto's profile viewer.
"""

import collections
import glob
import os
import re
import time

from absl import app, flags

_VARIANT = flags.DEFINE_string("variant", "c2d", "ResNet variant.")
_CONV_IMPL = flags.DEFINE_string("conv_impl", "auto", "auto, 3d or 2d.")
_BATCH = flags.DEFINE_integer("batch", 8, "Clips per step.")
_CLIP = flags.DEFINE_list("clip", ["8", "112"], "Frames and crop size.")
_STEPS = flags.DEFINE_integer("steps", 2, "Steps traced.")
_TRACE_DIR = flags.DEFINE_string("trace_dir", "/tmp/cost_profile", "Where the trace goes.")
_TOP = flags.DEFINE_integer("top", 20, "Kinds of operation printed.")


def per_kind(trace_dir: str, steps: int) -> tuple[dict, float]:
  """({thread: {kind: ms per step}}, ms per step of named operations over all threads)."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2
  path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))[-1]
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  threads = collections.defaultdict(collections.Counter)
  for plane in space.planes:
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      for event in line.events:
        name = names.get(event.metadata_id, "?")
        # XLA's operations only: not Python's frames ("$file.py:line name"), JAX's and
        # PjRt's calls ("PjitFunction(jit(step))", "CommonPjRtLoadedExecutable::..."),
        # which wrap the step on the thread that calls it, or the executor's waits.
        if any(c in name for c in "$(: "):
          continue
        threads[line.name][re.sub(r"[.\d]+$", "", name)] += event.duration_ps / 1e9 / steps
  threads = {name: c for name, c in threads.items() if c}
  total = sum(sum(c.values()) for c in threads.values())
  return threads, total


def main(argv):
  del argv
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_cpu_enable_xprof_traceme=true").strip()
  import jax
  from configs import kinetics
  from cost_jax.bench import model as bench

  config = kinetics.get_config()
  config.model.variant, config.model.conv_impl = _VARIANT.value, _CONV_IMPL.value
  config.model.dtype = "float32"
  config.input.num_frames, config.input.crop_size = map(int, _CLIP.value)
  batch = _BATCH.value
  model, data, replicated, schedule, tx, state, inputs = bench.setup_step(config, batch)
  stop = bench._no_stop(data)
  step = bench._jit_train_step(model, tx, schedule, config, state, replicated, data).lower(
      state, inputs, stop).compile()
  for _ in range(2):
    state, metrics, _ = step(state, inputs, stop)
  jax.block_until_ready(metrics)
  with jax.profiler.trace(_TRACE_DIR.value):
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics, _ = step(state, inputs, stop)
    jax.block_until_ready(metrics)
    wall = (time.perf_counter() - start) / _STEPS.value * 1e3
  threads, total = per_kind(_TRACE_DIR.value, _STEPS.value)
  kinds = collections.Counter()
  for counter in threads.values():
    kinds.update(counter)
  print(f"{_VARIANT.value} train step, conv_impl {_CONV_IMPL.value}, batch {batch}, clip "
        f"{_CLIP.value[0]}x{_CLIP.value[1]}^2, float32, {jax.devices()[0].device_kind}")
  print(f"wall {wall:.1f} ms per step; named operations {total:.1f} ms of thread time "
        f"over {len(threads)} threads")
  print(f"{'ms/step':>9s}  {'share':>6s}  kind")
  for kind, ms in kinds.most_common(_TOP.value):
    print(f"{ms:9.1f}  {ms / total:6.1%}  {kind}")
  print(f"trace: {_TRACE_DIR.value}")


if __name__ == "__main__":
  app.run(main)
