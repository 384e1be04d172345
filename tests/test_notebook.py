"""The Colab notebook runs top to bottom (a tiny configuration), so it cannot rot."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "cost_jax_colab.ipynb")


def test_notebook_has_no_committed_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  # The kernel inherits this environment: CPU, 8 simulated devices (conftest), tiny run.
  monkeypatch.setenv("COST_JAX_NOTEBOOK_TEST", "1")
  monkeypatch.setenv("COST_JAX_WORKDIR", str(tmp_path / "run"))
  monkeypatch.setenv("COST_JAX_DATA_DIR", str(tmp_path / "tfds"))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}})
  try:
    client.execute()
  except Exception as e:  # the failing cell's traceback is in the message
    pytest.fail(f"the notebook failed: {e}")
  text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
  assert "runtime: cpu" in text and "8 devices" in text
  assert "true class:" in text and os.path.exists(tmp_path / "run" / "coefficients.png")
  images = [o for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert len(images) == 2  # the training curves and the coefficient figure
