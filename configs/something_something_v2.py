r"""Something-Something v2, ResNet-50 CoST(b), 8 segments: TSM's recipe for the dataset.

  python -m cost_jax.prepare something_something_v2 --videos=DIR --annotations=DIR \
      --data_dir=DATA
  python -m cost_jax.main --config=configs/something_something_v2.py --workdir=DIR \
      --config.dataset.data_dir=DATA [--config.init_from=resnet50.safetensors]

The recipe is the one the TSM authors give for Something-Something from ImageNet
(mit-han-lab/temporal-shift-module, README: 8 segments, lr 0.01 per 64 clips, 50 epochs
decayed x0.1 at 20 and 40, dropout 0.5, gradient norm clipped at 20; weight decay 5e-4,
its opts.py default): clips of one frame from each of 8 equal segments
(`config.input.sampling='segments'`), 224 crops, the multi-view test of 2 clips x 3 crops.
Start from an ImageNet ResNet-50 (`config.init_from`, as TSM does) or from a Kinetics run
(`config.init_from=RUN`, whose classifier is left out).

Flips: on, with `mirror_classes`: a flipped clip of "Pushing something from left to
right" is labelled "Pushing something from right to left" (and the other pairs that
differ by left/right); classes without a direction keep their label. The classes are the
ones of `something-something-v2-labels.json`, 174 of them.
"""

from configs import kinetics


def get_config():
  config = kinetics.get_config()
  config.name = "something_something_v2_r50"
  config.model.variant = "costb"
  config.model.num_classes = 174
  config.model.dropout_rate = 0.5
  config.dataset.name = "something_something_v2"
  config.dataset.eval_split = "validation"
  config.dataset.test_split = "validation"
  config.input.sampling = "segments"
  config.input.num_frames = 8
  config.input.flip = True
  config.input.mirror_classes = True
  config.input.num_test_clips = 2
  config.input.num_test_crops = 3
  config.num_epochs = 50
  config.eval_every_steps = 2000
  config.optimizer.base_lr = 0.01
  config.optimizer.base_batch_size = 64
  config.optimizer.weight_decay = 5e-4
  config.optimizer.grad_clip_norm = 20.0
  config.optimizer.schedule = "step"
  config.optimizer.decay_epochs = (20, 40)
  return config
