"""What the command-line tools share: flag parsing that reports a bad `--config.*` override
in one line instead of a traceback. absl and ml_collections only (no TensorFlow)."""

import sys

from absl import app


def _override_error(argv, error: Exception) -> str:
  """`--config.model.varient=costb: config.model has no field 'varient'. Did you mean
  "variant" instead of "varient"?` from ml_collections' KeyError/AttributeError."""
  while error.args and isinstance(error.args[0], BaseException):  # AttributeError(KeyError)
    error = error.args[0]
  name, _, hint = str(error.args[0] if error.args else error).partition("\n")
  name = name.strip("'\"")
  for arg in argv[1:]:
    path = arg[2:].split("=")[0].split(".")
    if arg.startswith("--config.") and name in path[1:]:
      parent = ".".join(path[:path.index(name, 1)])
      return (f"error: {arg}: {parent} has no field {name!r}. {hint} "
              "The fields are those of the --config file.").replace("  ", " ")
  return f"error: a --config override names no field of the config: {name!r}. {hint}"


def parse_flags(argv):
  """`absl.app.run(main, flags_parser=parse_flags)`: absl's parsing (and its usage message
  for bad values), except that an override of a config field that does not exist exits
  with a one-line message."""
  try:
    return app.parse_flags_with_usage(argv)
  except (KeyError, AttributeError) as e:
    if not any(a.startswith("--config.") for a in argv[1:]):
      raise
    sys.exit(_override_error(argv, e))
