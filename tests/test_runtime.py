"""The process settings `import cost_jax` makes on the CPU (cost_jax/runtime.py), checked in
fresh processes: they only take effect before JAX starts its backend."""

import json
import os
import platform
import subprocess
import sys

import pytest

from cost_jax import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A jitted computation whose 128 MB intermediate (the first product, which the second
# reads) is one of XLA's temporary buffers; prints the minor page faults of its 3rd to
# 5th calls and the dispatch setting.
_PROBE = """
import json, resource
import cost_jax, jax, jax.numpy as jnp
f = jax.jit(lambda a, b, c: ((a @ b) @ c).max())
a, b, c = jnp.ones((8192, 256)), jnp.ones((256, 4096)), jnp.ones((4096, 16))
for _ in range(2):
  f(a, b, c).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
  f(a, b, c).block_until_ready()
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
                  "async": jax.config.read("jax_cpu_enable_async_dispatch")}))
"""


def _probe(**env) -> dict:
  environ = {k: v for k, v in os.environ.items()
             if k not in ("JAX_CPU_ENABLE_ASYNC_DISPATCH", "MALLOC_MMAP_MAX_",
                          "MALLOC_TRIM_THRESHOLD_")}
  environ.update(env, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _PROBE], env=environ, cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's malloc settings")
def test_a_steps_temporary_buffers_are_reused_not_mapped_afresh():
  # 128 MB mapped afresh per call would be 3 x 32768 faults of 4 KB pages.
  settled = _probe()
  assert settled["async"] is False
  assert settled["faults"] < 8192, settled
  # What the settings prevent, so that this test can fail: with malloc left as it is (a
  # MALLOC_ variable of the user's), the block is mapped afresh and faulted in each call.
  unsettled = _probe(MALLOC_TRIM_THRESHOLD_="131072")
  assert unsettled["faults"] > 3 * 32768 * 0.9, unsettled
  assert _probe(JAX_CPU_ENABLE_ASYNC_DISPATCH="true")["async"] is True


def test_the_users_settings_win():
  users = "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"
  environ = {"XLA_FLAGS": users}
  assert not runtime.set_xla_cpu_flags(environ) and environ["XLA_FLAGS"] == users
  low, high = runtime._FLAGS_CHECKED
  checked = low <= runtime._jaxlib_version() < high
  environ = {}
  assert runtime.set_xla_cpu_flags(environ) == (list(runtime.CPU_XLA_FLAGS) if checked else [])
  assert environ.get("XLA_FLAGS", "") == (" ".join(runtime.CPU_XLA_FLAGS) if checked else "")
  assert not runtime.run_steps_on_calling_thread({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "1"})
  assert not runtime.keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"})
  assert not runtime.keep_freed_memory({"MALLOC_MMAP_MAX_": "65536"})
