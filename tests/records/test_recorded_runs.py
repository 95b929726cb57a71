"""Runs recorded before the two-level configuration (tests/records/recorded/, written by the
code of that time: `noise_std`, `kl_weight`, a flat checkpoint config) still load, train on,
evaluate and show up in analysis under today's key names."""
import json
import shutil

import pytest
import torch
from conftest import ROOT, run_inproc

RECORDED = ROOT / "tests" / "records" / "recorded"
FINISHED = "20261130-030301-mlp_vae-synthetic-0556eb"  # mlp_vae, --mlp-dims 8,2 --kl-weight 0.5 --noise-std 0.1
STOPPED = "20261130-030321-dae-synthetic-cad8a5"  # dae, --noise-std 0.2, SIGTERM at test evaluation


@pytest.fixture
def runs(tmp_path):
    shutil.copytree(RECORDED, tmp_path / "runs")
    return tmp_path / "runs"


def test_an_old_finished_run_builds_its_model_with_its_weights(runs):
    from bench.records.checkpoint import load
    from bench.records.rebuild import load_run_model

    saved = json.loads((runs / FINISHED / "config.json").read_text())
    assert "noise_std" in saved and "kl_weight" in saved and "noise_level" not in saved  # the old names
    model, cfg = load_run_model(str(runs / FINISHED), str(runs))
    assert (model.noise_level, model.beta, model.cfg.latent_dim, tuple(model.cfg.hidden_dims)) == (0.1, 0.5, 2, (8,))
    assert model.task == "denoise"
    weights = load(runs / FINISHED / "best.pt")["model"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_an_old_stopped_run_resumes_to_the_end(runs, capsys):
    before = (runs / STOPPED / "config.json").read_text()
    assert run_inproc(["--resume", STOPPED, "--runs-dir", str(runs), "--wandb", "disabled"]) == 0
    summary = json.loads((runs / STOPPED / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2 and summary["test/mse"] > 0
    assert "reason" not in summary  # why it stopped before no longer describes it
    assert (runs / STOPPED / "config.json").read_text() == before  # the record is the user's: never rewritten
    assert "test_noisy/psnr" in summary  # still a denoiser: noise_std 0.2 read as noise_level


def test_old_runs_read_in_analysis_under_todays_names(runs):
    from analysis.load import load_local, varying_keys

    frame = load_local(str(runs)).set_index("model")
    assert frame.loc["mlp_vae", "beta"] == 0.5 and frame.loc["mlp_vae", "noise_level"] == 0.1
    assert frame.loc["dae", "noise_level"] == 0.2
    assert "noise_std" not in frame and "kl_weight" not in frame
    assert "model" in varying_keys(frame.reset_index())
