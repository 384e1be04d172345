r"""Fine-tunes a pretrained network on your videos: a converted Kinetics checkpoint
(`python -m cost_jax.convert`) or any training workdir.

  python -m cost_jax.main --config=configs/finetune.py:RUN --workdir=DIR \
      --config.dataset.name=video_folder/default --config.dataset.data_dir=DATA

takes the network (`model`) and the clip recipe (`input`) from `RUN/config.json` and
starts from RUN's weights (`init_from`): every variable is loaded but the classifier,
which is sized for the new dataset and starts fresh (the log lists both). The schedule is
short and gentle, as fine-tuning wants: 30 epochs, cosine decay from 0.001 per 64 clips,
one warm-up epoch. Without `:RUN` this is the same recipe with a fresh network.
"""

import json
import os

from configs import kinetics


def get_config(run: str = ""):
  config = kinetics.get_config()
  config.name = "finetune"
  if run:
    path = os.path.join(run, "config.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} not found: configs/finetune.py:RUN needs a run "
                              "folder (python -m cost_jax.convert, or a training workdir)")
    with open(path) as f:
      saved = json.load(f)
    config.model.update(saved["model"])
    config.input.update(saved["input"])
    config.init_from = run
  config.model.num_classes = 0          # the dataset's
  config.dataset.name = "video_folder/default"
  config.dataset.test_split = "validation"
  config.batch_size = config.eval_batch_size = 32
  config.num_epochs = 30
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.optimizer.base_lr = 0.001
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  return config
