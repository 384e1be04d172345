"""Makes `import tensorflow` raise ImportError, as where it is not installed."""
import importlib.abc
import importlib.machinery
import sys


class _Refuse(importlib.abc.Loader):
  def create_module(self, spec):
    raise ImportError(f"No module named {spec.name!r} (TensorFlow is blocked here)")

  def exec_module(self, module):
    raise ImportError("blocked")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name == "tensorflow" or name.startswith("tensorflow."):
      return importlib.machinery.ModuleSpec(name, _Refuse())
    return None


sys.meta_path.insert(0, _NoTensorFlow())
