"""Test log-likelihood: the importance-sampled estimate of -log p(x) (Burda et al. 2016, eq. 8;
k = 5,000 samples per image in their tables and after) for every model with a stochastic
encoder and a normalised decoder likelihood.

    log p(x) ~ log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x),

the k-sample IWAE bound L_k, which rises to log p(x) as k grows. Recorded per run: `test/nll`
(the mean over test images, nats), `test/nll_se` (its standard error over the images),
`test/nll_mc_se` (the Monte Carlo error of the estimate itself, by the delta method),
`test/nll_k`, and `test/neg_elbo`, -L_1 from the same draws (>= the estimate). The draws come
from a generator of their own (seed 0): two runs are scored on the same noise, and the
training RNG is untouched. Memory stays bounded: the k samples of a batch of images are
decoded in chunks of at most `ROWS` images at a time, combined by a running log-sum-exp.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from bench.core.errors import UsageError
from bench.data import batches
from bench.tools import register_tool

ROWS = 8192  # decoded samples per chunk: the logits of 8192 MNIST images are 26 MB
IMAGES_PER_BATCH = 100
DRAW_SEED = 0


@dataclass
class Estimate:
    log_px: torch.Tensor  # (N,) the k-sample estimate of log p(x), per image
    elbo: torch.Tensor  # (N,) the mean of the k single-sample ELBOs, per image
    mc_var: torch.Tensor  # (N,) delta-method variance of each log p(x) estimate


@torch.no_grad()
def estimate(model, x: torch.Tensor, k: int, generator: torch.Generator, rows: int = ROWS) -> Estimate:
    """The importance-sampled log p(x) of each image of the batch `x`, from k draws of the model's
    posterior, decoded in chunks of at most `rows` samples (at least one draw per image a chunk)."""
    mu, logvar = model.posterior(x)
    per_chunk = max(1, rows // len(x))
    lse = torch.full((len(x),), -math.inf, device=x.device, dtype=torch.float64)
    lse2, mean_w = lse.clone(), torch.zeros(len(x), device=x.device, dtype=torch.float64)
    done = 0
    while done < k:
        m = min(per_chunk, k - done)
        eps = torch.randn((m, *mu.shape), generator=generator, device=generator.device, dtype=mu.dtype).to(mu.device)
        log_w = model.log_weights(x, eps, posterior=(mu, logvar)).double()  # (m, B)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
        lse2 = torch.logaddexp(lse2, torch.logsumexp(2 * log_w, 0))
        mean_w += log_w.sum(0)
        done += m
    log_px = lse - math.log(k)
    # Var of the mean weight over its square, / k: the variance of log of the mean (delta method)
    rel = torch.exp(lse2 - math.log(k) - 2 * log_px) - 1
    return Estimate(log_px.float(), (mean_w / k).float(), (rel.clamp(min=0) / k).float())


def refusal(model, data, spec) -> str | None:
    """Why the estimate is not defined here, or None: checked before a run trains (`data` None:
    the model alone, as a plan made before any data is read)."""
    gap = getattr(model, "likelihood_gap", None)
    if gap is None:
        return f"{type(model).__name__} has no posterior and decoder likelihood (a deterministic autoencoder)"
    why = gap()
    if why:
        return f"{type(model).__name__}: {why}"
    if data is None:
        return None
    x = data.test.x
    binary = bool(((x == 0) | (x == 255)).all())
    if not binary and not getattr(spec, "nll_grey", False):
        return (f"{data.name}'s test images are grey levels, not binary: a Bernoulli decoder's -log p(x) is defined "
                f"on binary images; use binarized_mnist (or binarized_mnist_static), or --nll-grey to score them "
                f"anyway")
    return None


@register_tool(needs={"autoencoder"}, rank=3, check=refusal)
@torch.no_grad()
def nll(model, data, spec, run, device):
    """Test negative log-likelihood by importance sampling (k = --nll-k per image, 5,000 as the papers),
    with its standard error, and -ELBO beside it."""
    from bench.core.progress import epoch_bar

    why = refusal(model, data, spec)
    if why:
        raise UsageError(f"--eval nll: {why}")
    k = int(getattr(spec, "nll_k", 5000))
    model.eval()
    n = len(data.test)
    print(f"  nll: {n} test images x {k} samples ...", flush=True)
    generator = torch.Generator().manual_seed(DRAW_SEED)
    parts, t0 = [], time.perf_counter()
    bar = epoch_bar(n, IMAGES_PER_BATCH, "nll")
    for x, _ in batches(data.test, IMAGES_PER_BATCH):
        parts.append(estimate(model, x.to(device), k, generator))
        bar.update(1)
    bar.close()
    log_px = torch.cat([p.log_px for p in parts]).double()
    elbo = torch.cat([p.elbo for p in parts]).double()
    mc_var = torch.cat([p.mc_var for p in parts]).double()
    seconds = time.perf_counter() - t0
    numbers = {"test/nll": float(-log_px.mean()), "test/nll_se": float(log_px.std() / math.sqrt(n)) if n > 1 else 0.0,
               "test/nll_mc_se": float(mc_var.sum().sqrt() / n), "test/nll_k": k,
               "test/neg_elbo": float(-elbo.mean()), "nll/images": n, "nll/seconds": round(seconds, 1)}
    print(f"  nll: -log p(x) {numbers['test/nll']:.2f} +- {numbers['test/nll_se']:.2f} nats (k = {k}, {n} images, "
          f"{seconds:.0f} s); -ELBO {numbers['test/neg_elbo']:.2f}", flush=True)
    return {"numbers": numbers}
