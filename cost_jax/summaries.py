"""Where training metrics go: log lines, and TensorBoard event files on process 0.

clu's writers where they import (they need TensorFlow); without TensorFlow, the same two
made with the `tensorboard` package's own event writer, so that a training machine with
only JAX keeps its TensorBoard curves.
"""

import time

from absl import logging
from etils import epath


class EventWriter:
  """`write_scalars(step, {name: value})` as a log line and (unless `just_logging`) a
  TensorBoard event; clu's `MetricWriter` interface, as far as training uses it."""

  def __init__(self, workdir, just_logging: bool = False):
    self._events = None
    if not just_logging:
      from tensorboard.summary.writer.event_file_writer import EventFileWriter
      epath.Path(workdir).mkdir(parents=True, exist_ok=True)
      self._events = EventFileWriter(str(workdir))

  def write_scalars(self, step: int, scalars: dict):
    logging.info("[%d] %s", step, ", ".join(f"{k}={v:.6g}" for k, v in
                                             sorted(scalars.items())))
    if self._events is None:
      return
    from tensorboard.compat.proto import event_pb2, summary_pb2
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
              for k, v in sorted(scalars.items())]
    self._events.add_event(event_pb2.Event(step=int(step), wall_time=time.time(),
                                           summary=summary_pb2.Summary(value=values)))

  def flush(self):
    if self._events is not None:
      self._events.flush()

  def close(self):
    if self._events is not None:
      self._events.close()


def create_writer(workdir, just_logging: bool = False):
  """clu's default writer where TensorFlow is installed, else an `EventWriter`."""
  try:
    from clu import metric_writers
  except ImportError:
    return EventWriter(workdir, just_logging)
  return metric_writers.create_default_writer(workdir, just_logging=just_logging)
