r"""Converts a published PyTorch video checkpoint into a cost_jax run folder.

  python -m cost_jax.convert --format=pytorchvideo --arch=i3d_r50 \
      --checkpoint=I3D_8x8_R50.pyth --workdir=DIR [--class_names=label_map_k400.txt]
  python -m cost_jax.convert --format=mmaction2 --arch=costb_r50 --checkpoint=FILE.pth \
      --workdir=DIR

writes what a training workdir holds, so that `cost_jax.evaluate`, `cost_jax.predict` and
fine-tuning (`--config.init_from=DIR`, or `--config=configs/finetune.py:DIR`) use it as
it is:

  DIR/checkpoints/0/   the network's variables (orbax), every array of the file
  DIR/config.json      configs/kinetics.py with the network and the checkpoint's own test
                       recipe: normalisation, frames x sampling rate, short side, views
  DIR/dataset.json     the class names (Kinetics-400's with `--class_names`)
  DIR/converted.json   the source file, format, architecture and published top-1

Reading a .pyth/.pth file needs torch (CPU is enough); the run folder needs none. A file
of another architecture, a truncated file or the wrong format is refused, naming the
missing, unexpected and mis-shaped keys, and nothing is written.
"""

import importlib.util
import json
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags, logging
from etils import epath

from cost_jax import cli, errors, optim, steps, workdir as workdir_lib
from cost_jax.models import pretrained

_FORMAT = flags.DEFINE_enum("format", None, list(pretrained.ZOO),
                            "Layout of the checkpoint's keys.")
_ARCH = flags.DEFINE_string("arch", None, "Architecture: "
                            + "; ".join(f"{fmt}: {', '.join(archs)}"
                                        for fmt, archs in pretrained.ZOO.items()))
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The .pyth/.pth file (or "
                                  ".safetensors/.npz of the same keys).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run folder to write (new or empty).")
_CLASS_NAMES = flags.DEFINE_string(
    "class_names", None, "Class names in label order: a text file with one per line "
    "(MMAction2's label_map_k400.txt) or a JSON {name: index} (PyTorchVideo's "
    "kinetics_classnames.json). Default: class_000 ... class_399.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT_SIDE = 256  # the zoos' test recipe: short side 256, 3 crops of 256, 10 clips


def base_config() -> ml_collections.ConfigDict:
  """`configs/kinetics.py` of this checkout: every field a run's config has."""
  path = os.path.join(ROOT, "configs", "kinetics.py")
  if not os.path.exists(path):
    raise errors.MissingInputError(f"{path} not found: run the converter from a checkout "
                                   "of cost_jax")
  spec = importlib.util.spec_from_file_location("cost_jax_kinetics_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def run_config(fmt: str, arch: str, num_classes: int) -> ml_collections.ConfigDict:
  """The config of a converted checkpoint: its network and its own test recipe."""
  entry = pretrained.zoo_entry(fmt, arch)
  config = base_config()
  config.name = f"{fmt}_{arch}"
  m, i = config.model, config.input
  m.variant, m.depth, m.width, m.num_classes = entry.variant, 50, 64, num_classes
  m.dtype = "float32"
  i.num_frames, i.frame_stride = entry.num_frames, entry.frame_stride
  i.mean, i.std = entry.mean, entry.std
  i.eval_resize = i.test_crop_size = SHORT_SIDE
  i.num_test_clips, i.num_test_crops = 10, 3
  return config


def read_class_names(path: str | None, num_classes: int) -> list[str]:
  """Names in label order from a text file (one per line) or a JSON {name: index}."""
  if not path:
    return [f"class_{i:03d}" for i in range(num_classes)]
  path = epath.Path(path)
  if not path.exists():
    raise errors.MissingInputError(f"--class_names={path}: no such file")
  text = path.read_text()
  if path.suffix.lower() == ".json":
    by_index = {int(v): k for k, v in json.loads(text).items()}
    names = [by_index.get(i, f"class_{i:03d}") for i in range(num_classes)]
  else:
    names = [line.strip() for line in text.splitlines() if line.strip()]
  if len(names) != num_classes:
    raise errors.ConfigError(f"--class_names={path} lists {len(names)} classes; the "
                             f"checkpoint has {num_classes}")
  return names


def convert(fmt: str, arch: str, checkpoint, workdir, class_names: str | None = None
            ) -> dict:
  """Writes the run folder (see the module docstring); returns `converted.json`."""
  workdir = epath.Path(workdir)
  if (workdir / "checkpoints").exists() and any((workdir / "checkpoints").iterdir()):
    raise errors.WorkdirError(f"{workdir} already holds checkpoints: choose a new "
                              "--workdir")
  model, variables = pretrained.from_checkpoint(checkpoint, fmt, arch)
  names = read_class_names(class_names, model.num_classes)
  config = run_config(fmt, arch, model.num_classes)
  # A train state like training's, so that every tool restores it unchanged.
  tx = optim.create_optimizer(config.optimizer, lambda count: 0.0)
  state = steps.TrainState(np.zeros((), np.int32), variables["params"],
                           variables["batch_stats"],
                           jax.device_get(tx.init(variables["params"])))
  workdir.mkdir(parents=True, exist_ok=True)
  manager = workdir_lib.checkpoint_manager(workdir, config)
  try:
    manager.save(0, args=ocp.args.StandardSave(workdir_lib.as_dict(state)))
    manager.wait_until_finished()
  finally:
    manager.close()
  workdir_lib.write_run_info(workdir, config, names, short_side=SHORT_SIDE)
  entry = pretrained.zoo_entry(fmt, arch)
  info = {"format": fmt, "arch": arch, "checkpoint": os.fspath(checkpoint),
          "variant": entry.variant, "num_classes": model.num_classes,
          "arrays": len(jax.tree.leaves(variables)),
          "published_kinetics400_top1": entry.top1, "source": entry.source}
  (workdir / "converted.json").write_text(json.dumps(info, indent=1))
  return info


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  info = convert(_FORMAT.value, _ARCH.value, _CHECKPOINT.value, _WORKDIR.value,
                 _CLASS_NAMES.value)
  logging.info("converted %s", info)
  print(f"converted {info['format']} {info['arch']} ({info['arrays']} arrays, "
        f"{info['num_classes']} classes) -> {_WORKDIR.value}\n"
        f"evaluate: python -m cost_jax.evaluate --workdir={_WORKDIR.value}\n"
        f"fine-tune: python -m cost_jax.main --config=configs/finetune.py:{_WORKDIR.value} "
        "--workdir=NEW_DIR --config.dataset.name=video_folder/default")


if __name__ == "__main__":
  flags.mark_flags_as_required(["format", "arch", "checkpoint", "workdir"])
  cli.run(main)
