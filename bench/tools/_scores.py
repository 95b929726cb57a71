"""The sample scores of a feature space: Frechet distance with a bootstrap interval, and KID.

Each image set's features are extracted once, by the FID metric's own extractor
(torchmetrics' `FrechetInceptionDistance`: a small network of `bench.tools._features`, or
InceptionV3 from `bench.tools._inception`), and every number comes from them:
- the Frechet distance of all samples to all real images, with torchmetrics' formula
  (`_compute_fid`), the mean over the space's networks;
- its 95% bootstrap interval: both sets resampled with replacement (200 times; 20 for
  2048-d Inception features, where each resample is an eigendecomposition of a 2048x2048
  matrix), the same draws for every network. The FD of a finite sample lies above that of
  the distributions, and a resample's, with its repeated images, higher still, so the
  percentile interval would sit above the truth; the basic bootstrap turns the resamples'
  spread around the estimate the other way, [2 fd - q97.5, 2 fd - q2.5], which covers the
  FD of a ten times larger sample in most repeats (a test checks it). It is an interval for
  the distributions' FD, so the estimate, biased upwards, may sit at its top. The interval is the
  sampling error of the score from these many images: where two samplers' intervals
  overlap, this many samples do not tell them apart;
- KID (Binkowski et al. 2018, arXiv 1801.01401): the unbiased MMD^2 with the cubic
  polynomial kernel, torchmetrics' `poly_mmd`, over 100 random subsets of each set (1,000
  images, or half the set where it is smaller); its mean and standard deviation over the subsets, as papers report it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

RESAMPLES, RESAMPLES_WIDE = 200, 20  # bootstrap draws; WIDE: features of more than 512 dims
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


class Score(NamedTuple):
    fd: float        # Frechet distance, mean over the space's networks
    spread: float    # (max - min) / mean over the networks (0 for one network)
    lo: float        # 95% bootstrap interval of fd
    hi: float
    kid: float       # mean over subsets
    kid_std: float   # standard deviation over subsets


@torch.no_grad()
def features_of(member, metric, x: torch.Tensor) -> torch.Tensor:
    """(N, d) float64 features of images (N, C, H, W) in [0, 1], as the metric's `update` makes them."""
    out = []
    for i in range(0, len(x), 500):
        batch = member.prepare(x[i:i + 500].clamp(0, 1))
        batch = (batch * 255).byte() if metric.normalize and not metric.used_custom_model else batch
        f = metric.inception(batch).double()
        out.append(f.unsqueeze(0) if f.dim() == 1 else f)
    return torch.cat(out)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between two feature sets (rows): torchmetrics' formula (`_compute_fid`),
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with the trace of the root taken as the
    sum of root eigenvalues of the symmetric L^T S_b L (S_a = L L^T) instead of a general
    eigendecomposition of S_a S_b: the same number (a test holds it to torchmetrics' to 1e-6),
    ten times faster for the bootstrap."""
    mu_a, mu_b, s_a, s_b = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    d = s_a.shape[0]
    jitter = torch.eye(d, dtype=s_a.dtype, device=s_a.device) * (1e-10 * float(s_a.trace()) / d + 1e-30)
    low, info = torch.linalg.cholesky_ex(s_a + jitter)
    if int(info) != 0:  # not positive definite even with the jitter (fewer images than dims): the general way
        from torchmetrics.image.fid import _compute_fid
        return float(_compute_fid(mu_a, s_a, mu_b, s_b))
    root = torch.linalg.eigvalsh(low.T @ s_b @ low).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + s_a.trace() + s_b.trace() - 2 * root)


def kid(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> tuple[float, float]:
    """KID's mean and standard deviation over random subsets: torchmetrics' unbiased `poly_mmd`
    per subset, from kernel matrices (its `poly_kernel`) computed once for all subsets."""
    from torchmetrics.image.kid import poly_kernel

    m = max(2, min(KID_SUBSET_SIZE, len(real) // 2, len(fake) // 2))  # subsets must differ to have a spread
    k_rr, k_ff, k_rf = poly_kernel(real, real), poly_kernel(fake, fake), poly_kernel(real, fake)
    # Each subset as a 0/1 row: its kernel sums are s K s^T, all subsets in three matrix products
    s_r = torch.zeros(KID_SUBSETS, len(real), dtype=real.dtype, device=real.device)
    s_f = torch.zeros(KID_SUBSETS, len(fake), dtype=real.dtype, device=real.device)
    for n in range(KID_SUBSETS):
        s_r[n, torch.randperm(len(real), generator=generator)[:m]] = 1
        s_f[n, torch.randperm(len(fake), generator=generator)[:m]] = 1
    within = ((s_r @ k_rr) * s_r).sum(1) - s_r @ k_rr.diagonal() + ((s_f @ k_ff) * s_f).sum(1) - s_f @ k_ff.diagonal()
    values = within / (m * (m - 1)) - 2 * ((s_r @ k_rf) * s_f).sum(1) / (m * m)
    return float(values.mean()), float(values.std())


def basic_interval(statistic, value: float, n_a: int, n_b: int, draws: int, g: torch.Generator,
                   device="cpu", level: float = 0.95) -> tuple[float, float]:
    """The basic (reverse-percentile) bootstrap interval of a two-sample `statistic(i, j)` of index
    tensors, both samples resampled with replacement `draws` times: (2 v - q_hi, 2 v - q_lo), as
    `scipy.stats.bootstrap(..., method="basic")` computes it (a test compares the two).

    Not scipy's own function: it draws its resamples with numpy on the host, while these
    statistics index features that live on the run's device (a GPU) through torch; and its other
    draws would move the intervals of every recorded run for no gain."""
    boot = []
    for _ in range(draws):
        i = torch.randint(n_a, (n_a,), generator=g).to(device)
        j = torch.randint(n_b, (n_b,), generator=g).to(device)
        boot.append(float(statistic(i, j)))
    tail = (1 - level) / 2
    q_lo, q_hi = torch.quantile(torch.tensor(boot, dtype=torch.float64),
                                torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return 2 * value - q_hi, 2 * value - q_lo


@torch.no_grad()
def score_each(space, real: torch.Tensor, fakes: dict, seed: int = 0) -> dict[str, Score]:
    """{name: Score of fakes[name] against `real`} in a feature space (`.members`: networks
    with `metric(real)` and `prepare(x)`)."""
    metrics = [m.metric(real) for m in space.members]
    real_f = [features_of(m, metric, real) for m, metric in zip(space.members, metrics)]
    out = {}
    for name, fake in fakes.items():
        fake = fake.to(real.device)
        fake_f = [features_of(m, metric, fake) for m, metric in zip(space.members, metrics)]
        values = [frechet_distance(f, r) for f, r in zip(fake_f, real_f)]
        fd = sum(values) / len(values)
        g = torch.Generator().manual_seed(seed)
        draws = RESAMPLES if real_f[0].shape[1] <= 512 else RESAMPLES_WIDE
        lo, hi = basic_interval(
            lambda i, j: sum(frechet_distance(f[j], r[i]) for f, r in zip(fake_f, real_f)) / len(values),
            fd, len(real), len(fake), draws, g, real_f[0].device)
        lo = max(0.0, lo)  # a distance: the interval never reaches below 0
        k = [kid(r, f, g) for r, f in zip(real_f, fake_f)]
        out[name] = Score(fd, (max(values) - min(values)) / fd if fd > 0 else 0.0, lo, hi,
                          sum(m for m, _ in k) / len(k), sum(s for _, s in k) / len(k))
    return out


def frechet(space, real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance of one image set to `real`: the mean over the space's networks."""
    return score_each(space, real, {"fake": fake})["fake"].fd
