"""The test log-likelihood (`--eval nll`), binarized MNIST, and the papers' training schedule.

The estimator is checked where log p(x) is known exactly (a linear-Gaussian model; a real
Bernoulli decoder with a one-dimensional latent, integrated on a grid), against the IWAE's own
bound, and on a trained model (-ELBO above the estimate, the estimate falling with k)."""
import json
import math

import numpy as np
import pytest
import torch
from conftest import only_run, run_cli, run_inproc
from torch import nn


def _estimate(model, x, k, seed=0, rows=8192):
    from bench.tools.nll import estimate

    return estimate(model, x, k, torch.Generator().manual_seed(seed), rows=rows)


class LinearGaussian(nn.Module):
    """z ~ N(0, I_2), x = W z + b + N(0, s^2 I_5): p(x) = N(b, W W^T + s^2 I), known exactly. The
    encoder is the exact posterior's mean shifted and its variance doubled: a proposal that is
    good but not exact, so the estimate has something to converge."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.W, self.b, self.s = torch.randn(5, 2, generator=g, dtype=torch.float64), \
            torch.randn(5, generator=g, dtype=torch.float64), 0.7
        prec = torch.eye(2, dtype=torch.float64) + self.W.T @ self.W / self.s ** 2
        self.cov = torch.linalg.inv(prec)

    def posterior(self, x):
        mean = (x - self.b) @ self.W @ self.cov.T / self.s ** 2 + 0.2
        return mean, torch.log(2 * torch.diagonal(self.cov)).expand_as(mean)

    def log_weights(self, x, eps, posterior):
        mu, logvar = posterior
        z = mu + eps * torch.exp(0.5 * logvar)
        normal = torch.distributions.Normal
        log_px = normal(z @ self.W.T + self.b, self.s).log_prob(x).sum(-1)
        return log_px + normal(0.0, 1.0).log_prob(z).sum(-1) - normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)

    def exact(self, x):
        cov = self.W @ self.W.T + self.s ** 2 * torch.eye(5, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)


def test_on_a_linear_gaussian_model_the_estimate_agrees_with_the_closed_form():
    model = LinearGaussian()
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    est = _estimate(model, x, 20000, rows=4096)  # chunks of 512 draws: the running log-sum-exp is exercised
    exact = model.exact(x).float()
    assert (est.log_px - exact).abs().max() < 0.05
    assert (est.elbo < exact).all()  # the ELBO of a proposal that is not the posterior is below log p(x)
    assert float((est.elbo - exact).abs().min()) > 0.05


def test_on_a_real_bernoulli_decoder_the_estimate_agrees_with_the_integral_over_z():
    """mlp_vae with a one-dimensional latent: p(x) = int N(z; 0, 1) p(x|z) dz by quadrature, the
    model's own decoder and likelihood; the proposal is the exact posterior, widened and shifted."""
    from registry import create_model

    torch.manual_seed(0)
    model = create_model("mlp_vae", (1, 28, 28), 10, hidden_dims=[16], latent_dim=1, activation="tanh").eval()
    with torch.no_grad():
        model.dec[-1].weight.mul_(0.05)  # a decoder whose posteriors are not needle-sharp
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    grid = torch.linspace(-8, 8, 16001)
    with torch.no_grad():
        log_lik = torch.stack([-torch.nn.functional.binary_cross_entropy_with_logits(
            model.decode_logits(grid[:, None]), xi.expand(len(grid), 1, 28, 28), reduction="none").flatten(1).sum(1)
            for xi in x])  # (6, G)
    log_joint = log_lik.double() + torch.distributions.Normal(0.0, 1.0).log_prob(grid).double()
    dz = float(grid[1] - grid[0])
    exact = torch.logsumexp(log_joint, 1) + math.log(dz)
    post = torch.softmax(log_joint, 1)
    mean = (post * grid.double()).sum(1)
    sd = ((post * (grid.double() - mean[:, None]) ** 2).sum(1)).sqrt()
    model.posterior = lambda _x: ((mean + 0.3 * sd).float()[:, None], torch.log((1.5 * sd) ** 2).float()[:, None])
    est = _estimate(model, x, 20000)
    assert (est.log_px.double() - exact).abs().max() < 0.05


