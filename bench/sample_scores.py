"""The sample scores of a feature space: Frechet distance with a bootstrap interval, and KID.

Each image set's features are extracted once, by the FID metric's own extractor
(torchmetrics' `FrechetInceptionDistance`: a small network of `bench.sample_quality`, or
InceptionV3 from `bench.inception`), and every number comes from them:
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
    """Frechet distance between two feature sets (rows), torchmetrics' formula."""
    from torchmetrics.image.fid import _compute_fid

    return float(_compute_fid(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)))


def kid(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> tuple[float, float]:
    """KID's mean and standard deviation over random subsets (torchmetrics' kernel)."""
    from torchmetrics.image.kid import poly_mmd

    size = max(2, min(KID_SUBSET_SIZE, len(real) // 2, len(fake) // 2))  # subsets must differ to have a spread
    values = []
    for _ in range(KID_SUBSETS):
        r = real[torch.randperm(len(real), generator=generator)[:size]]
        f = fake[torch.randperm(len(fake), generator=generator)[:size]]
        values.append(float(poly_mmd(r, f)))
    t = torch.tensor(values)
    return float(t.mean()), float(t.std())


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
        boot = []
        for _ in range(draws):
            i, j = torch.randint(len(real), (len(real),), generator=g), torch.randint(len(fake), (len(fake),), generator=g)
            boot.append(sum(frechet_distance(f[j], r[i]) for f, r in zip(fake_f, real_f)) / len(values))
        q_lo, q_hi = torch.quantile(torch.tensor(boot, dtype=torch.float64),
                                    torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
        lo, hi = max(0.0, 2 * fd - q_hi), 2 * fd - q_lo  # the basic bootstrap: see the module
        k = [kid(r, f, g) for r, f in zip(real_f, fake_f)]
        out[name] = Score(fd, (max(values) - min(values)) / fd if fd > 0 else 0.0, lo, hi,
                          sum(m for m, _ in k) / len(k), sum(s for _, s in k) / len(k))
    return out


def frechet(space, real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance of one image set to `real`: the mean over the space's networks."""
    return score_each(space, real, {"fake": fake})["fake"].fd
