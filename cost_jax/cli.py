"""What the command-line tools share: `run(main)`, which reports a bad `--config.*`
override, a `--config` file that cannot be read, and any `errors.UserError`, in one line
(status 2) instead of a traceback. absl only at import (no JAX, no TensorFlow)."""

import atexit
import os
import sys
import threading

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


def _config_files(argv) -> dict[str, str]:
  """`{flag name: PATH}` of the config file flags (`--config=PATH`) given in `argv`."""
  from absl import flags
  # A command with a config flag has imported ml_collections to define it; the others
  # (prepare, predict) need not pay for its import (40 ms) here.
  config_flags = sys.modules.get("ml_collections.config_flags.config_flags")
  if config_flags is None:
    return {}
  names = [n for n in flags.FLAGS if config_flags.is_config_flag(flags.FLAGS[n])]
  args, out = argv[1:], {}
  for i, arg in enumerate(args):
    for name in names:
      if arg.startswith(f"--{name}="):
        out[name] = arg.split("=", 1)[1]
      elif arg == f"--{name}" and i + 1 < len(args):
        out[name] = args[i + 1]
  return out


def _config_file_error(files: dict[str, str], error: OSError) -> str:
  """`error: --config=configs/nope.py: cannot load the config file: [Errno 2] No such
  file or directory: 'configs/nope.py' (...)` from ml_collections' error."""
  name, path = next(((n, p) for n, p in files.items() if p.split(":", 1)[0] in str(error)),
                    next(iter(files.items())))
  reason = str(error).strip().splitlines()[-1].strip().removeprefix(
      "Configuration is not available because of an earlier failure to load: ")
  hint = ("" if os.path.exists(path.split(":", 1)[0]) else
          f" (the path is read from the current folder, {os.getcwd()}; the configs that "
          "come with cost_jax are in configs/ at the repository's root)")
  return f"error: --{name}={path}: cannot load the config file: {reason}{hint}"


def _user_error(line: str):
  """Ends the program with `line` (`error: ...`) and status 2: every user error."""
  print(line, file=sys.stderr, flush=True)
  sys.exit(2)


def parse_flags(argv):
  """`absl.app.run(main, flags_parser=parse_flags)`: absl's parsing (and its usage message
  for bad values), except that an override of a config field that does not exist, or a
  config file that cannot be read, exits with a one-line message. (ml_collections keeps
  a config file's read error until the config is first used, after JAX and TensorFlow
  have started, and then raises it with a traceback.)"""
  try:
    args = app.parse_flags_with_usage(argv)
  except (KeyError, AttributeError) as e:
    if not any(a.startswith("--config.") for a in argv[1:]):
      raise
    _user_error(_override_error(argv, e))
  except OSError as e:  # the file of a config with overrides
    files = _config_files(argv)
    if not files:
      raise
    _user_error(_config_file_error(files, e))
  from absl import flags
  files = _config_files(argv)
  for name in files:
    try:
      getattr(flags.FLAGS[name].value, "keys", None)  # any use raises the read error
    except OSError as e:
      _user_error(_config_file_error(files, e))
  return args


def run(main) -> None:
  """`absl.app.run(main)` with `parse_flags`, where a `UserError` (a wrong config, a
  missing dataset or file, an unusable workdir) ends the program with one line,
  `error: ...`, and status 2, and where a lost process of a multi-host job ends this one
  at once (`multihost.abandon`) instead of hanging. The exit skips the interpreter's
  teardown (`_exit`), unless a profiler or coverage tool watches."""
  from cost_jax import errors, multihost  # multihost imports jax: not needed for parsing

  def guarded(argv):
    try:
      return main(argv)
    except errors.UserError as e:
      _user_error(f"error: {e}")
    except Exception as e:  # noqa: BLE001  only to recognise a lost process
      if multihost.is_peer_failure(e):
        multihost.abandon(e)
      raise

  try:
    app.run(guarded, flags_parser=parse_flags)
  except SystemExit as e:
    if _observed():  # a profiler or coverage writes its data after this returns
      raise
    _exit(e.code)


def _observed() -> bool:
  """Whether a profiler, tracer, debugger or coverage tool watches this process."""
  if sys.gettrace() or sys.getprofile():
    return True
  monitoring = getattr(sys, "monitoring", None)  # Python 3.12's cProfile and coverage
  return bool(monitoring and any(monitoring.get_tool(i) for i in range(6)))


def _exit(code) -> None:
  """Ends the process as `sys.exit(code)` would, less the interpreter's teardown.

  The exit handlers still run (JAX's distributed shutdown, log flushing) after every
  non-daemon thread has ended, as at a normal exit; what is skipped is freeing every
  module's objects, which takes about 2 s once TensorFlow and JAX are loaded, in every
  command. Files are flushed and closed by the code that writes them, not left to this.
  """
  if code is not None and not isinstance(code, int):  # sys.exit("message")
    print(code, file=sys.stderr)
  for thread in threading.enumerate():
    if thread is not threading.main_thread() and not thread.daemon:
      thread.join()
  atexit._run_exitfuncs()  # noqa: SLF001  the handlers a normal exit would run
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code if isinstance(code, int) else (0 if code is None else 1))