def test_the_iwae_bound_equals_the_tools_estimate_on_the_same_draws():
    from registry import create_model

    torch.manual_seed(0)
    x = (torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(4)) < 0.4).float()
    for name, extra in (("mlp_iwae", {}), ("iwae", {"recon_type": "bce"})):
        model = create_model(name, (1, 28, 28), 10, k_samples=7, **extra).eval()
        with torch.no_grad():
            bound = -model(x)["loss"]  # eval mode: draws from a generator seeded 0
        assert float(bound) == pytest.approx(float(_estimate(model, x, 7).log_px.mean()), abs=1e-4), name


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    """An MLP VAE trained 3 epochs on dynamically binarized (learnable) MNIST-format images."""
    from formats import write_mnist

    root = tmp_path_factory.mktemp("bin")
    write_mnist(root, "MNIST", n_train=600, n_test=100)
    runs = root / "runs"
    rc = run_inproc(["--model", "mlp_vae", "--dataset", "binarized_mnist", "--data-root", root, "--epochs", 3,
                     "--runs-dir", runs, "--wandb", "disabled", "--batch-size", 32, "--hidden-dims", "64",
                     "--latent-dim", 8, "--eval", "nll", "--nll-k", 50])
    assert rc == 0
    from bench.records.rebuild import load_run_model
    from bench.records.store import list_runs

    run = list_runs(str(runs))[0]
    model, cfg = load_run_model(str(run.path), str(runs))
    return root, run, model


def test_a_trained_model_has_elbo_above_the_estimate_which_falls_as_k_grows(trained_vae):
    root, run, model = trained_vae
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["test/nll_k"] == 50 and summary["nll/images"] == 100
    assert summary["test/neg_elbo"] >= summary["test/nll"] > 0
    assert summary["test/nll_se"] > 0 and summary["test/nll_mc_se"] > 0
    from bench.config.spec import from_record, resolve
    from bench.data import batches, load_data

    data = load_data(resolve(dict(from_record(run.read_config()), data_root=str(root))))
    x = next(batches(data.test, 100))[0]
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    nll = [float(-_estimate(model, x, k).log_px.mean()) for k in (1, 10, 100)]
    assert nll[0] > nll[1] > nll[2], nll
    assert float(-_estimate(model, x, 100).elbo.mean()) >= nll[2]


def test_the_nll_tool_scores_kept_checkpoints_as_a_curve(trained_vae, capsys):
    root, run, _ = trained_vae
    from bench.evaluate import main

    assert main([str(run.path), "--what", "nll", "--nll-k", "5", "--checkpoint", "last",
                 "--data-root", str(root)]) == 0
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["test/nll_k@last"] == 5 and summary["test/nll@last"] > 0


