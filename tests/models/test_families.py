"""Per-family properties through run.py: each could fail if the family were wired wrong."""
import pytest
from conftest import only_run, quick, run_inproc

from bench.config.tasks import TASKS
from bench.records.store import list_runs


def test_dae_denoises_real_fashion(tmp_path, fashion_root):
    args = ["--model", "dae", "--dataset", "fashion_mnist", "--data-root", fashion_root, "--noise-std", 0.3,
            "--epochs", 1, "--limit-train", 5000, "--limit-test", 1000, "--batch-size", 32,
            "--runs-dir", tmp_path / "runs", "--wandb", "disabled"]
    assert run_inproc(args) == 0
    s = only_run(tmp_path).read_summary()
    assert s["test_noisy/psnr"] > s["test_noisy/input_psnr"] + 1.0, s  # better than the noisy input


def test_sparse_ae_l1_falls_as_lambda_rises(tmp_path):
    l1 = []
    for lam in (0.0, 1e-3, 0.05):  # lambda * sum|z| over 64 latent units
        d = tmp_path / f"l{lam}"
        assert run_inproc(quick(d, "--l1-lambda", lam, "--limit-train", 1000, model="sparse_ae", epochs=2)) == 0
        l1.append(only_run(d).read_metrics()[-1]["val/l1"])
    assert l1[0] > l1[1] > l1[2], l1


def test_vae_logs_recon_and_kl_curves(tmp_path):
    assert run_inproc(quick(tmp_path, "--kl-warmup-epochs", 2, model="vae", epochs=2)) == 0
    rows = only_run(tmp_path).read_metrics()
    for r in rows:
        assert r["train/kl"] > 0 and r["val/kl"] > 0 and "train/recon_loss" in r and "val/recon_loss" in r
    assert rows[0]["train/beta_now"] == pytest.approx(0.5) and rows[1]["train/beta_now"] == 1.0
    s = only_run(tmp_path).read_summary()  # the ELBO terms of best.pt on the test set (the VAE report's columns)
    assert s["test/kl"] > 0 and s["test/recon_loss"] > 0
    assert s["test/loss"] == pytest.approx(s["test/recon_loss"] + s["test/kl"], rel=1e-4)


def test_classifier_keeps_best_checkpoint_by_val_accuracy(tmp_path):
    assert run_inproc(quick(tmp_path, model="cnn_classifier", dataset="synthetic_rgb", epochs=3)) == 0
    run = only_run(tmp_path)
    rows, s = run.read_metrics(), run.read_summary()
    best = max(range(3), key=lambda i: (rows[i]["val/acc"], -i))
    assert s["best_epoch"] == best + 1
    assert s["test/acc"] == pytest.approx(rows[best]["test/acc"])  # the test numbers come from best.pt


def test_segmentation_reports_dice_and_iou(tmp_path):
    assert run_inproc(quick(tmp_path, "--seg-loss", "dice_bce", model="seg_ae", dataset="synthetic_seg", epochs=2)) == 0
    s = only_run(tmp_path).read_summary()
    assert 0 <= s["test/iou"] <= s["test/dice"] <= 1  # IoU never exceeds Dice


def test_probe_from_a_finished_autoencoder(tmp_path):
    assert run_inproc(quick(tmp_path, model="ae", epochs=1)) == 0
    ae_run = only_run(tmp_path)
    assert run_inproc(quick(tmp_path, "--probe-from", ae_run.id, "--lr", 1e-2, "--limit-train", 1500,
                            "--limit-test", 500, model="linear_probe", epochs=5)) == 0
    probe = [r for r in list_runs(str(tmp_path / "runs")) if r.id != ae_run.id][0]
    assert probe.read_config()["model"] == "linear_probe" and probe.read_config()["probe_from"] == ae_run.id
    assert probe.read_summary()["test/acc"] > 0.2  # chance is 0.1


