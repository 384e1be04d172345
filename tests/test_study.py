"""The comparison study and the coefficient analysis, end to end with a tiny budget."""

import json

import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import study as study_config
from cost_jax import analyze, study, summary
from test_train import tiny_config


@pytest.fixture(scope="module")
def tiny_study(synthetic_tiny, tmp_path_factory):
  config = study_config.add_study_fields(tiny_config(synthetic_tiny),
                                         variants=("costa", "costb"))
  config.name = "tiny_study"
  config.model.zero_init_residual = False  # else 6 steps leave alpha at its init
  workdir = tmp_path_factory.mktemp("study")
  return config, workdir, study.run_study(config, workdir)


def test_study_writes_json_table_and_figure(tiny_study):
  config, workdir, result = tiny_study
  on_disk = json.loads((workdir / "study.json").read_text())
  assert on_disk == result
  assert [r["variant"] for r in on_disk["variants"]] == ["costa", "costb"]
  assert on_disk["num_classes"] == 8 and on_disk["chance"] == pytest.approx(1 / 8)
  for r in on_disk["variants"]:
    assert r["step"] == config.num_train_steps
    assert 0 <= r["video_top1"] <= r["video_top5"] <= 1
    assert r["params"] > 0 and r["gflops"] > 0 and r["train_seconds"] > 0
    # Each variant trained in its own workdir and kept its own results.
    results = json.loads((workdir / r["variant"] / "results.json").read_text())
    assert results["video_top1"] == r["video_top1"]
  c2d = summary.summarize(study.variant_config(config, "c2d", 8))["params"]
  params = {r["variant"]: r["params"] for r in on_disk["variants"]}
  assert c2d < params["costa"] <= 1.01 * c2d < params["costb"]
  table = (workdir / "study.md").read_text()
  assert table.count("\n| cost") == 2 and "params vs c2d" in table
  assert (workdir / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_rerun_reads_finished_variants_back(tiny_study, monkeypatch):
  config, workdir, result = tiny_study
  monkeypatch.setattr(study.train, "train_and_evaluate",
                      lambda *a: pytest.fail("a finished variant was trained again"))
  assert study.run_study(config, workdir) == result


def test_study_without_study_block_names_the_fix(synthetic_tiny, tmp_path):
  with pytest.raises(ValueError, match="add_study_fields"):
    study.run_study(tiny_config(synthetic_tiny), tmp_path)


def test_costa_coefficients_are_the_softmax_of_the_stored_logits(tiny_study):
  _, workdir, _ = tiny_study
  run = workdir / "costa"
  analysis = analyze.analyze_workdir(run)
  assert json.loads((run / "coefficients.json").read_text()) == analysis
  assert (run / "coefficients.png").exists()
  assert analysis["source"] == "learned"
  manager = ocp.CheckpointManager(run / "checkpoints")
  params = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())["params"]
  layers = analysis["layers"]
  assert [l["name"] for l in layers] == [f"res{s}_0/conv2" for s in (2, 3, 4, 5)]
  for layer in layers:
    block, conv = layer["name"].split("/")
    alpha = np.asarray(params[block][conv]["alpha"], np.float64)   # (3, C)
    assert np.ptp(alpha, axis=1).min() > 1e-4  # trained: channels no longer equal
    shares = np.exp(alpha) / np.exp(alpha).sum(axis=0)
    np.testing.assert_allclose(layer["mean"], shares.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(layer["channel_std"], shares.std(axis=1), rtol=1e-6)
    assert layer["channels"] == alpha.shape[1]


def test_costb_coefficients_average_over_the_split(tiny_study):
  config, workdir, _ = tiny_study
  analysis = analyze.analyze_workdir(workdir / "costb", split="validation",
                                     per_class=True)
  assert analysis["num_videos"] == 16  # synthetic_motion/tiny's validation split
  assert len(analysis["layers"]) == 4
  for layer in analysis["layers"]:
    assert sum(layer["mean"]) == pytest.approx(1.0, abs=1e-5)
    assert all(0 <= m <= 1 for m in layer["mean"])
  per_class = analysis["per_class"]
  assert sum(v[0]["num_videos"] for v in per_class.values()) == 16
  # The overall mean is the video-weighted mean of the class means.
  for i, layer in enumerate(analysis["layers"]):
    weighted = sum(np.array(v[i]["mean"]) * v[i]["num_videos"] for v in per_class.values())
    np.testing.assert_allclose(weighted / 16, layer["mean"], rtol=1e-5)


def test_analyze_refuses_a_network_without_cost_layers(tiny_study, monkeypatch):
  _, workdir, _ = tiny_study
  # What a C2D network yields: no `alpha` parameter and no sown coefficients.
  monkeypatch.setattr(analyze, "predicted_coefficients", lambda *a: ({}, np.zeros(0)))
  with pytest.raises(ValueError, match="no CoST layer"):
    analyze.analyze_workdir(workdir / "costb")
