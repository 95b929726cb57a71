"""Latent-space tools on briefly trained models: outputs, shapes, and properties that could fail."""
import json

import numpy as np
import pytest
import torch
from conftest import only_run, quick, run_inproc

import registry
from bench import tools
from bench.config.spec import resolve
from bench.data import load_data
from bench.records.store import RunDir
from bench.run.train import Trainer
from bench.tools.embed import embed
from bench.tools.interp import interp
from bench.tools.probe import probe
from bench.tools.sample import sample

pytestmark = pytest.mark.embeds  # UMAP: see conftest.pytest_collection_modifyitems


class _NoTrack:
    def log_epoch(self, row, media=None):
        pass

    def log_summary(self, summary):
        pass


def trained(tmp_path, model_name, dataset="synthetic", epochs=3, data_root="./data", **kw):
    cfg = resolve({"model": model_name, "dataset": dataset, "epochs": max(epochs, 1), "data_root": data_root,
                   "batch_size": 64, "seed": 0} | kw)
    data = load_data(cfg)
    torch.manual_seed(0)
    model = registry.create_model(model_name, data.shape, data.num_classes, **cfg.to_dict())
    run = RunDir.create(str(tmp_path / "runs"), model_name, dataset)
    if epochs:
        Trainer(model, data, cfg, run, _NoTrack(), torch.device("cpu"), log=lambda s: None).fit()
    return model.eval(), data, cfg, run


