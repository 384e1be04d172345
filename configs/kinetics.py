r"""Kinetics-400, ResNet-50, 8x8 clips: the authors' recipe (docs/design.md §3).

  python -m cost_jax.main --config=configs/kinetics.py --workdir=DIR \
      --config.model.variant=costb --config.dataset.data_dir=TFDS_DIR

Variants: c2d, c3d, c3d_full, r2plus1d, costa, costb; depth 50 or 101.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "kinetics400_r50"  # written to results.json
  config.seed = 0
  # A torchvision-layout 2-D ResNet (.safetensors, .npz or .pth) to inflate, or ''.
  config.init_from = ""

  config.model = ml_collections.ConfigDict()
  config.model.variant = "costb"
  config.model.depth = 50
  config.model.width = 64
  config.model.num_classes = 400
  config.model.dropout_rate = 0.5
  config.model.dtype = "bfloat16"      # compute dtype; parameters stay float32
  config.model.cost_fused = True       # CoST(a) as one 3x3x3 convolution
  # How convolutions run: '3d' (XLA's 3-D ops), '2d' (lowered to 2-D convolutions and
  # matmuls, faster on CPUs) or 'auto' (per platform, cost_jax/models/video_ops.py).
  config.model.conv_impl = "auto"
  config.model.bn_momentum = 0.9
  config.model.zero_init_residual = False
  config.model.remat = False

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "kinetics/400"
  config.dataset.data_dir = ""         # '' means TFDS's default (TFDS_DATA_DIR)
  config.dataset.train_split = "train"
  config.dataset.eval_split = "validation"
  config.dataset.test_split = "validation"

  config.input = ml_collections.ConfigDict()
  # 'tf_data' (TFRecord shards, TensorFlow) or 'grain' (ArrayRecord shards, no
  # TensorFlow; build with `prepare ... --file_format=array_record`). See docs/datasets.md.
  config.input.backend = "tf_data"
  config.input.workers = -1            # grain: decoding processes (-1: one per core)
  # Frames: 'stride' (num_frames every frame_stride: the paper's 8x8) or 'segments' (one
  # of each of num_frames equal segments: TSN/TSM, configs/something_something_v2.py).
  config.input.sampling = "stride"
  config.input.num_frames = 8
  config.input.frame_stride = 8              # 'stride' only
  config.input.crop_size = 224
  config.input.min_resize = 256        # train: short side drawn from [min, max]
  config.input.max_resize = 320
  config.input.eval_resize = 256       # validation: short side, then centre crop
  config.input.test_crop_size = 256    # test: 3 crops of 256x256 after short side 256
  config.input.num_test_clips = 10
  config.input.num_test_crops = 3
  config.input.flip = True
  # A flipped clip of a class named for a direction ("... left to right") takes its
  # mirror class's label ("... right to left"); classes without one keep theirs.
  config.input.mirror_classes = True
  config.input.resize_on_device = True  # train crops resized in the jitted step, not tf.data
  config.input.mean = (123.675, 116.28, 103.53)
  config.input.std = (58.395, 57.12, 57.375)

  config.batch_size = 64               # global, over all hosts
  config.eval_batch_size = 64          # global; in videos for the multi-view test
  config.num_epochs = 160
  config.num_train_steps = -1          # > 0 overrides num_epochs
  config.log_every_steps = 100
  config.eval_every_steps = 5000       # single-clip validation; 0 turns it off
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 3
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.base_lr = 0.01      # for a batch of base_batch_size; scaled linearly
  config.optimizer.base_batch_size = 64
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.grad_clip_norm = 40.0
  config.optimizer.schedule = "step"   # 'step' or 'cosine'
  config.optimizer.decay_epochs = (80, 120)
  config.optimizer.decay_factor = 0.1
  config.optimizer.warmup_epochs = 0.0
  return config
