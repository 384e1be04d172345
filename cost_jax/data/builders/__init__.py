"""TFDS builders of the project; importing this package registers them with TFDS."""

from cost_jax.data.builders.hmdb51 import Hmdb51
from cost_jax.data.builders.kinetics import Kinetics
from cost_jax.data.builders.moments_in_time import MomentsInTime
from cost_jax.data.builders.something_something_v2 import SomethingSomethingV2
from cost_jax.data.builders.synthetic_motion import SyntheticMotion
from cost_jax.data.builders.ucf101 import Ucf101
from cost_jax.data.builders.video_folder import VideoFolder

__all__ = ["Hmdb51", "Kinetics", "MomentsInTime", "SomethingSomethingV2", "SyntheticMotion",
           "Ucf101", "VideoFolder"]
