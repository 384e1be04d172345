"""cost_jax: CoST (Collaborative Spatio-Temporal feature learning) video models in JAX/Flax."""

from cost_jax import runtime as _runtime

__version__ = "0.1.0"

# Before JAX starts its backend: XLA's CPU flags that measure faster, and a malloc that
# reuses freed memory (`runtime`).
_runtime.set_xla_cpu_flags()
_runtime.keep_freed_memory()
