"""Coordination between the processes of one multi-host job (one process per host).

Built on the coordination service that `jax.distributed.initialize` starts (the same one
JAX uses for its own barriers): work that exactly one process may do (building a dataset,
locking the workdir) runs on process 0 while the others wait, with a timeout and a message
that names what they waited for. In a single-process run every helper just runs the work.

When another process of the job dies, a collective fails in the survivors (at once over
CPU/Gloo; on GPU/TPU JAX's distributed runtime reports the lost heartbeat within its
`heartbeat_timeout_seconds`, 100 s by default). `is_peer_failure` recognises that and
`abandon` ends the process at once with one clear line instead of hanging in JAX's
shutdown barrier.
"""

import fcntl
import itertools
import json
import os
import socket
import sys
import time
from typing import Callable, TypeVar

import jax
from absl import logging
from etils import epath
# The coordination client has no public accessor; JAX's own multihost_utils and orbax
# reach it the same way.
from jax._src import distributed as _distributed

from cost_jax import errors

T = TypeVar("T")
# Barrier and key names must be unique per use; every process calls these helpers in the
# same order, so a counter gives every process the same names.
_SEQUENCE = itertools.count()
EXIT_PEER_FAILURE = 3


class MultihostError(RuntimeError):
  """The processes of a job could not agree: one failed, or did not arrive in time."""


def _client():
  client = _distributed.global_state.client
  if client is None:
    raise MultihostError("jax.distributed.initialize() was not called in this "
                         f"{jax.process_count()}-process job")
  return client


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


def run_on_first(name: str, fn: Callable[[], T], timeout_s: float, what: str) -> T | None:
  """Runs `fn` on process 0 while every other process waits for it (at most `timeout_s`).

  Returns `fn()` on process 0 and None elsewhere. If `fn` raises, the error is raised on
  every process: the original on process 0; a `UserError` with the same message on the
  others when it was one, else a `MultihostError` naming process 0's error. `what` says
  what the others wait for, in the timeout's message ("the dataset build").
  """
  if jax.process_count() == 1:
    return fn()
  key = f"cost_jax/{name}/{next(_SEQUENCE)}"
  client = _client()
  if jax.process_index() == 0:
    try:
      value = fn()
    except BaseException as e:
      kind = "user" if isinstance(e, errors.UserError) else "error"
      client.key_value_set(key, json.dumps({kind: str(e) if kind == "user"
                                            else _first_line(e)}))
      raise
    client.key_value_set(key, json.dumps({}))
    return value
  logging.info("process %d waits for process 0: %s", jax.process_index(), what)
  try:
    outcome = json.loads(client.blocking_key_value_get(key, int(timeout_s * 1000)))
  except jax.errors.JaxRuntimeError as e:
    raise MultihostError(
        f"process {jax.process_index()} waited {timeout_s:.0f} s for process 0 to finish "
        f"{what}, in vain ({_first_line(e)}): see process 0's log; if it is just slow, "
        "start the job again once it has finished") from e
  if "user" in outcome:
    raise errors.UserError(outcome["user"])
  if "error" in outcome:
    raise MultihostError(f"process 0 failed during {what}: {outcome['error']}")
  return None


def barrier(name: str, timeout_s: float, what: str) -> None:
  """Waits until every process arrives (at most `timeout_s`); `what` names the wait."""
  if jax.process_count() == 1:
    return
  try:
    _client().wait_at_barrier(f"cost_jax/{name}/{next(_SEQUENCE)}",
                              int(timeout_s * 1000))
  except jax.errors.JaxRuntimeError as e:
    raise MultihostError(f"process {jax.process_index()} waited {timeout_s:.0f} s for "
                         f"the other processes ({what}), in vain ({_first_line(e)})") from e


# How a failed collective or coordination call reads once JAX or orbax re-raise it (some
# paths turn the runtime error into a ValueError).
_PEER_FAILURE_SIGNS = ("Gloo", "NCCL", "oordination", "heartbeat", "Connection reset",
                       "DEADLINE_EXCEEDED", "UNAVAILABLE")


def is_peer_failure(error: BaseException) -> bool:
  """Whether `error`, in a multi-process job, means another process is gone: a failed
  collective or a failed coordination call."""
  if jax.process_count() == 1:
    return False
  return (isinstance(error, (jax.errors.JaxRuntimeError, MultihostError))
          or any(sign in str(error) for sign in _PEER_FAILURE_SIGNS))


def abandon(error: BaseException, workdir=None) -> None:
  """Ends this process at once after one line naming `error` (never returns).

  Waiting for lost processes in JAX's shutdown barrier, or for a checkpoint that can no
  longer be committed, would hang; an unfinished checkpoint is left as a temporary folder
  that the next run ignores.
  """
  where = f" in {workdir}" if workdir else ""
  message = (f"error: process {jax.process_index()} of {jax.process_count()} stops: "
             f"{_first_line(error)}. Another process of the job has most likely failed "
             "or been killed (its log says why). Start the job again: it resumes from the "
             f"last complete checkpoint{where}.")
  logging.error("%s", message)
  print(message, file=sys.stderr, flush=True)
  logging.flush()
  sys.stdout.flush()
  os._exit(EXIT_PEER_FAILURE)


class FileLock:
  """An exclusive `flock` on a file, for processes that share a disk (one host, or NFS).

  The kernel releases it when the process ends, however it ends (SIGKILL, node loss), so
  a stale lock never blocks anyone. Object stores (gs://) have no locks: there it does
  nothing and `supported` is False. The file records who holds it, for error messages.
  """

  def __init__(self, path):
    self.path = epath.Path(path)
    self.supported = "://" not in os.fspath(self.path)
    self._file = None

  def acquire(self, blocking: bool = True) -> "FileLock":
    """Takes the lock, waiting for it when `blocking`; else `BlockingIOError` if held,
    with the holder's note (host, pid, since) as its message."""
    if not self.supported:
      return self
    self.path.parent.mkdir(parents=True, exist_ok=True)
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip()
      f.close()
      raise BlockingIOError(holder or "unknown holder") from None
    f.seek(0)
    f.truncate()
    f.write(f"host {socket.gethostname()}, pid {os.getpid()}, since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    self._file = f
    return self

  def release(self):
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
