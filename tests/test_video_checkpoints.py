"""Published Kinetics checkpoints: PyTorchVideo's zoo and the authors' MMAction2 layout,
loaded exactly (logits equal to PyTorch's), converted into run folders, and fine-tuned.

The PyTorch side is the real `pytorchvideo` 0.1.5 model code and, for MMAction2, the
authors' network in `cost_jax/bench/torch_models.py`, with random weights and BatchNorm
statistics taken from a batch (so that activations, and logits, stay of order one).
"""

import importlib
import json
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import processes  # noqa: E402
from cost_jax import experiment  # noqa: E402
from cost_jax.models import checkpoint_formats as formats  # noqa: E402
from cost_jax.bench import torch_models  # noqa: E402
from cost_jax.models import pretrained, resnet3d  # noqa: E402

PTV_ARCHS = {"c2d_r50": 8, "i3d_r50": 8, "slow_r50": 8, "r2plus1d_r50": 16}  # frames
PTV_PARAMS = {"c2d_r50": 24327632, "i3d_r50": 28043472, "slow_r50": 32454096,
              "r2plus1d_r50": 28107600}  # pytorchvideo 0.1.5, 400 classes
MMACTION2_VARIANTS = {"c2d_r50": "c2d", "i3d_r50": "c3d", "costa_r50": "costa",
                      "costb_r50": "costb"}


def pytorchvideo_hub():
  """`pytorchvideo.models.hub`. Its head module imports `torchvision.ops.RoIAlign`, used
  by detection heads only; where no torchvision matches the installed torch (a CPU
  wheel), a stand-in that refuses to be used takes its place."""
  pytest.importorskip("pytorchvideo")
  try:
    importlib.import_module("torchvision.ops")
  except Exception:  # noqa: BLE001  missing, or built for another torch
    for name in [m for m in sys.modules if m.startswith("torchvision")]:
      del sys.modules[name]
    vision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

    class RoIAlign:
      def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is not installed: no RoIAlign")

    ops.RoIAlign, vision.ops = RoIAlign, ops
    sys.modules.update({"torchvision": vision, "torchvision.ops": ops})
  return importlib.import_module("pytorchvideo.models.hub")


def calibrated(model, clip_shape):
  """Random weights, BatchNorm statistics of one random batch, eval mode."""
  torch.manual_seed(0)
  for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm3d):
      m.momentum = None  # the statistics of the batch seen, not a running blend
      torch.nn.init.uniform_(m.weight, 0.5, 1.5)
      torch.nn.init.uniform_(m.bias, -0.2, 0.2)
  model.train()
  with torch.no_grad():
    model(torch.randn(2, *clip_shape))
  return model.eval()


def torch_logits(model, clip: np.ndarray) -> np.ndarray:
  """Logits of a `(N, T, H, W, 3)` clip (PyTorch takes `(N, 3, T, H, W)`)."""
  with torch.no_grad():
    return model(torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 4, 1, 2, 3))
                                  )).numpy()


def jax_logits(model, variables, clip):
  return np.asarray(jax.jit(lambda v, x: model.apply(v, x))(variables, jnp.asarray(clip)))


def without_softmax(model):
  """PyTorchVideo's R(2+1)D head ends in a softmax; compare the logits before it."""
  model.blocks[-1].activation = None
  return model


@pytest.fixture(scope="module")
def hub():
  return pytorchvideo_hub()


def _abstract(variant):
  model = resnet3d.ResNet3D(depth=50, variant=variant, num_classes=400)
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 224, 224, 3)))


def _check_key_map(state_dict, variables, fmt, context):
  """The table maps every key of the file to a variable of the same size, and back."""
  from flax import traverse_util
  mapping = formats.key_map(variables, fmt, context)
  assert set(mapping) == {k for k in state_dict if not k.endswith("num_batches_tracked")}
  flat = {f"{c}/{p}": v for c in variables
          for p, v in traverse_util.flatten_dict(dict(variables[c]), sep="/").items()}
  assert set(mapping.values()) == set(flat)  # every variable comes from the file
  for key, path in mapping.items():
    converted = formats.to_flax(state_dict[key].numpy(), path, flat[path].shape)
    assert converted.shape == flat[path].shape, key


