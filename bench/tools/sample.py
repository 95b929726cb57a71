"""Generation: decoded samples from the prior (VAEs) and from ex-post densities fitted to the
training codes, scored by a Frechet distance to test images. `--sample-score small` (the
default): in three small feature networks per dataset (the mean, and the spread between the
networks beside it), comparable between runs that name the same networks, not with papers.
`--sample-score inception`: the Frechet Inception Distance papers report (bench.tools._inception)."""
from __future__ import annotations

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.tools import register_tool
from bench.tools._latent import codes, decoder, images

N_SAMPLES_SHOWN = 16
N_SAMPLES_SCORED = 2000


@register_tool(needs={"labels", "decoder"}, rank=5)
@torch.no_grad()
def sample(model, data, spec, run, device):
    """Decoded samples and their Frechet distance to test images: from a Gaussian fitted to
    the training codes and from a 10-component GMM (ex-post density estimation, Ghosh et al.
    arXiv 1903.12436, for any autoencoder), and for a VAE also from its prior N(0, I)."""
    from bench.tools._samplers import GaussianSampler, GMMSampler, PriorSampler
    from bench.tools._scores import score_each

    from bench.core.progress import Steps

    step = Steps("sample", {"codes": 2.0, "draw": 1.0, "features": 1.0, "score": 2.0})
    decode = decoder(model, "sample")
    shape = model.encode(images(data.test, torch.arange(1), device)).shape[1:]
    step("codes", f"encoding {len(data.train):,} training images")
    mu = codes(model, data.train, device)
    samplers = {"prior": PriorSampler(getattr(model, "prior_codes", None))} if model.is_variational else {}
    samplers.update(ex_post=GaussianSampler(), gmm=GMMSampler(10, seed=spec.seed))
    rng = np.random.default_rng(spec.seed)
    n_scored = min(N_SAMPLES_SCORED, len(data.test))  # as many samples as real images they are compared with
    step("draw", f"fitting {', '.join(samplers)} and decoding {n_scored:,} samples of each")
    draws = {name: s.fit(mu).sample(n_scored, rng) for name, s in samplers.items()}
    decoded = {name: torch.cat([decode(torch.from_numpy(zs[i:i + 500]).float().to(device).view(-1, *shape))
                                for i in range(0, len(zs), 500)]) for name, zs in draws.items()}
    step("features", "the feature space to score in")
    try:
        features, space = _space(data, device, spec)
    except UsageError as e:  # no feature space to score in here: the samples are drawn all the same
        return _unscored(decoded, run, " ".join(str(e).split()))
    real = images(data.test, torch.arange(n_scored), device)
    step("score", f"Frechet distances and their bootstrap intervals over {n_scored:,} images")
    scored = score_each(features, real, decoded, seed=spec.seed)
    numbers = {}
    for name, sc in scored.items():
        numbers.update({f"sample/{name}_fd": sc.fd, f"sample/{name}_fd_spread": sc.spread,
                        f"sample/{name}_fd_lo": sc.lo, f"sample/{name}_fd_hi": sc.hi,
                        f"sample/{name}_kid": sc.kid, f"sample/{name}_kid_std": sc.kid_std})
    numbers["sample/fd_features"] = features.identity
    numbers["sample/n_scored"] = n_scored
    numbers.update(space)
    several = len(features.members) > 1
    label = {name: f"{sc.fd:.2f} [{sc.lo:.2f}, {sc.hi:.2f}]" + (f"\nnetworks differ by {sc.spread:.0%}" if several else "")
             for name, sc in scored.items()}
    apart = untold(scored)
    if apart:
        print(f"  sample: not told apart by {n_scored} samples (95% intervals overlap): {apart}", flush=True)
    over = f"mean over {len(features.members)} feature networks" if several else "Inception FID"
    print(f"  sample: Frechet distance to test images, {over}: "
          + ", ".join(f"{name} {text}".replace("\n", ", ") for name, text in label.items()), flush=True)
    from bench.measure.figures import image_grids  # matplotlib, imported by what draws
    path = image_grids([(f"{name}\nFD {label[name]}", imgs[:N_SAMPLES_SHOWN]) for name, imgs in decoded.items()],
                       run.figures / "samples.png", "samples; Frechet distance to test images, lower is better "
                       f"({over})")
    return {"numbers": numbers, "figures": {"samples": path}}


def _unscored(decoded: dict, run, why: str) -> dict:
    """The sample grid without scores, and why the score is missing (recorded as `sample/skipped`)."""
    from bench.measure.figures import image_grids

    print(f"  sample: drawn, not scored: {why}", flush=True)
    path = image_grids([(name, imgs[:N_SAMPLES_SHOWN]) for name, imgs in decoded.items()],
                       run.figures / "samples.png", "samples (not scored: see sample/skipped)")
    return {"numbers": {"sample/skipped": why}, "figures": {"samples": path}}


def _space(data, device, spec):
    """(feature space, what the record says of it): InceptionV3 where asked and its weights can
    be had, else the dataset's small networks, with the reason said in one line."""
    from bench.tools._features import feature_networks

    asked = getattr(spec, "sample_score", "small")
    if asked == "inception":
        from bench.tools._inception import inception_space
        space, why = inception_space()
        if space is not None:
            return space, {"sample/score_space": "inception"}
        print(f"  sample: --sample-score inception: {why}; scoring with the dataset's small networks instead",
              flush=True)
        return feature_networks(data, device, spec), {"sample/score_space": "small", "sample/score_fallback": why}
    return feature_networks(data, device, spec), {"sample/score_space": "small"}


def untold(scored: dict) -> str:
    """Pairs of samplers whose FD intervals overlap: this many samples do not tell them apart."""
    names = list(scored)
    pairs = [f"{a} and {b}" for i, a in enumerate(names) for b in names[i + 1:]
             if scored[a].lo <= scored[b].hi and scored[b].lo <= scored[a].hi]
    return "; ".join(pairs)
