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

from bench.config.keys import BATCHNORM, CHANNELS, HIDDEN_DIMS, LATENT_DIM, RECON_TYPE, Corruption, ImageInput, key
from bench.models.vae import ACTIVATION, MLPVAE, ConvVAE, MLPVAEConfig, kl_per_dim, recon_per_image  # noqa: F401 (recon_per_image: older imports)
from registry import register_model

K_SAMPLES = dict(help="importance samples per image in the IWAE bound L_k (1: the VAE's ELBO)", lo=1, hi=1000)


@dataclass
class IWAEConfig(ImageInput, Corruption):
    """importance-weighted autoencoder (iwae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(32, **LATENT_DIM)
    recon_type: str = key("mse", **RECON_TYPE)
    batchnorm: bool = key(False, **BATCHNORM)
    k_samples: int = key(5, **K_SAMPLES)
    # The conv VAE's own knobs, fixed for the IWAE: the bound has no KL weight or warm-up
    beta: float = key(1.0, internal=True)
    kl_warmup_epochs: int = key(0, internal=True)
    bottleneck: str = key("linear", internal=True)


@dataclass
class MLPIWAEConfig(MLPVAEConfig):
    """MLP importance-weighted autoencoder (mlp_iwae); its defaults are the IWAE paper's one-stochastic-layer
    MNIST model (Burda et al. 2016, section 5): two deterministic layers of 200 tanh units, 50 latent units,
    a Bernoulli decoder"""
    hidden_dims: list[int] = key((200, 200), **HIDDEN_DIMS)
    latent_dim: int = key(50, **LATENT_DIM)
    activation: str = key("tanh", **ACTIVATION)
    k_samples: int = key(5, **K_SAMPLES)
    beta: float = key(1.0, internal=True)
    kl_warmup_epochs: int = key(0, internal=True)


class ImportanceWeighted:
    """The forward pass of an IWAE over any VAE's encoder and decoder (`log_weights`)."""

    def forward(self, x, y=None):
        k = self.cfg.k_samples
        mu, logvar = self.posterior(self.model_input(x))
        if self.training:
            eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
        else:  # a fixed stream: the same bound each evaluation, nothing drawn from the training RNG
            g = torch.Generator(device=mu.device).manual_seed(0)
            eps = torch.randn((k, *mu.shape), generator=g, device=mu.device, dtype=mu.dtype)
        log_w = self.log_weights(x, eps, posterior=(mu, logvar))
        bound = torch.logsumexp(log_w, 0) - math.log(k)  # L_k per image
        loss = -bound.mean()
        elbo_loss = -log_w.mean()
        logits = self.decode_logits(mu)
        recon = torch.sigmoid(logits)
        return {"loss": loss, "recon": recon, "z": mu, "mu": mu, "logvar": logvar,
                "recon_loss": recon_per_image(logits, x, self.cfg.recon_type).mean().detach(),
                "kl": kl_per_dim(mu, logvar).sum().detach(), "elbo_loss": elbo_loss.detach(),
                "bound_gap": (elbo_loss - loss).detach(), "mse": F.mse_loss(recon.detach(), x)}


class IWAE(ImportanceWeighted, ConvVAE):
    pass


class MLPIWAE(ImportanceWeighted, MLPVAE):
    pass


@register_model(config=IWAEConfig)
def iwae(cfg):
    """IWAE (Burda et al. 2016): the conv VAE trained on the k-sample importance-weighted bound."""
    return IWAE(cfg)


@register_model(config=MLPIWAEConfig)
def mlp_iwae(cfg):
    """MLP IWAE (Burda et al. 2016): 784-200-200-50 tanh, Bernoulli decoder, trained on the k-sample bound."""
    return MLPIWAE(cfg)
