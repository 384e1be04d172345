"""cost_jax: CoST (Collaborative Spatio-Temporal feature learning) video models in JAX/Flax."""

__version__ = "0.1.0"