def test_probe_from_is_a_key_of_the_linear_probe_family_only(tmp_path, capsys):
    """--probe-from belongs to `linear_probe` like any family key: another model refuses it, and
    with no model named it picks the one family that takes it."""
    assert run_inproc(quick(tmp_path, "--probe-from", "x", model="vae")) == 2
    assert "--probe-from: model vae does not take it" in capsys.readouterr().err
    assert run_inproc(["--dataset", "synthetic", "--probe-from", "no-such-run", "--runs-dir", tmp_path / "runs",
                       "--wandb", "disabled"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err  # it reached the linear probe's own check


def test_resnet_without_weights_names_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code = run_inproc(quick(tmp_path, model="resnet18_probe", dataset="synthetic_rgb", epochs=1))
    err = capsys.readouterr().err
    assert code == 2 and "resnet18-" in err and str(tmp_path / "torch") in err


def test_timm_backbone_serves_as_frozen_encoder(tmp_path):
    args = quick(tmp_path, "--encoder", "timm:resnet10t", "--pretrained=false", model="resnet18_probe",
                 dataset="synthetic_rgb", epochs=1)
    assert run_inproc(args) == 0
    assert "test/acc" in only_run(tmp_path).read_summary()


def synthetic_for(entry) -> str:
    """The synthetic dataset that fits a model: its task's targets, then its input's channels."""
    import registry

    need = TASKS[entry.task].targets or "labels"
    fits = [d for n, d in sorted(registry.DATASETS.items()) if n.startswith("synthetic") and d.kind == need]
    return next((d.name for d in fits if d.shape[0] == entry.default_input[0]), fits[0].name)


def _registered():
    import registry
    return sorted(n for n, e in registry.MODELS.items() if not e.hidden)


@pytest.mark.slow(reason="every registered model trained, then every tool that applies (one case per model)")
@pytest.mark.parametrize("name", _registered())
def test_every_model_trains_and_runs_every_tool_that_applies(tmp_path, name):
    """Generated from the registry: one tiny epoch, then `--eval all`; every tool that applies
    records its numbers and none fails."""
    import registry

    task = registry.MODELS[name].task
    dataset = synthetic_for(registry.MODELS[name])
    extra = ["--pretrained=false"] if "pretrained" in registry.MODELS[name].config_keys() else []
    args = quick(tmp_path, "--eval", "all", "--limit-train", 120, "--limit-test", 60, *extra,
                 model=name, dataset=dataset, epochs=1)
    assert run_inproc(args) == 0
    run = only_run(tmp_path)
    s, cfg = run.read_summary(), run.read_config()
    assert s["status"] == "finished"
    assert not [k for k, v in s.items() if k.endswith(("/failed", "/skipped")) and v], s
    for tool in cfg["eval"]:
        assert any(k.startswith(f"{tool}/") and not k.endswith(("/failed", "/skipped")) for k in s), tool
    decoding = {"denoise", "interp", "arith", "sample", "occlusion", "collapse"}
    if TASKS[task].autoencoder:
        assert set(cfg["eval"]) >= {"probe", "embed", "denoise", "occlusion", "collapse"}
    else:  # classifiers and segmenters have no decoder from z: those tools do not apply
        assert not set(cfg["eval"]) & decoding and (TASKS[task].targets != "labels" or "probe" in cfg["eval"])


def _mnist_run(tmp_path, root, model, epochs=3):
    d = tmp_path / model
    assert run_inproc(["--model", model, "--dataset", "mnist", "--data-root", root, "--epochs", epochs,
                       "--limit-train", 3000, "--limit-test", 500, "--runs-dir", d / "runs", "--wandb", "disabled"]) == 0
    return only_run(d)


def test_wae_pulls_the_codes_onto_the_prior(tmp_path, mnist_root):
    """WAE-MMD (Tolstikhin et al. 2018) on MNIST at small scale: the MMD between the codes and
    N(0, I) falls during training."""
    mmd = [r["val/mmd"] for r in _mnist_run(tmp_path, mnist_root, "wae").read_metrics()]
    assert mmd[-1] < 0.8 * mmd[0], mmd


@pytest.mark.slow(reason="trains an IWAE and a VAE on real MNIST to compare their bounds (a paper's claim)")
def test_iwae_bound_is_tighter_than_the_elbo_on_the_same_test_images(tmp_path, mnist_root):
    """IWAE (Burda et al. 2016): its k-sample bound beats the ELBO of the same samples, and
    the ELBO of a VAE trained alike, on the same MNIST test images (losses are -bounds)."""
    iwae = _mnist_run(tmp_path, mnist_root, "iwae").read_summary()
    vae = _mnist_run(tmp_path, mnist_root, "vae").read_summary()
    assert iwae["test/bound_gap"] > 0 and iwae["test/loss"] < iwae["test/elbo_loss"]
    assert iwae["test/loss"] < vae["test/loss"], (iwae["test/loss"], vae["test/loss"])


def test_beta_vae_is_the_vae_with_a_heavier_kl():
    from registry import MODELS

    assert MODELS["beta_vae"].config().beta == 4.0 and MODELS["vae"].config().beta == 1.0
    assert MODELS["beta_vae"].config({"beta": 8.0}).beta == 8.0


@pytest.mark.slow(reason="trains an RAE and a VAE on real MNIST and scores their samples (a paper's claim)")
def test_rae_gmm_samples_beat_a_vaes_prior_samples(tmp_path, mnist_root):
    """RAE (Ghosh et al. 2020) on MNIST at small scale: its ex-post GMM samples score better
    (a lower FD, the intervals apart) than a VAE's prior samples, both at latent size 16."""
    def sampled(model):
        d = tmp_path / model
        assert run_inproc(["--model", model, "--dataset", "mnist", "--data-root", mnist_root, "--epochs", 3,
                           "--limit-train", 3000, "--limit-test", 500, "--latent-dim", 16, "--eval", "sample",
                           "--runs-dir", d / "runs", "--wandb", "disabled"]) == 0
        return only_run(d).read_summary()

    rae, vae = sampled("rae"), sampled("vae")
    assert rae["sample/gmm_fd_hi"] < vae["sample/prior_fd_lo"], (rae["sample/gmm_fd"], vae["sample/prior_fd"])
    assert rae["test/z_norm"] > 0 and rae["test/dec_reg"] > 0


def test_vqvae_uses_its_codebook_on_mnist_and_flags_a_collapsed_one(tmp_path, mnist_root):
    """VQ-VAE (van den Oord et al. 2017) on MNIST at small scale: perplexity and codebook usage
    are recorded each epoch and on the test set, and a trained codebook is in wide use; a
    codebook where one code takes every position is flagged as codebook collapse."""
    import torch

    from bench.records.health import collapse_words
    from registry import create_model

    run = _mnist_run(tmp_path, mnist_root, "vqvae")
    s, rows = run.read_summary(), run.read_metrics()
    assert all("val/perplexity" in r and "train/codes_used" in r for r in rows)
    assert s["test/perplexity"] > 10 and s["test/codes_used"] > 0.3 and s["test/codebook_collapse"] == 0, s
    assert collapse_words(s) is None

    model = create_model("vqvae", (1, 28, 28), 10).eval()
    with torch.no_grad():
        model.codebook.weight[1:] = 1e3  # every encoder output is nearest code 0
        out = model(torch.rand(8, 1, 28, 28))
    assert out["perplexity"] == pytest.approx(1.0) and out["codebook_collapse"] == 1
    words = collapse_words({"test/codebook_collapse": 1.0, "test/codes_used": float(out["codes_used"]),
                            "test/perplexity": float(out["perplexity"])})
    assert words.startswith("CODEBOOK COLLAPSE") and "1% of the codebook" in words, words


def test_vamp_vae_learns_its_pseudo_inputs_and_records_the_prior_likelihood(tmp_path, mnist_root):
    """VampPrior VAE (Tomczak & Welling 2018) on MNIST at small scale: the pseudo-inputs move
    from where they started, epoch after epoch, the prior log-likelihood of the codes is
    recorded and rises as the mixture moves onto them, and prior samples come from the mixture
    (a pseudo-input's posterior), not from N(0, I)."""
    import numpy as np
    import torch

    from bench.api import load

    run = _mnist_run(tmp_path, mnist_root, "vamp_vae")
    rows, s = run.read_metrics(), run.read_summary()
    shift, logp = [r["val/pseudo_shift"] for r in rows], [r["val/prior_logp"] for r in rows]
    assert 0 < shift[0] < shift[-1] and logp[-1] > logp[0], (shift, logp)
    assert "test/prior_logp" in s and s["test/pseudo_shift"] > 0
    model, _ = load(str(run.path))
    with torch.no_grad():
        mu, _ = model.posterior(model.pseudo_images())
    z = model.prior_codes(2000, np.random.default_rng(0))
    assert z.shape == (2000, model.cfg.latent_dim)
    centre = mu.mean(0).numpy()
    assert np.abs(z.mean(0) - centre).max() < 0.1 * np.abs(centre).max() and np.abs(centre).max() > 1