@pytest.mark.slow(reason="a VAE trained on real Fashion-MNIST, then probed against a random encoder")
def test_probe_trained_beats_random_and_encoder_is_untouched(tmp_path, fashion_root):
    # Random conv features are a strong probe baseline; the MLP VAE's are not, so it shows learning.
    kw = dict(dataset="fashion_mnist", data_root=fashion_root, limit_train=6000, limit_test=2000)
    model, data, cfg, run = trained(tmp_path, "mlp_vae", epochs=3, **kw)
    rand, *_ = trained(tmp_path, "mlp_vae", epochs=0, **kw)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    good = probe(model, data, cfg, run, torch.device("cpu"))["numbers"]
    bad = probe(rand, data, cfg, run, torch.device("cpu"))["numbers"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # bit-identical
    assert good["probe/linear_acc"] > bad["probe/linear_acc"] + 0.03
    assert good["probe/logistic_acc"] > 0.5  # chance is 0.1


def test_embeddings_have_one_point_per_test_image(tmp_path, capsys):
    model, data, cfg, run = trained(tmp_path, "ae", epochs=1, limit_train=500, limit_test=150)
    capsys.readouterr()
    out = embed(model, data, cfg, run, torch.device("cpu"))
    lines = [line for line in capsys.readouterr().out.splitlines() if "embed:" in line and "(step " in line]
    assert len(lines) == 8 and "(step 1 of 8)" in lines[0] and "(step 8 of 8" in lines[-1]  # progress, with ETA
    for name in ("pca", "tsne", "umap"):
        assert out["arrays"][name].shape == (150, 2)
    cols, rows = out["tables"]["embeddings"]
    views = {"pca", "tsne", "umap"}
    coords = {c for c in cols[3:]}
    assert len(rows) == 150 and cols[:3] == ["image", "label", "class"] and len(cols) == 3 + len(coords)
    assert coords == {f"{v}_{a}" for v in views for a in "xy"} | {f"{v}3d_{a}" for v in views for a in "xyz"}
    # each point carries the test image it stands for (a thumbnail in the W&B table)
    assert all(np.array_equal(rows[i][0], data.test.x[i, 0].numpy()) for i in (0, 149))
    for f in ("embed_2d", "embed_3d", "embed_clean_vs_noisy", "decision_regions"):
        assert out["figures"][f].stat().st_size > 5000
    # the regions are the linear probe's: its accuracy on these points, above chance (0.1) for a trained encoder
    n = out["numbers"]
    assert 0.2 < n["embed/logistic_acc"] <= 1 and 0 < n["embed/knn2d_acc"] <= 1 and 0 < n["embed/regions2d_acc"] <= 1


def test_interpolation_endpoints_match_reconstructions(tmp_path):
    model, data, cfg, run = trained(tmp_path, "ae", epochs=3, limit_train=1500, batch_size=32)
    out = interp(model, data, cfg, run, torch.device("cpu"))
    path, recon = out["arrays"]["path"], out["arrays"]["recon"]
    assert path.shape == (10, 1, 28, 28)
    assert torch.allclose(path[0], recon[0], atol=1e-5) and torch.allclose(path[-1], recon[1], atol=1e-5)
    assert (path[0] - path[-1]).abs().mean() > 0.01  # two different images at the ends
    mid = path[5]
    assert (mid - path[0]).abs().mean() > 1e-3 and (mid - path[-1]).abs().mean() > 1e-3


@pytest.mark.slow(reason="a VAE trained on real Fashion-MNIST, then three samplers scored")
def test_ex_post_sampling_beats_the_prior_on_real_fashion(tmp_path, fashion_root, monkeypatch):
    from bench.tools import _features as sample_quality

    # The three feature networks learn from 6,000 images here, not the recipe's 20,000: the
    # claim is about the samplers, and the networks' training is tested on its own.
    monkeypatch.setattr(sample_quality, "FEATURE_MAX_TRAIN", 6000)
    model, data, cfg, run = trained(tmp_path, "mlp_vae", "fashion_mnist", epochs=3, data_root=fashion_root,
                                    limit_train=12000, limit_test=2000)
    n = sample(model, data, cfg, run, torch.device("cpu"))["numbers"]
    assert n["sample/ex_post_fd"] < n["sample/prior_fd"], n
    assert 0 < n["sample/prior_fd_spread"] < 2 and 0 < n["sample/ex_post_fd_spread"] < 2, n  # three networks differ
    assert (run.figures / "samples.png").exists()


def test_eval_all_through_run_py_records_every_tool(tmp_path):
    assert run_inproc(quick(tmp_path, "--eval", "all", "--embed-points", 60, model="vae", epochs=1)) == 0
    run = only_run(tmp_path)
    s = run.read_summary()
    for key in ("probe/linear_acc", "probe/logistic_acc", "sample/prior_fd", "sample/ex_post_fd", "sample/gmm_fd",
                "collapse/active_units", "denoise/psnr@0.3", "interp/endpoint_mse", "occlusion/max_rise"):
        assert key in s, key
    figs = {p.stem for p in (run.path / "figures").glob("*.png")}
    assert {"embed_2d", "decision_regions", "samples", "interpolation", "arithmetic", "attribute_direction",
            "denoise_matrix", "occlusion", "kl_per_dim", "recon_epochs"} <= figs
    assert (run.path / "embeddings.csv").exists()


def test_a_masked_model_records_its_error_by_mask_ratio_and_its_samples_score_in_the_shipped_space(tmp_path):
    assert run_inproc(quick(tmp_path, "--eval", "sample,collapse,occlusion", model="mcae", epochs=1)) == 0
    s = only_run(tmp_path).read_summary()
    assert not [k for k, v in s.items() if k.endswith(("/skipped", "/failed")) and v], s
    assert "occlusion/mse@mask0.5" in s  # masked model: error vs mask ratio
    assert s["sample/fd_features"].startswith("synthetic-shipped-")  # the smoke images' networks ship too
    assert s["sample/ex_post_fd_lo"] <= s["sample/ex_post_fd"] <= s["sample/ex_post_fd_hi"]


def test_standalone_evaluate_on_a_finished_run(tmp_path):
    from bench.evaluate import main
    assert run_inproc(quick(tmp_path, model="ae", epochs=1)) == 0
    run = only_run(tmp_path)
    assert main([str(run.path), "--what", "probe,denoise"]) == 0
    s = run.read_summary()
    assert "probe/linear_acc" in s and "denoise/psnr@0.5" in s and s["status"] == "finished"


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """One tiny finished VAE on labelled data: every tool applies to it (labels, encoder, decoder, and a
    Bernoulli likelihood for nll, which scores these grey images when asked by name: --nll-grey)."""
    root = tmp_path_factory.mktemp("tools") / "runs"
    assert run_inproc(["--model", "vae", "--dataset", "synthetic", "--epochs", 1, "--limit-train", 300,
                       "--limit-test", 100, "--runs-dir", root, "--wandb", "disabled", "--recon-type", "bce"]) == 0
    from bench.records.store import list_runs
    return list_runs(str(root))[0].path


@pytest.mark.parametrize("tool", tools.names())
def test_every_tool_records_its_numbers(tmp_path, vae_run, tool):
    """Generated from the tool package: a new tool file is run here on a finished run and must
    record numbers of its own, with no failure."""
    import shutil

    from bench.evaluate import main

    path = tmp_path / vae_run.name
    shutil.copytree(vae_run, path)
    assert main([str(path), "--what", tool, "--embed-points", "50", "--nll-grey", "--nll-k", "20"]) == 0
    s = json.loads((path / "summary.json").read_text())
    mine = {k: v for k, v in s.items() if k.startswith(f"{tool}/")}
    assert not mine.get(f"{tool}/failed") and not mine.get(f"{tool}/skipped"), mine
    assert [k for k, v in mine.items() if isinstance(v, (int, float)) and not isinstance(v, bool)], mine
