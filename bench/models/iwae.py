"""Importance-weighted autoencoder, `iwae` (Burda, Grosse and Salakhutdinov, "Importance
Weighted Autoencoders", ICLR 2016, arXiv 1509.00519).

The conv VAE's encoder and decoder, trained on the k-sample bound
    L_k = E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],  z_1..z_k ~ q(z | x),
which is at least the ELBO (L_1) and rises towards log p(x) as k grows. The loss is -L_k per
image, in nats, the scale of a VAE's recon + KL. The reconstruction term is the VAE's, so the
bound is up to the same constant as the VAE's ELBO. Each pass also records the ELBO of the
same samples (`elbo_loss` = -L_1, the mean of the k single-sample estimates) and the gap
(`bound_gap` = L_k - L_1 >= 0). On the test set that is the paper's claim, on the same images:
the k-sample bound is tighter than the ELBO.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.keys import BATCHNORM, CHANNELS, LATENT_DIM, RECON_TYPE, Corruption, ImageInput, key
from bench.models.vae import ConvVAE, kl_per_dim
from registry import register_model

LOG_2PI = math.log(2 * math.pi)


def recon_per_image(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The VAE's reconstruction term (`bench.models.vae.recon_term`), one value per image."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


@dataclass
class IWAEConfig(ImageInput, Corruption):
    """importance-weighted autoencoder (iwae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(32, **LATENT_DIM)
    recon_type: str = key("mse", **RECON_TYPE)
    batchnorm: bool = key(False, **BATCHNORM)
    k_samples: int = key(5, "importance samples per image in the IWAE bound L_k (1: the VAE's ELBO)", lo=1, hi=1000)
    # The conv VAE's own knobs, fixed for the IWAE: the bound has no KL weight or warm-up
    beta: float = key(1.0, internal=True)
    kl_warmup_epochs: int = key(0, internal=True)
    bottleneck: str = key("linear", internal=True)


class IWAE(ConvVAE):
    def forward(self, x, y=None):
        mu, logvar = self.posterior(self.model_input(x))
        k, (b, d) = self.cfg.k_samples, mu.shape
        if self.training:
            eps = torch.randn((k, b, d), device=mu.device, dtype=mu.dtype)
        else:  # a fixed stream: the same bound each evaluation, nothing drawn from the training RNG
            g = torch.Generator(device=mu.device).manual_seed(0)
            eps = torch.randn((k, b, d), generator=g, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = self.decode_logits(z.flatten(0, 1))
        log_px = -recon_per_image(logits, x.expand(k, *x.shape).flatten(0, 1), self.cfg.recon_type).view(k, b)
        log_w = log_px - 0.5 * (z.pow(2) + LOG_2PI).sum(-1) + 0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(-1)
        bound = torch.logsumexp(log_w, 0) - math.log(k)  # L_k per image
        loss = -bound.mean()
        elbo_loss = -log_w.mean()
        recon = torch.sigmoid(self.decode_logits(mu))
        return {"loss": loss, "recon": recon, "z": mu, "mu": mu, "logvar": logvar, "recon_loss": -log_px.mean().detach(),
                "kl": kl_per_dim(mu, logvar).sum().detach(), "elbo_loss": elbo_loss.detach(),
                "bound_gap": (elbo_loss - loss).detach(), "mse": F.mse_loss(recon.detach(), x)}


@register_model(config=IWAEConfig)
def iwae(cfg):
    """IWAE (Burda et al. 2016): the conv VAE trained on the k-sample importance-weighted bound."""
    return IWAE(cfg)
