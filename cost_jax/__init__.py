"""cost_jax: CoST (Collaborative Spatio-Temporal feature learning) video models in JAX/Flax."""

from cost_jax import runtime as _runtime

__version__ = "0.1.0"

# Before JAX starts its backend: XLA's CPU flags that measure faster, a malloc that
# keeps freed memory for reuse, and CPU computations on the calling thread, so that a
# step's buffers come from that kept memory (`runtime`).
_runtime.set_xla_cpu_flags()
_runtime.keep_freed_memory()
_runtime.run_steps_on_calling_thread()
