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
MOMENTS_MAX = 2 ** 23  # numbers held at once by the resamples' moments (64 MiB in float64)
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
    return float(_from_moments(a.mean(0)[None], torch.cov(a.T)[None], b.mean(0)[None], torch.cov(b.T)[None])[0])


def _from_moments(mu_a, s_a, mu_b, s_b) -> torch.Tensor:
    """`frechet_distance` of each of a batch of (mean, covariance) pairs: (B, d), (B, d, d) -> (B,)."""
    d = s_a.shape[-1]
    eye = torch.eye(d, dtype=s_a.dtype, device=s_a.device)
    tr_a, tr_b = s_a.diagonal(dim1=-2, dim2=-1).sum(-1), s_b.diagonal(dim1=-2, dim2=-1).sum(-1)
    low, info = torch.linalg.cholesky_ex(s_a + eye * (1e-10 * tr_a / d + 1e-30)[:, None, None])
    bad = info != 0  # not positive definite even with the jitter (fewer images than dims): the general way
    low = torch.where(bad[:, None, None], eye, low)
    root = torch.linalg.eigvalsh(low.mT @ s_b @ low).clamp(min=0).sqrt().sum(-1)
    out = (mu_a - mu_b).square().sum(-1) + tr_a + tr_b - 2 * root
    if bool(bad.any()):
        from torchmetrics.image.fid import _compute_fid
        for k in bad.nonzero().flatten().tolist():
            out[k] = _compute_fid(mu_a[k], s_a[k], mu_b[k], s_b[k])
    return out


def resampled_distances(a: torch.Tensor, b: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    """`frechet_distance(a[ia[k]], b[ib[k]])` for every resample k (index rows, with repeats).

    A resample's mean and covariance are those of the whole set weighted by how often each row
    was drawn, so where all resamples' covariances fit in memory together (the small networks'
    64 dims) they come from one matrix product of the draw counts with the rows' outer products:
    1.5-1.8 times as fast as one resample at a time from 1,000 images, the same numbers to
    rounding. Wider features (Inception's 2,048) go one resample at a time."""
    d = a.shape[1]
    if len(ia) * d * d > MOMENTS_MAX:
        return torch.tensor([frechet_distance(a[i], b[j]) for i, j in zip(ia, ib)], dtype=torch.float64)
    return _from_moments(*_resampled_moments(a, ia), *_resampled_moments(b, ib))


def _resampled_moments(x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means (B, d) and unbiased covariances (B, d, d) of the resamples x[idx[k]], from the draw
    counts w: S = (sum_k w_k y_k y_k^T - n nu nu^T) / (n - 1), y the rows centred on the whole
    set's mean (which keeps the subtraction well conditioned) and nu = w y / n."""
    n, d = x.shape
    counts = torch.zeros(len(idx), n, dtype=x.dtype, device=x.device)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=x.dtype))
    centre = x.mean(0)
    y = x - centre
    iu = torch.triu_indices(d, d, device=x.device)
    rows = max(1, MOMENTS_MAX // iu.shape[1])  # the rows' outer products (upper triangles), so many at a time
    # (B, d(d+1)/2): each resample's count-weighted sum of the rows' outer products
    upper = sum(counts[:, k:k + rows] @ (y[k:k + rows, iu[0]] * y[k:k + rows, iu[1]]) for k in range(0, n, rows))
    nu = counts @ y / n
    s = torch.zeros(len(idx), d, d, dtype=x.dtype, device=x.device)
    s[:, iu[0], iu[1]] = upper
    s[:, iu[1], iu[0]] = upper
    return nu + centre, (s - n * nu[:, :, None] * nu[:, None, :]) / (n - 1)


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


def resamples(n_a: int, n_b: int, draws: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`draws` two-sample resamples with replacement: index rows (draws, n_a) and (draws, n_b),
    drawn pair by pair from `g` (each pair's first sample, then its second)."""
    pairs = [(torch.randint(n_a, (n_a,), generator=g), torch.randint(n_b, (n_b,), generator=g)) for _ in range(draws)]
    return torch.stack([i for i, _ in pairs]), torch.stack([j for _, j in pairs])


def basic_interval(boot: torch.Tensor, value: float, level: float = 0.95) -> tuple[float, float]:
    """The basic (reverse-percentile) bootstrap interval from the resamples' values of a
    statistic (`resamples`, both samples resampled with replacement): (2 v - q_hi, 2 v - q_lo),
    as `scipy.stats.bootstrap(..., method="basic")` computes it (a test compares the two).

    Not scipy's own function: it draws its resamples with numpy on the host, while these
    statistics index features that live on the run's device (a GPU) through torch; and its other
    draws would move the intervals of every recorded run for no gain."""
    tail = (1 - level) / 2
    q_lo, q_hi = torch.quantile(boot.detach().double().cpu(),
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
        i, j = (t.to(real.device) for t in resamples(len(real), len(fake), draws, g))
        boot = sum(resampled_distances(f, r, j, i) for f, r in zip(fake_f, real_f)) / len(values)
        lo, hi = basic_interval(boot, fd)
        lo = max(0.0, lo)  # a distance: the interval never reaches below 0
        k = [kid(r, f, g) for r, f in zip(real_f, fake_f)]
        out[name] = Score(fd, (max(values) - min(values)) / fd if fd > 0 else 0.0, lo, hi,
                          sum(m for m, _ in k) / len(k), sum(s for _, s in k) / len(k))
    return out


def frechet(space, real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance of one image set to `real`: the mean over the space's networks."""
    return score_each(space, real, {"fake": fake})["fake"].fd
