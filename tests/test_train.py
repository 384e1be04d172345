"""Training, checkpoints, resumption, evaluation and prediction on 8 simulated devices."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import demo
from conftest import tiny_config
from cost_jax import evaluate, experiment, predict, train, workdir
from cost_jax.data import input as input_lib, video_io
from cost_jax.data.builders.synthetic_motion import render_video
import processes
import video_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _restore_params(workdir, step=None):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  step = manager.latest_step() if step is None else step
  restored = manager.restore(step, args=ocp.args.StandardRestore())
  return step, restored["params"]


def test_training_steps_lower_the_loss_on_8_devices(synthetic_tiny):
  assert jax.device_count() == 8
  config = tiny_config(synthetic_tiny, **{"dataset.train_split": "train[:16]",
                                          "model.dropout_rate": 0.0,
                                          # smooth over 12 steps (the demo's False is
                                          # noisy here: 0.88 of the first loss)
                                          "model.zero_init_residual": True,
                                          "optimizer.base_lr": 0.05,
                                          "optimizer.schedule": "step",
                                          # windows of 21..24 pixels: resized in the step
                                          "input.min_resize": 32, "input.max_resize": 36})
  exp = experiment.setup(config)
  state = experiment.init_state(exp)
  step_fn = train.compile_train_step(exp, state)
  no_stop = train.Preemption().flags(exp)
  data = input_lib.train_batches(exp.dataset, config, exp.local_batch)
  losses = []
  for _ in range(12):
    batch = experiment.global_batch(exp, next(data))
    assert len(batch["video"].sharding.device_set) == 8  # the batch is split over devices
    assert batch["side"].shape == (16,) and int(batch["side"].min()) < 24
    state, metrics, stop = step_fn(state, batch, no_stop)
    assert not stop
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  assert step_fn._cache_size() == 1  # compiled once, never again
  assert int(state.step) == 12


class _SigtermAt:
  """Wraps the train dataset so that reading batch `n` sends this process SIGTERM."""

  def __init__(self, n, monkeypatch):
    real = input_lib.train_batches

    def wrapped(*args, **kwargs):
      def batches():
        for i, batch in enumerate(real(*args, **kwargs), start=1):
          if i == n:
            os.kill(os.getpid(), signal.SIGTERM)
          yield batch
      return batches()

    monkeypatch.setattr(input_lib, "train_batches", wrapped)


def test_sigterm_then_resume_equals_an_uninterrupted_run(synthetic_tiny, tmp_path,
                                                         monkeypatch):
  config = tiny_config(synthetic_tiny)
  straight = tmp_path / "straight"
  results = train.train_and_evaluate(config, straight)

  resumed = tmp_path / "resumed"
  with monkeypatch.context() as m:
    _SigtermAt(2, m)
    assert train.train_and_evaluate(config, resumed) == {}  # stopped, no test run
  step, _ = _restore_params(resumed)
  # The signal came while step 2's batch was read; the loop reads the stop flag one step
  # late, so every process stops after step 3.
  assert step == 3 and not (resumed / "results.json").exists()
  results_resumed = train.train_and_evaluate(config, resumed)

  _, a = _restore_params(straight)
  _, b = _restore_params(resumed)
  jax.tree.map(np.testing.assert_array_equal, a, b)  # bit for bit
  assert results_resumed == results

  # results.json: the fields, and every test video counted exactly once.
  saved = json.loads((straight / "results.json").read_text())
  assert saved == results
  for key in ("video_top1", "video_top5", "video_mean_class_accuracy", "clip_top1",
              "clip_top5", "clip_mean_class_accuracy"):
    assert 0.0 <= saved[key] <= 1.0
  assert saved["num_videos"] == synthetic_tiny.num_examples("test") == 24
  assert (saved["step"], saved["config"], saved["num_clips"]) == (6, "demo", 2)
  assert saved["video_top5"] >= saved["video_top1"]
  # Per class: the confusion matrix of the video predictions, consistent with top-1.
  confusion = np.array(saved["confusion_matrix"]["videos"])
  names = saved["confusion_matrix"]["class_names"]
  assert confusion.shape == (8, 8) and confusion.sum() == 24
  assert names == list(synthetic_tiny.class_names)
  assert np.trace(confusion) / 24 == pytest.approx(saved["video_top1"])
  per_class = saved["per_class_video_top1"]
  assert per_class == {n: confusion[i, i] / confusion[i].sum() for i, n in enumerate(names)}
  counts = [p["videos"] for p in saved["most_confused"]]
  assert counts == sorted(counts, reverse=True)
  assert all(confusion[names.index(p["true"]), names.index(p["predicted"])] == p["videos"]
             and p["true"] != p["predicted"] for p in saved["most_confused"])
  assert (straight / "confusion.png").read_bytes().startswith(b"\x89PNG")

  # The evaluate tool on the finished workdir reproduces the test.
  assert evaluate.evaluate_workdir(straight) == results

  # Prediction on a generated mp4, and a clear error for a corrupt one.
  good = video_files.write_rendered(str(tmp_path / "clip.mp4"), render_video(5, 1, 32, 8))
  predictor = predict.Predictor(straight)
  top = predictor.top5(good)
  assert len(top) == 5 and len({n for n, _ in top}) == 5
  assert sum(p for _, p in top) <= 1.0 + 1e-5
  # An AVI of MPEG-4 part 2 whose metadata is not UTF-8, as HMDB51's are.
  latin = video_files.write_encoded(tmp_path / "clip Ó.avi", 24, 32, 32, codec="mpeg4",
                                    title="Tr\xe4ume \xd3")
  assert len(predictor.top5(latin)) == 5
  bad = video_files.write_corrupt(str(tmp_path / "bad.mp4"))
  with pytest.raises(video_io.VideoError):
    predictor.top5(bad)
  out = subprocess.run([sys.executable, "-m", "cost_jax.predict", f"--workdir={straight}",
                        bad, good], cwd=ROOT, capture_output=True, text=True,
                       env=processes.environment())
  assert out.returncode == 1
  assert f"{bad}: cannot read the video" in out.stderr
  assert out.stdout.count("%") == 5 and out.stdout.startswith(f"{good}:")


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_tiny, tmp_path,
                                                             monkeypatch):
  config = tiny_config(synthetic_tiny, checkpoint_every_steps=2)
  real = input_lib.train_batches

  def poisoned(*args, **kwargs):
    for i, batch in enumerate(real(*args, **kwargs), start=1):
      if i == 5:
        batch = {**batch, "video": batch["video"] * np.nan}
      yield batch

  monkeypatch.setattr(input_lib, "train_batches", poisoned)
  with pytest.raises(FloatingPointError, match="at step 5.*last good checkpoint"):
    train.train_and_evaluate(config, tmp_path)
  step, params = _restore_params(tmp_path)
  assert step == 4
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


@pytest.mark.parametrize("override,message", [
    ({"model.variant": "cost"}, "config.model.variant='cost' is unknown"),
    ({"dataset.name": "kinetics/400"}, "not found in .*cost_jax.prepare kinetics"),
    ({"dataset.name": "ucf202"}, "config.dataset.name='ucf202' is not a known dataset"),
    ({"batch_size": 12}, "multiples of the 8 devices"),
])
def test_a_wrong_config_stops_before_compiling(synthetic_tiny, override, message):
  config = tiny_config(synthetic_tiny, **override)
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    experiment.setup(config)


def test_init_from_an_imagenet_state_dict(synthetic_tiny, tmp_path):
  import resnet2d_reference as ref
  from safetensors.numpy import save_file
  sd = ref.random_state_dict(blocks=(1, 1, 1, 1), width=8)
  save_file(sd, str(tmp_path / "r2d.safetensors"))
  config = tiny_config(synthetic_tiny, init_from=str(tmp_path / "r2d.safetensors"))
  config.model.variant = "costa"
  state = experiment.init_state(experiment.setup(config))
  np.testing.assert_array_equal(state.params["res3_0"]["conv2"]["kernel"],
                                np.transpose(sd["layer2.0.conv2.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(state.batch_stats["stem_bn"]["var"], sd["bn1.running_var"])
  # What the file lacks starts where a fresh start would.
  config.init_from = ""
  fresh = experiment.init_state(experiment.setup(config)).params
  np.testing.assert_array_equal(state.params["head"]["kernel"], fresh["head"]["kernel"])
  np.testing.assert_array_equal(state.params["res3_0"]["conv2"]["alpha"],
                                fresh["res3_0"]["conv2"]["alpha"])


def test_config_differences_name_the_changed_fields():
  old = demo.get_config()
  new = demo.get_config()
  new.optimizer.base_lr = 0.5
  new.input.mean = (1.0, 2.0, 3.0)
  assert workdir.config_differences(old, new) == [
      "input.mean: [123.675, 116.28, 103.53] -> [1.0, 2.0, 3.0]",
      "optimizer.base_lr: 0.1 -> 0.5"]
  assert workdir.config_differences(old, demo.get_config()) == []


def test_repeated_validation_compiles_once(synthetic_tiny):
  exp = experiment.setup(tiny_config(synthetic_tiny))
  state = experiment.init_state(exp)
  first, second = evaluate.validate(exp, state), evaluate.validate(exp, state)
  assert first == second
  assert exp.compiled["predict"]._cache_size() == 1


def test_the_first_checkpoint_save_compiles_nothing(tmp_path):
  """Each replicated array is written whole by one replica: orbax's replica-parallel
  default compiled a slicing function per array shape and device at the first save
  (7.6 s of a tiny network's first save on these 8 devices)."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  kernel = jax.device_put(np.arange(120, dtype=np.float32).reshape(3, 5, 8), replicated)
  lowered = []

  def listen(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
      lowered.append(event)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    manager = workdir.checkpoint_manager(tmp_path)
    manager.save(0, args=ocp.args.StandardSave({"params": {"kernel": kernel}}))
    manager.wait_until_finished()
    manager.close()
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  assert not lowered
  np.testing.assert_array_equal(_restore_params(tmp_path, 0)[1]["kernel"], kernel)
