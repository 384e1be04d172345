"""Writes a folder of textured mp4 videos, one folder per class, for pipeline benchmarks.

  python benchmarks/make_videos.py --out=/tmp/bench_videos [--classes=4 --per_class=10
      --frames=80 --height=240 --width=320]

Then build and time them:
  python -m cost_jax.prepare video_folder --videos=/tmp/bench_videos --config_name=bench \
      --data_dir=/tmp/bench_tfds
  python -m cost_jax.bench.data --config=configs/kinetics.py \
      --config.dataset.name=video_folder/bench --config.dataset.data_dir=/tmp/bench_tfds
"""

import argparse
import os

import av
import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--classes", type=int, default=4)
  parser.add_argument("--per_class", type=int, default=10)
  parser.add_argument("--frames", type=int, default=80)
  parser.add_argument("--height", type=int, default=240)
  parser.add_argument("--width", type=int, default=320)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  for c in range(args.classes):
    folder = os.path.join(args.out, f"class_{c}")
    os.makedirs(folder, exist_ok=True)
    for v in range(args.per_class):
      # A smooth random texture drifting over time: JPEG sizes like real footage.
      base = rng.integers(0, 255, (args.height // 8, args.width // 8 + args.frames, 3))
      base = np.kron(base, np.ones((8, 8, 1))).astype(np.uint8)
      with av.open(os.path.join(folder, f"video_{v}.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = args.width, args.height, "yuv420p"
        for t in range(args.frames):
          frame = np.ascontiguousarray(base[:, t * 2 % 64:t * 2 % 64 + args.width])
          for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
          container.mux(packet)
  print(f"wrote {args.classes * args.per_class} videos to {args.out}")


if __name__ == "__main__":
  main()
