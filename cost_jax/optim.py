"""The optimiser and learning-rate schedule of `config.optimizer` (docs/design.md §3)."""

import optax

from cost_jax.errors import ConfigError


def learning_rate_schedule(opt_config, batch_size: int, steps_per_epoch: int,
                           num_steps: int) -> optax.Schedule:
  """Linear warm-up, then 'step' (x decay_factor at decay_epochs) or 'cosine' decay.

  The peak rate is `base_lr * batch_size / base_batch_size` (linear scaling).
  """
  peak = opt_config.base_lr * batch_size / opt_config.base_batch_size
  warmup = int(round(opt_config.warmup_epochs * steps_per_epoch))
  if opt_config.schedule == "step":
    boundaries = {int(e * steps_per_epoch) - warmup: opt_config.decay_factor
                  for e in opt_config.decay_epochs}
    main = optax.piecewise_constant_schedule(peak, boundaries)
  elif opt_config.schedule == "cosine":
    main = optax.cosine_decay_schedule(peak, max(num_steps - warmup, 1))
  else:
    raise ConfigError(f"config.optimizer.schedule={opt_config.schedule!r} is unknown: use "
                     "'step' or 'cosine'")
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def create_optimizer(opt_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """SGD with momentum; gradients clipped by global norm, then L2 weight decay added.

  The order follows PyTorch's `clip_grad_norm_` followed by `SGD(weight_decay=...)`.
  """
  return optax.chain(
      optax.clip_by_global_norm(opt_config.grad_clip_norm),
      optax.add_decayed_weights(opt_config.weight_decay),
      optax.sgd(schedule, momentum=opt_config.momentum),
  )
