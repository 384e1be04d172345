"""A TFRecord build copied into ArrayRecord shards for the Grain backend, without decoding
a single video: the serialized examples are copied as they are, record for record.

  python -m cost_jax.prepare convert --name=kinetics/400 --data_dir=DATA \
      --out_data_dir=DATA_AR
"""

import json
import os

from etils import epath
from tqdm import tqdm

from cost_jax import errors
from cost_jax.data import catalog


def to_array_record(name: str, data_dir: str, out_data_dir: str) -> catalog.BuiltDataset:
  """Copies the TFRecord build of `name` in `data_dir` to ArrayRecord in `out_data_dir`."""
  from array_record.python.array_record_module import ArrayRecordWriter
  source = catalog.find(name, data_dir)
  if source is None:
    raise errors.DatasetNotFoundError(f"dataset {name!r} not found in {data_dir}")
  if source.file_format != "tfrecord":
    raise errors.UserError(f"{name} in {data_dir} is already {source.file_format}")
  out = epath.Path(out_data_dir) / name / source.path.name
  if (out / "dataset_info.json").exists():
    raise errors.UserError(f"{out} already holds a build: remove it first")
  tmp = out.parent / f"incomplete.{source.path.name}"
  tmp.mkdir(parents=True, exist_ok=True)
  target = catalog.BuiltDataset(name, tmp, source.class_names, source.shard_lengths,
                                "array_record", source.metadata, source.filename_template)
  total = sum(sum(n) for n in source.shard_lengths.values())
  with tqdm(total=total, desc=f"converting {name}", unit="video") as bar:
    for split in source.splits:
      for src, dst in zip(source.shard_files(split), target.shard_files(split)):
        writer = ArrayRecordWriter(os.fspath(dst), "group_size:1")
        for record in catalog.tfrecord_records(src):
          writer.write(record)
          bar.update()
        writer.close()
  for f in source.path.iterdir():
    if f.suffix in (".json", ".txt") and f.name != "dataset_info.json":
      (tmp / f.name).write_bytes(f.read_bytes())
  info = json.loads((source.path / "dataset_info.json").read_text())
  info["fileFormat"] = "array_record"
  (tmp / "dataset_info.json").write_text(json.dumps(info, indent=4))
  tmp.rename(out)
  return catalog.read(out, name)
