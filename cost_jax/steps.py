"""The computations the training loop, the evaluation and the benchmark jit: the train
state, its initialisation, one SGD step and the class probabilities of clips.

Pure JAX, Flax and optax, free of data loading, checkpoints and logging (no TensorFlow),
so the same steps run in `cost_jax.train`, in `cost_jax.bench.model` on a machine without
the tf.data stack, and in a notebook.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from cost_jax.data import on_device


@flax.struct.dataclass
class TrainState:
  """What a training step carries from one step to the next (and a checkpoint holds)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def fresh_state(model, tx, config, key) -> TrainState:
  """Initial parameters, BatchNorm statistics and optimiser state (pure; jit-able)."""
  i = config.input
  variables = model.init(key, jnp.zeros((1, i.num_frames, i.crop_size, i.crop_size, 3)))
  return TrainState(jnp.zeros((), jnp.int32), variables["params"], variables["batch_stats"],
                    tx.init(variables["params"]))


def abstract_state(model, tx, config) -> TrainState:
  """Shapes and dtypes of the train state of `config` (traced, never compiled)."""
  return jax.eval_shape(functools.partial(fresh_state, model, tx, config),
                        jax.random.key(0))


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(state: TrainState, batch, *, model, tx, schedule, seed, input_config):
  """One SGD step on a global batch; BatchNorm statistics are over the global batch."""
  dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)
  video = on_device.model_input(batch, input_config)

  def loss_fn(params):
    logits, new_vars = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, video, train=True,
        mutable=["batch_stats"], rngs={"dropout": dropout_key})
    return cross_entropy(logits, batch["label"]), (logits, new_vars["batch_stats"])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss,
             "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
             "grad_norm": optax.global_norm(grads),
             "learning_rate": schedule(state.step)}
  return TrainState(state.step + 1, params, batch_stats, opt_state), metrics


def jit_train_step(model, tx, schedule, seed, input_config, state, replicated, data):
  """`train_step` jitted as training runs it: state replicated and donated, batch sharded
  with `data`, compiled once.

  `step_fn(state, batch, stop) -> (state, metrics, any_stop)`: `stop` (int32, one entry
  per device, sharded like the batch) holds each host's request to stop; `any_stop`,
  replicated, is their maximum, so that every host reads the same answer.
  """
  def step(state, batch, stop):
    state, metrics = train_step(state, batch, model=model, tx=tx, schedule=schedule,
                                seed=seed, input_config=input_config)
    return state, metrics, jnp.max(stop)

  state_sharding = jax.tree.map(lambda _: replicated, state)
  return jax.jit(step, in_shardings=(state_sharding, data, data),
                 out_shardings=(state_sharding, replicated, replicated), donate_argnums=0)


def predict_step(params, batch_stats, video, *, model, input_config):
  """Softmax over classes, `(B, V, C)`, for uint8 `(B, T, H, W, 3)` or
  `(B, V, T, H, W, 3)` clips."""
  video = on_device.normalize(video, input_config.mean, input_config.std)
  views = video if video.ndim == 6 else video[:, None]
  b, v = views.shape[:2]
  logits = model.apply({"params": params, "batch_stats": batch_stats},
                       views.reshape((b * v,) + views.shape[2:]), train=False)
  return jax.nn.softmax(logits.astype(jnp.float32)).reshape(b, v, -1)
