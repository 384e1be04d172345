r"""Builds a TFDS video dataset from local files (or generates `synthetic_motion`).

  python -m cost_jax.prepare kinetics --version=400 --videos=DIR --annotations=DIR \
      --data_dir=TFDS_DIR [--short_side=256 --fps=0 --num_workers=N]
  python -m cost_jax.prepare moments_in_time --videos=DIR --annotations=DIR --data_dir=...
  python -m cost_jax.prepare something_something_v2 --videos=DIR --annotations=DIR \
      --data_dir=...
  python -m cost_jax.prepare ucf101 --videos=UCF-101 --annotations=ucfTrainTestlist \
      --split=1 --data_dir=...                  (ucf101/split1; --split=2|3 the others)
  python -m cost_jax.prepare hmdb51 --videos=HMDB51 \
      --annotations=testTrainMulti_7030_splits --split=1 --data_dir=...
  python -m cost_jax.prepare video_folder --videos=ROOT [--splits=DIR] \
      [--config_name=ucf101] --data_dir=...     (named video_folder/default without one)
  python -m cost_jax.prepare synthetic_motion [--config_name=small] --data_dir=...
  python -m cost_jax.prepare convert --name=kinetics/400 --data_dir=... --out_data_dir=...

Shards are TFRecord files (the tf.data input backend) or, with
`--file_format=array_record`, ArrayRecord files (the Grain backend, which trains without
TensorFlow); `convert` copies a TFRecord build into ArrayRecord without decoding anything.

Decoding runs on every core and shows progress; an interrupted build run again reuses the
videos already decoded. Unusable videos are skipped and listed in `skipped.json` in the
dataset folder. Read the result with `config.dataset.name` = the printed name.
"""

from absl import app, flags

from cost_jax import cli

# The builders (and TFDS) import TensorFlow, about 3 s: they are imported once a build
# starts, so that --help and a usage error answer at once.
DATASETS = ("kinetics", "moments_in_time", "something_something_v2", "ucf101", "hmdb51",
            "video_folder", "synthetic_motion")
# The builders (`cost_jax.data.builders`) that read a videos folder and a folder of
# official annotation files.
ANNOTATED = {"kinetics": "Kinetics", "moments_in_time": "MomentsInTime",
             "something_something_v2": "SomethingSomethingV2", "ucf101": "Ucf101",
             "hmdb51": "Hmdb51"}
COMMANDS = DATASETS + ("convert",)

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir to write to.")
_VIDEOS = flags.DEFINE_string("videos", None, "Folder of the videos.")
_ANNOTATIONS = flags.DEFINE_string("annotations", None, "Folder of the annotation files.")
_SPLITS = flags.DEFINE_string("splits", None, "video_folder: folder of split lists.")
_VERSION = flags.DEFINE_enum("version", "400", ["400", "600", "700"], "Kinetics release.")
_SPLIT = flags.DEFINE_enum("split", "1", ["1", "2", "3"], "ucf101, hmdb51: the official "
                           "split to build (each is a dataset of its own: ucf101/split1).")
_CONFIG_NAME = flags.DEFINE_string("config_name", None,
                                   "video_folder: dataset name; synthetic_motion: config.")
_SHORT_SIDE = flags.DEFINE_integer("short_side", 256, "Stored short side in pixels (0 keeps).")
_FPS = flags.DEFINE_float("fps", 0.0, "Resample to this frame rate (0 keeps the native one).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", None, "Decoding processes (default: cores; "
                                    "one per 16 videos to decode at most).")
_KEEP_CACHE = flags.DEFINE_bool("keep_cache", False, "Keep decoded videos after the build.")
_FILE_FORMAT = flags.DEFINE_enum("file_format", "tfrecord", ["tfrecord", "array_record"],
                                 "Shards for the tf_data (tfrecord) or grain "
                                 "(array_record) input backend.")
_NAME = flags.DEFINE_string("name", None, "convert: the dataset, e.g. kinetics/400.")
_OUT_DATA_DIR = flags.DEFINE_string("out_data_dir", None,
                                    "convert: the data dir to write the ArrayRecord copy to.")


def make_builder(dataset: str):
  """The `tfds.core.DatasetBuilder` the flags describe; raises a UsageError naming a
  missing flag (before importing TensorFlow)."""
  if dataset == "synthetic_motion":
    from cost_jax.data.builders import SyntheticMotion
    return SyntheticMotion(config=_CONFIG_NAME.value or "small", data_dir=_DATA_DIR.value,
                           file_format=_FILE_FORMAT.value)
  needed = ["videos"] + (["annotations"] if dataset != "video_folder" else [])
  missing = [f"--{n}" for n in needed if not flags.FLAGS[n].value]
  if missing:
    raise app.UsageError(f"building {dataset} needs {', '.join(missing)}")
  from cost_jax.data import builders
  from cost_jax.data.builders.common import DecodeOptions
  from cost_jax.data.builders.video_folder import VideoFolderConfig
  common = dict(data_dir=_DATA_DIR.value, num_workers=_NUM_WORKERS.value,
                file_format=_FILE_FORMAT.value,
                keep_cache=_KEEP_CACHE.value,
                decode_options=DecodeOptions(short_side=_SHORT_SIDE.value, fps=_FPS.value))
  if dataset in ANNOTATED:
    config = {"kinetics": _VERSION.value, "ucf101": f"split{_SPLIT.value}",
              "hmdb51": f"split{_SPLIT.value}"}.get(dataset)
    return getattr(builders, ANNOTATED[dataset])(
        config=config, videos_dir=_VIDEOS.value, annotations_dir=_ANNOTATIONS.value,
        **common)
  name = _CONFIG_NAME.value or "default"
  # 'default' is the builder's own config; any other name is a config of the user's.
  config = name if name == "default" else VideoFolderConfig(name=name)
  return builders.VideoFolder(config=config, videos_dir=_VIDEOS.value,
                              splits_dir=_SPLITS.value, **common)


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"name one dataset: {' | '.join(DATASETS)}, or convert")
  if argv[1] == "convert":
    missing = [f"--{n}" for n in ("name", "data_dir", "out_data_dir")
               if not flags.FLAGS[n].value]
    if missing:
      raise app.UsageError(f"convert needs {', '.join(missing)}")
    from cost_jax.data import convert_format
    built = convert_format.to_array_record(_NAME.value, _DATA_DIR.value,
                                           _OUT_DATA_DIR.value)
    print(f"converted {built.name} to ArrayRecord in {built.path}: train with "
          f"--config.input.backend=grain --config.dataset.data_dir={_OUT_DATA_DIR.value}")
    return
  builder = make_builder(argv[1])
  builder.download_and_prepare()
  name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
  print(f"built {name} in {builder.data_dir}:")
  for split, info in builder.info.splits.items():
    print(f"  {split}: {info.num_examples} videos")
  backend = (" --config.input.backend=grain" if _FILE_FORMAT.value == "array_record"
             else "")
  import tensorflow_datasets as tfds  # loaded by the builder already
  print(f"train with --config.dataset.name={name} --config.dataset.data_dir="
        f"{_DATA_DIR.value or tfds.core.constants.DATA_DIR}{backend}")


if __name__ == "__main__":
  cli.run(main)
