"""Errors whose message is the whole story: the command-line tools print them in one line.

`UserError` marks a problem with what the user gave (a config field, a dataset, a folder,
a file) and says how to fix it; `cli.run` prints it as `error: ...` without a traceback
and exits with status 2. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A problem with the user's input; the message names it and the fix."""


class ConfigError(UserError, ValueError):
  """A config field with a wrong or missing value."""


class MissingInputError(UserError, FileNotFoundError):
  """A file or folder, named by a flag or a config field, that does not exist."""


class DatasetNotFoundError(MissingInputError):
  """A dataset that is not built where the config points."""


class WorkdirError(UserError):
  """A workdir that cannot be used: unwritable, busy with another job, or holding a run
  of another model."""