@pytest.mark.parametrize("arch", PTV_ARCHS)
def test_pytorchvideo_full_size_layouts_match_the_zoo(hub, arch):
  """Shape level, no compilation: parameter counts and every key, both ways."""
  entry = pretrained.ZOO["pytorchvideo"][arch]
  variables = _abstract(entry.variant)
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == PTV_PARAMS[arch]
  reference = getattr(hub, arch)(pretrained=False)
  assert sum(p.numel() for p in reference.parameters()) == PTV_PARAMS[arch]
  _check_key_map(reference.state_dict(), variables, "pytorchvideo",
                 pretrained.format_context("pytorchvideo", entry.variant))


@pytest.mark.parametrize("arch", MMACTION2_VARIANTS)
def test_mmaction2_full_size_layouts_match_the_authors(arch):
  variables = _abstract(MMACTION2_VARIANTS[arch])
  reference = torch_models.ResNet50(MMACTION2_VARIANTS[arch])
  assert (sum(x.size for x in jax.tree.leaves(variables["params"]))
          == sum(p.numel() for p in reference.parameters()))
  _check_key_map(reference.state_dict(), variables, "mmaction2", {})


@pytest.mark.parametrize("arch", PTV_ARCHS)
def test_pytorchvideo_logits_equal_pytorchs(hub, arch, tmp_path):
  """Thin networks (8 channels wide) built by pytorchvideo's own code, saved as the zoo
  saves them; the converted network gives the same logits."""
  frames = PTV_ARCHS[arch]
  reference = calibrated(without_softmax(getattr(hub, arch)(pretrained=False,
                                                            stem_dim_out=8)),
                         (3, frames, 224, 224))
  path = tmp_path / f"{arch}.pyth"
  torch.save({"model_state": reference.state_dict(), "train_epoch": 196}, path)
  model, variables = pretrained.from_pytorchvideo(str(path), arch, width=8)
  clip = np.random.default_rng(1).normal(size=(2, frames, 224, 224, 3)).astype(np.float32)
  expected = torch_logits(reference, clip)
  assert np.abs(expected).max() > 0.1  # logits that are not all zero
  np.testing.assert_allclose(jax_logits(model, variables, clip), expected, rtol=1e-4,
                             atol=1e-4)


@pytest.mark.parametrize("arch", MMACTION2_VARIANTS)
def test_mmaction2_logits_equal_the_authors_network(arch, tmp_path):
  reference = calibrated(torch_models.Recognizer(MMACTION2_VARIANTS[arch], width=8),
                         (3, 8, 64, 64))
  state_dict = reference.state_dict()
  if arch == "costb_r50":  # one as a file, the others as a state dict of numpy arrays
    source = str(tmp_path / "costb.pth")
    torch.save({"meta": {"epoch": 1}, "state_dict": state_dict}, source)
  else:
    source = {k: v.numpy() for k, v in state_dict.items()}
  model, variables = pretrained.from_mmaction2(source, arch, width=8)
  clip = np.random.default_rng(2).normal(size=(2, 8, 64, 64, 3)).astype(np.float32)
  expected = torch_logits(reference, clip)
  assert np.abs(expected).max() > 0.1
  np.testing.assert_allclose(jax_logits(model, variables, clip), expected, rtol=1e-4,
                             atol=1e-4)


def test_a_checkpoint_of_another_network_names_its_keys(hub, tmp_path):
  i3d = {k: v.numpy() for k, v in
         getattr(hub, "i3d_r50")(pretrained=False, stem_dim_out=8).state_dict().items()}
  with pytest.raises(formats.CheckpointMismatchError) as error:
    pretrained.from_pytorchvideo(i3d, "slow_r50", width=8)
  message = str(error.value)
  assert message.startswith("the checkpoint does not hold pytorchvideo's slow_r50 "
                            "(pytorchvideo layout): missing 97: blocks.2.res_blocks.0.")
  # slow_r50 has no pool block after res2, so its stages sit one block earlier.
  assert "; unexpected 97: blocks.4.res_blocks.3.branch2.conv_a.weight, " in message
  assert ("; mis-shaped 119: blocks.0.conv.weight (8, 3, 5, 7, 7), expected "
          "(8, 3, 1, 7, 7), ") in message
  with pytest.raises(formats.CheckpointMismatchError, match="mmaction2 layout.*missing "
                     r"267: backbone.conv1.bn.bias.*unexpected 267: blocks.0.conv.weight"):
    pretrained.from_mmaction2(i3d, "i3d_r50", width=8)


