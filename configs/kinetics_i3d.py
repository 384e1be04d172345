r"""Kinetics-400 with I3D (Carreira & Zisserman, CVPR 2017): Inception-v1 inflated to 3-D.

  python -m cost_jax.main --config=configs/kinetics_i3d.py --workdir=DIR \
      --config.dataset.data_dir=TFDS_DIR [--config.init_from=googlenet.safetensors]

Input as in the paper: 64 consecutive frames (25 fps, about 2.5 s), random 224x224 crops of
videos resized to short side 256, horizontal flips; at test time the paper runs the whole
video through the network and averages the logits, here `num_test_clips` 64-frame clips.
The paper trains with synchronous SGD, momentum 0.9, learning rate 0.1 divided by 10 when
the validation loss saturates, from an ImageNet Inception-v1 inflated by repeating each
2-D kernel over time and dividing by its length (`config.init_from` does that from a
torchvision GoogLeNet). This config keeps the paper's input and uses the project's fixed
step schedule (docs/design.md §3) scaled to the batch; adjust it per compute budget.
"""

from configs import kinetics


def get_config():
  config = kinetics.get_config()
  config.name = "kinetics400_i3d"
  config.model.variant = "i3d"
  config.model.width = 64              # the stem's channels; all others scale with it
  config.model.dropout_rate = 0.5
  config.input.num_frames = 64
  config.input.frame_stride = 1
  config.input.num_test_clips = 3      # 3 x 64 frames cover a 10 s clip at 25 fps
  config.input.num_test_crops = 1
  config.input.test_crop_size = 224
  config.optimizer.base_lr = 0.1
  config.optimizer.base_batch_size = 64
  config.optimizer.decay_epochs = (40, 60)
  config.num_epochs = 80
  return config
