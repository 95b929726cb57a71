"""Generation: decoded samples from the prior (VAEs) and from ex-post densities fitted to the
training codes, scored by a Frechet distance in one feature network per dataset.

Smaller means closer to the data; it is not comparable to Inception-FID numbers from papers."""
from __future__ import annotations

import numpy as np
import torch

from bench.figures import image_grids
from bench.latent import codes, decoder, images
from bench.tools import register_tool

N_SAMPLES_SHOWN = 16
N_SAMPLES_SCORED = 2000


@register_tool(needs={"labels", "decoder"}, rank=5)
@torch.no_grad()
def sample(model, data, cfg, run, device):
    """Decoded samples and their Frechet distance to test images: from a Gaussian fitted to
    the training codes and from a 10-component GMM (ex-post density estimation, Ghosh et al.
    arXiv 1903.12436, for any autoencoder), and for a VAE also from its prior N(0, I)."""
    from bench.sample_quality import feature_network, frechet_each
    from bench.samplers import GaussianSampler, GMMSampler, PriorSampler

    decode = decoder(model, "sample")
    shape = model.encode(images(data.test, torch.arange(1), device)).shape[1:]
    mu = codes(model, data.train, device)
    samplers = {"prior": PriorSampler()} if model.is_variational else {}
    samplers.update(ex_post=GaussianSampler(), gmm=GMMSampler(10, seed=cfg.seed))
    rng = np.random.default_rng(cfg.seed)
    n_scored = min(N_SAMPLES_SCORED, len(data.test))  # as many samples as real images they are compared with
    draws = {name: s.fit(mu).sample(n_scored, rng) for name, s in samplers.items()}
    features = feature_network(data, device, cfg)
    real = images(data.test, torch.arange(n_scored), device)
    decoded = {name: torch.cat([decode(torch.from_numpy(zs[i:i + 500]).float().to(device).view(-1, *shape))
                                for i in range(0, len(zs), 500)]) for name, zs in draws.items()}
    numbers = {f"sample/{name}_fd": fd for name, fd in frechet_each(features, real, decoded).items()}
    rows = [(name, imgs[:N_SAMPLES_SHOWN]) for name, imgs in decoded.items()]
    numbers["sample/fd_features"] = features.identity
    scores = ", ".join(f"{k.split('/')[1][:-3]} {v:.2f}" for k, v in numbers.items() if k.endswith("_fd"))
    path = image_grids([(f"{name} (FD {numbers[f'sample/{name}_fd']:.2f})", imgs) for name, imgs in rows],
                       run.figures / "samples.png", f"samples; Frechet distance to test images, lower is better "
                       f"({scores})")
    return {"numbers": numbers, "figures": {"samples": path}}
