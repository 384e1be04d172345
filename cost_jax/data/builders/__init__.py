"""TFDS builders of the project; importing this package registers them with TFDS."""

from cost_jax.data.builders.kinetics import Kinetics
from cost_jax.data.builders.moments_in_time import MomentsInTime
from cost_jax.data.builders.synthetic_motion import SyntheticMotion
from cost_jax.data.builders.video_folder import VideoFolder

__all__ = ["Kinetics", "MomentsInTime", "SyntheticMotion", "VideoFolder"]
