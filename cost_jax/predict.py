r"""Predicts the class of videos with the latest checkpoint of a training workdir.

  python -m cost_jax.predict --workdir=DIR VIDEO.mp4 [VIDEO2.mp4 ...] [--num_clips=N
      --num_crops=1|3]

Each video is decoded with PyAV, preprocessed as in the multi-view test of the run's
config (`num_test_clips` x `num_test_crops` views, softmax averaged), and its five most
probable classes are printed. A missing or undecodable file gets a one-line error and the
other files are still predicted; the exit status is 1 if any file failed.
"""

import json
import sys

import jax
import numpy as np
from absl import app, flags
from etils import epath

from cost_jax import cli, evaluate, models, steps, workdir as workdir_lib
from cost_jax.data import input as input_lib, video_io


class Predictor:
  """The model of a workdir (of training or `cost_jax.convert`), ready to score videos;
  needs no dataset. `num_clips` and `num_crops` override the run's test views."""

  def __init__(self, workdir, num_clips: int | None = None, num_crops: int | None = None):
    workdir = epath.Path(workdir)
    self.config = evaluate.set_views(workdir_lib.load_run_config(workdir), num_clips,
                                     num_crops)
    info = json.loads((workdir / "dataset.json").read_text())
    self.class_names = info["class_names"]
    self.short_side = int(info.get("short_side") or 0)
    self.model = models.create_model(self.config.model, num_classes=len(self.class_names))
    variables, self.step = workdir_lib.read_variables(workdir)
    self.variables = jax.device_put(variables, jax.local_devices()[0])
    self._scores = jax.jit(lambda v, x: steps.predict_step(
        v["params"], v["batch_stats"], x, model=self.model,
        input_config=self.config.input)[0].mean(axis=0))

  def probabilities(self, path) -> np.ndarray:
    """Class probabilities `(C,)` of one video file; raises `video_io.VideoError`."""
    video = video_io.decode_video(path, short_side=self.short_side)
    views = input_lib.test_views(video.frames, self.config.input)
    return np.asarray(self._scores(self.variables, views[None]))

  def top5(self, path) -> list[tuple[str, float]]:
    probs = self.probabilities(path)
    return [(self.class_names[i], float(probs[i])) for i in np.argsort(-probs)[:5]]


def main(argv):
  videos = argv[1:]
  if not videos:
    raise app.UsageError("name one or more video files")
  predictor = Predictor(flags.FLAGS.workdir, flags.FLAGS.num_clips, flags.FLAGS.num_crops)
  failed = 0
  for path in videos:
    try:
      top = predictor.top5(path)
    except video_io.VideoError as e:
      print(f"{path}: cannot read the video: {e}", file=sys.stderr)
      failed += 1
      continue
    print(f"{path}:")
    for name, p in top:
      print(f"  {p:7.2%}  {name}")
  return 1 if failed else 0


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir (or converted checkpoint) whose "
                      "latest checkpoint to use.")
  flags.DEFINE_integer("num_clips", None, "Clips per video (default: the run's config).")
  flags.DEFINE_integer("num_crops", None, "1 or 3 crops (default: the run's config).")
  flags.mark_flags_as_required(["workdir"])
  cli.run(main)