def test_convert_writes_a_run_that_predicts_as_pytorch_does_and_fine_tunes(
    hub, tmp_path, synthetic_tiny, caplog):
  """The command line on a full-size i3d_r50 file: the run folder's prediction of a video
  equals the PyTorch model's on the same views; fine-tuning loads all but the head."""
  reference = without_softmax(calibrated(hub.i3d_r50(pretrained=False), (3, 8, 224, 224)))
  checkpoint, run = tmp_path / "I3D_8x8_R50.pyth", tmp_path / "run"
  torch.save({"model_state": reference.state_dict()}, checkpoint)
  names = tmp_path / "label_map_k400.txt"
  names.write_text("".join(f"action {i}\n" for i in range(400)))
  # A relative --workdir, as users type it (orbax itself wants absolute paths).
  out = processes.run("cost_jax.convert", "--format=pytorchvideo", "--arch=i3d_r50",
                      f"--checkpoint={checkpoint}",
                      f"--workdir={os.path.relpath(run, processes.ROOT)}",
                      f"--class_names={names}")
  assert out.returncode == 0, out.stderr
  config = json.loads((run / "config.json").read_text())
  assert config["model"]["variant"] == "pytorchvideo_i3d"
  assert (config["input"]["num_frames"], config["input"]["frame_stride"]) == (8, 8)
  assert config["input"]["mean"] == [114.75] * 3
  assert json.loads((run / "dataset.json").read_text())["class_names"][7] == "action 7"
  assert json.loads((run / "converted.json").read_text())[
      "published_kinetics400_top1"] == 73.27

  # Predict one video as the run's test recipe does (1 clip, 1 crop here), in JAX and,
  # on the very same views, in PyTorch.
  import video_files
  from cost_jax.data import input as input_lib, video_io
  from cost_jax.predict import Predictor
  video = video_files.write_video(str(tmp_path / "v.mp4"), 70, 64, 80, seed=3)
  predictor = Predictor(run, num_clips=1, num_crops=1)
  probs = predictor.probabilities(video)
  frames = video_io.decode_video(video, short_side=predictor.short_side).frames
  views = input_lib.test_views(frames, predictor.config.input)
  normalised = (views.astype(np.float32) - 114.75) / 57.375
  expected = torch.softmax(torch.from_numpy(torch_logits(reference, normalised)), -1)
  # float32 through a full-size R50, as the import tests above allow on logits: the
  # peaked probabilities (0.69, 0.31) once differed from PyTorch's by 1.06e-5.
  np.testing.assert_allclose(probs, expected.numpy()[0], atol=1e-4)

  # Fine-tune on 8 classes: every variable but the classifier comes from the run.
  from configs import finetune
  from conftest import tiny_config
  config = finetune.get_config(str(run))
  tiny = tiny_config(synthetic_tiny)
  config.dataset, config.batch_size = tiny.dataset, 8
  config.input.update(num_frames=8, crop_size=32)
  caplog.set_level("INFO")
  state = experiment.init_state(experiment.setup(config))
  assert state.params["head"]["kernel"].shape == (2048, 8)
  np.testing.assert_array_equal(
      state.params["stem_conv"]["kernel"],
      np.transpose(reference.state_dict()["blocks.0.conv.weight"].numpy(), (2, 3, 4, 1, 0)))
  report = next(r.getMessage() for r in caplog.records if "initialised from" in r.getMessage())
  assert "2 keep their initialisation" in report
  assert "kept initialisation: params/head/bias, params/head/kernel" in report

  # Another network than the run's is refused, naming the difference.
  tiny.init_from = str(run)
  with pytest.raises(ValueError, match="holds another network.*model.variant"):
    experiment.init_state(experiment.setup(tiny))


def test_convert_refuses_a_truncated_file_in_one_line_and_writes_nothing(tmp_path):
  broken = tmp_path / "C2D_8x8_R50.pyth"
  torch.save({"model_state": torch_models.ResNet50("c2d", width=8).state_dict()}, broken)
  broken.write_bytes(broken.read_bytes()[:5000])
  out = processes.run("cost_jax.convert", "--format=pytorchvideo", "--arch=c2d_r50",
                      f"--checkpoint={broken}", f"--workdir={tmp_path / 'run'}")
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
  assert f"error: cannot read {broken} as a PyTorch checkpoint" in out.stderr
  assert "is the download complete?" in out.stderr
  assert not (tmp_path / "run").exists()
