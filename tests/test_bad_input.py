"""What a new user's first, messy input gets: a small video tree with broken files and odd
names builds as the README shows it, and every user error ends the command line tools
with one clear line (no traceback) and loses nothing."""

import json
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

import processes
import video_files
from conftest import tiny_config
from cost_jax import train
from cost_jax.data import catalog
from cost_jax.data.builders import VideoFolder
from cost_jax.data.builders.common import DecodeOptions

GOOD = ["walk ing/a é.mp4", "run/b.mp4", "run/c.mp4", "run/d.mp4"]


@pytest.fixture(scope="module")
def messy_tree(tmp_path_factory):
  """2 classes with 1 and 3 videos; a zero-byte, a truncated and a text file beside."""
  root = tmp_path_factory.mktemp("messy") / "my videos"
  for i, rel in enumerate(GOOD):
    video_files.write_video(str(root / rel), 14, 40, 56, seed=i)
  (root / "run" / "empty.mp4").write_bytes(b"")
  whole = (root / "run" / "b.mp4").read_bytes()
  (root / "run" / "cut.mp4").write_bytes(whole[:len(whole) // 2])
  (root / "run" / "notes.txt").write_text("filmed on tuesday")
  return root


def _splits(data_dir, name):
  builder = tfds.builder_from_directory(str(data_dir / "video_folder" / name / "1.1.0"))
  return {split: sorted(ex["video_id"].decode() for ex in tfds.as_numpy(
      builder.as_dataset(split=split))) for split in builder.info.splits}


def test_the_readme_command_builds_a_small_messy_tree(messy_tree, tmp_path):
  data_dir = tmp_path / "tfds"
  # Exactly as the README shows it, no optional flag; then a second dataset beside it.
  first = processes.run("cost_jax.prepare", "video_folder", f"--videos={messy_tree}",
                        f"--data_dir={data_dir}")
  assert first.returncode == 0, first.stderr
  assert "--config.dataset.name=video_folder/default" in first.stdout
  assert "decoding 6 in this process" in first.stderr  # too few to start workers for
  second = processes.run("cost_jax.prepare", "video_folder", f"--videos={messy_tree}",
                         "--config_name=mine", f"--data_dir={data_dir}")
  assert second.returncode == 0, second.stderr

  splits = _splits(data_dir, "default")
  assert _splits(data_dir, "mine") == splits  # rebuilds agree
  # Every decodable video in exactly one split; validation holds one of the class with
  # three, none of the class with one.
  assert sorted(splits["train"] + splits["validation"]) == sorted(GOOD)
  assert len(splits["validation"]) == 1 and splits["validation"][0].startswith("run/")
  report = json.loads((data_dir / "video_folder" / "default" / "1.1.0" /
                       "skipped.json").read_text())
  reasons = {r["video_id"]: r["reason"] for r in report}
  assert set(reasons) == {"run/empty.mp4", "run/cut.mp4", "run/notes.txt"}
  assert reasons["run/empty.mp4"] == "empty file (0 bytes)"
  assert reasons["run/notes.txt"] == "not a video file (extension '.txt')"
  assert reasons["run/cut.mp4"].startswith(("cannot open", "undecodable"))


def test_training_on_a_dataset_without_validation_says_so(messy_tree, tmp_path, caplog):
  # One video per class: with the class of three reduced to one by a split list.
  splits = tmp_path / "lists"
  splits.mkdir()
  (splits / "trainlist.txt").write_text("walk ing/a é.mp4\nrun/b.mp4\n")
  one_each = VideoFolder(config="default", videos_dir=str(messy_tree),
                         splits_dir=str(splits), data_dir=str(tmp_path / "tfds"),
                         num_workers=1, decode_options=DecodeOptions(short_side=32))
  one_each.download_and_prepare()
  assert list(one_each.info.splits) == ["train"]
  config = tiny_config(catalog.find("video_folder/default", str(tmp_path / "tfds")),
                       **{"dataset.test_split": "validation",
                                    "num_train_steps": 2, "eval_every_steps": 1})
  results = train.train_and_evaluate(config, tmp_path / "run")
  notices = [r.getMessage() for r in caplog.records if "split" in r.getMessage()]
  assert any("no 'validation' split" in m and "periodic validation is skipped" in m
             for m in notices), notices
  assert any("the final test is skipped" in m for m in notices), notices
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved == results and saved["step"] == 2 and saved["num_videos"] == 0
  assert saved["note"] == "no 'validation' split: not tested"


def _one_line_error(out: subprocess.CompletedProcess) -> str:
  """The error line of a command that must fail cleanly."""
  assert out.returncode == 2, out.stderr
  assert "Traceback" not in out.stderr, out.stderr
  (line,) = [l for l in out.stderr.splitlines() if l.startswith("error: ")]
  return line


def test_user_errors_get_one_line(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  demo = ["--config=configs/demo.py", f"--config.dataset.data_dir={tmp_path / 'tfds'}"]
  commands = {
      "unwritable": ["cost_jax.main", *demo, f"--workdir={a_file}/run"],
      "no dataset": ["cost_jax.main", "--config=configs/kinetics.py",
                     f"--workdir={tmp_path / 'run'}",
                     f"--config.dataset.data_dir={tmp_path / 'nowhere'}"],
      "no videos": ["cost_jax.prepare", "video_folder", f"--videos={tmp_path / 'nope'}",
                    f"--data_dir={tmp_path / 'tfds'}"],
  }
  # Started together: most of each is start-up.
  procs = {k: subprocess.Popen([sys.executable, "-m", *map(str, cmd)], cwd=processes.ROOT,
                               env=processes.environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
           for k, cmd in commands.items()}
  outs = {k: subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate())
          for k, p in procs.items()}
  assert "cannot write to the workdir" in _one_line_error(outs["unwritable"])
  assert not (tmp_path / "tfds").exists()  # refused before building anything
  assert (f"build it with `python -m cost_jax.prepare kinetics --version=400 "
          f"--videos=VIDEOS --annotations=CSVS --data_dir={tmp_path / 'nowhere'}`"
          in _one_line_error(outs["no dataset"]))
  assert f"--videos={tmp_path / 'nope'}: no such folder" in _one_line_error(
      outs["no videos"])
