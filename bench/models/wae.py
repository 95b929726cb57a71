"""Wasserstein autoencoder with the MMD penalty, `wae` (Tolstikhin, Bousquet, Gelly and
Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018, arXiv 1711.01558).

A deterministic conv encoder and decoder. The loss is the reconstruction cost (squared error
summed over pixels, per image) plus lambda times the MMD between the batch's codes and as
many draws from the prior N(0, I). The kernel is the paper's inverse multiquadratic
k(x, y) = C / (C + |x - y|^2), summed over the scales C = 2 d s, s in {0.1, 0.2, 0.5, 1, 2,
5, 10} (d: the latent size), with the unbiased estimator. Unlike a VAE it matches the
aggregate posterior q(z), not each q(z|x), to the prior, so codes need not be noised and
`decode(z ~ N(0, I))` generates. Its diagnostic is that MMD, per epoch (`train/mmd`,
`val/mmd`): it falls as q(z) moves onto the prior.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.config.keys import BATCHNORM, CHANNELS, LATENT_DIM, Corruption, ImageInput, key
from bench.models.base import LinearCodeAE
from registry import register_model

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def mmd_imq(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 between the rows of `z` and of `prior` (both (n, d)), inverse
    multiquadratic kernel summed over the paper's scales (prior variance 1)."""
    n, d = z.shape
    if n < 2:
        return z.new_zeros(())
    off = 1.0 - torch.eye(n, device=z.device, dtype=z.dtype)
    dzz, dpp, dzp = torch.cdist(z, z).pow(2), torch.cdist(prior, prior).pow(2), torch.cdist(z, prior).pow(2)
    total = z.new_zeros(())
    for s in SCALES:
        c = 2.0 * d * s
        total = total + ((c / (c + dzz)) * off).sum() / (n * (n - 1)) + ((c / (c + dpp)) * off).sum() / (n * (n - 1)) \
            - 2.0 * (c / (c + dzp)).mean()
    return total


@dataclass
class WAEConfig(ImageInput, Corruption):
    """Wasserstein autoencoder with the MMD penalty (wae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(8, **LATENT_DIM)
    batchnorm: bool = key(False, **BATCHNORM)
    mmd_lambda: float = key(10.0, "lambda in loss = squared error + lambda * MMD(q(z), N(0, I)) (WAE-MMD)",
                            lo=0.0, hi=1e4, weighs="mmd")


class WAE(LinearCodeAE):
    def __init__(self, cfg: WAEConfig):
        super().__init__(cfg, "wae")

    def prior(self, like: torch.Tensor) -> torch.Tensor:
        """Draws from N(0, I), one per code; in evaluation from a fixed stream, so that a
        validation MMD is the same number each time and draws nothing from the training RNG."""
        if self.training:
            return torch.randn_like(like)
        g = torch.Generator(device=like.device).manual_seed(0)
        return torch.randn(like.shape, generator=g, device=like.device, dtype=like.dtype)

    def forward(self, x, y=None):
        z = self.encode(self.model_input(x))
        recon = self.decode(z)
        rec = (recon - x).pow(2).flatten(1).sum(1).mean()
        mmd = mmd_imq(z, self.prior(z))
        loss = rec + self.cfg.mmd_lambda * mmd if self.cfg.mmd_lambda > 0 else rec
        return {"loss": loss, "recon": recon, "z": z, "recon_loss": rec.detach(), "mmd": mmd.detach(),
                "mse": F.mse_loss(recon.detach(), x)}


@register_model(config=WAEConfig)
def wae(cfg):
    """WAE-MMD (Tolstikhin et al. 2018): deterministic codes pulled onto N(0, I) by an IMQ-kernel MMD."""
    return WAE(cfg)
