r"""JPEG decoding speed of the CPU decoders the Grain backend could use, on the frames of
a built dataset: simplejpeg (chosen), PIL, OpenCV when installed, and TensorFlow's two
IDCTs for reference. Prints frames/s on one core, and the largest pixel difference to
simplejpeg.

  python -m benchmarks.jpeg_decoders --data_dir=/tmp/bench_tfds \
      --name=video_folder/bench [--frames=400]
"""

import argparse
import io
import time

import numpy as np

from cost_jax.data import catalog, grain_pipeline


def frames(data_dir: str, name: str, count: int) -> list[bytes]:
  dataset = catalog.find(name, data_dir)
  if dataset is None:
    raise SystemExit(f"{name} not found in {data_dir}")
  out = []
  for record in dataset.records("train"):
    out += grain_pipeline.parse(record)[0]
    if len(out) >= count:
      break
  return out[:count]


def decoders() -> dict:
  import simplejpeg
  from PIL import Image
  found = {"simplejpeg": lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB"),
           "PIL": lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))}
  try:
    import cv2
    found["OpenCV"] = lambda b: cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8),
                                                          cv2.IMREAD_COLOR),
                                             cv2.COLOR_BGR2RGB)
  except ImportError:
    pass
  try:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    found["tf.io.decode_jpeg, default IDCT"] = lambda b: tf.io.decode_jpeg(
        b, channels=3).numpy()
    found["tf.io.decode_jpeg, accurate IDCT"] = lambda b: tf.io.decode_jpeg(
        b, channels=3, dct_method="INTEGER_ACCURATE").numpy()
  except ImportError:
    pass
  return found


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--name", required=True)
  parser.add_argument("--frames", type=int, default=400)
  args = parser.parse_args()
  jpegs = frames(args.data_dir, args.name, args.frames)
  reference = [decoders()["simplejpeg"](b) for b in jpegs]
  h, w = reference[0].shape[:2]
  print(f"{len(jpegs)} frames of {h}x{w} from {args.name}, one core")
  print(f"{'decoder':36s}{'frames/s':>10s}{'max diff':>10s}")
  for name, decode in decoders().items():
    decode(jpegs[0])
    start = time.perf_counter()
    out = [decode(b) for b in jpegs]
    rate = len(jpegs) / (time.perf_counter() - start)
    diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(out, reference))
    print(f"{name:36s}{rate:10.1f}{diff:10d}")


if __name__ == "__main__":
  main()