@pytest.mark.parametrize("args, message", [
    (["--model", "ae", "--eval", "nll"], "deterministic autoencoder"),
    (["--model", "vae", "--eval", "nll"], "--recon-type bce"),
    (["--model", "mlp_ae", "--eval", "nll"], "deterministic"),
    (["--model", "mlp_vae", "--eval", "nll", "--dataset", "mnist"], "not binary"),
    (["--model", "mlp_vae", "--eval", "nll", "--nll-k", "0"], "--nll-k"),
    (["--model", "mlp_vae", "--eval", "nll", "--nll-k", "10000000"], "--nll-k"),
])
def test_the_tool_is_refused_in_one_line_where_it_is_not_defined(tmp_path, capsys, args, message):
    """run.py's main, in this process (what a user's command runs): exit 2, one line, no run."""
    from formats import write_mnist

    write_mnist(tmp_path / "d", "MNIST", n_train=60, n_test=20)
    base = ["--dataset", "binarized_mnist", "--data-root", tmp_path / "d", "--epochs", 1,
            "--runs-dir", tmp_path / "runs", "--wandb", "disabled"]
    capsys.readouterr()
    assert run_inproc(base + args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_grey_images_are_scored_only_when_asked_by_name(tmp_path):
    from formats import write_mnist

    write_mnist(tmp_path / "d", "MNIST", n_train=60, n_test=20)
    rc = run_inproc(["--model", "mlp_vae", "--dataset", "mnist", "--data-root", tmp_path / "d", "--epochs", 1,
                     "--runs-dir", tmp_path / "runs", "--wandb", "disabled", "--eval", "nll", "--nll-k", 3,
                     "--nll-grey"])
    assert rc == 0
    assert json.loads((only_run(tmp_path).path / "summary.json").read_text())["test/nll_k"] == 3


def test_dynamic_binarization_draws_anew_each_epoch_and_holds_out_one_fixed_draw(tmp_path):
    from formats import write_mnist

    from bench.config.spec import resolve
    from bench.data import batches, load_data

    write_mnist(tmp_path, "MNIST", n_train=200, n_test=50)
    data = [load_data(resolve({"model": "mlp_vae", "dataset": "binarized_mnist", "data_root": str(tmp_path),
                                "seed": seed})) for seed in (0, 1)]
    for d in data:
        assert set(d.val.x.unique().tolist()) <= {0, 255} and set(d.test.x.unique().tolist()) <= {0, 255}
    assert torch.equal(data[0].val.x, data[1].val.x) and torch.equal(data[0].test.x, data[1].test.x)
    g = torch.Generator().manual_seed(0)
    first, second = (torch.cat([x for x, _ in batches(data[0].train, 64, shuffle=True, generator=g)]) for _ in "ab")
    assert set(first.unique().tolist()) == {0.0, 1.0}
    g_again = torch.Generator().manual_seed(0)
    assert torch.equal(first, torch.cat([x for x, _ in batches(data[0].train, 64, shuffle=True, generator=g_again)]))
    assert not torch.equal(first.sum((1, 2, 3)).sort().values, second.sum((1, 2, 3)).sort().values)
    grey = data[0].train.x.float().mean() / 255
    assert abs(float(first.mean()) - float(grey)) < 0.02  # P(1) is the intensity


def test_the_static_split_is_read_from_its_amat_files_and_refused_when_missing_or_damaged(tmp_path):
    from bench.config.spec import resolve
    from bench.core.errors import UsageError
    from bench.data import load_data
    from bench.data.binarized import STATIC_FILES, write_static

    folder = write_static(tmp_path, n_train=30, n_valid=10, n_test=12)
    spec = resolve({"model": "mlp_vae", "dataset": "binarized_mnist_static", "data_root": str(tmp_path)})
    data = load_data(spec)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 12)
    assert set(data.train.x.unique().tolist()) == {0, 255} and data.train.x.shape[1:] == (1, 28, 28)
    lines = (folder / STATIC_FILES["test"]).read_text().splitlines()
    (folder / STATIC_FILES["test"]).write_text("\n".join(lines[:-1] + [lines[-1][:-2]]) + "\n")
    with pytest.raises(UsageError, match="line 12 holds 783 values"):
        load_data(spec)
    (folder / STATIC_FILES["valid"]).unlink()
    p = run_cli(["--model", "mlp_vae", "--dataset", "binarized_mnist_static", "--data-root", tmp_path,
                 "--runs-dir", tmp_path / "runs", "--wandb", "disabled", "--epochs", 1], tmp_path)
    assert p.returncode == 2 and "binarized_mnist_valid.amat" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_the_iwae_schedule_is_the_papers():
    from bench.run.train import lr_factor

    factors = [lr_factor("iwae", e) for e in range(3280)]
    stages = [sum(1 for f in factors if f == pytest.approx(10 ** (-i / 7))) for i in range(8)]
    assert stages == [3 ** i for i in range(8)] and sum(stages) == 3280
    assert factors[0] == 1.0 and lr_factor("iwae", 5000) == pytest.approx(10 ** (-1))
    assert lr_factor("constant", 100) == 1.0
