"""VAE with a VampPrior, `vamp_vae` and `mlp_vamp_vae` (Tomczak and Welling, "VAE with a
VampPrior", AISTATS 2018, arXiv 1705.07120).

The conv VAE's (or the MLP VAE's) encoder and decoder, with the prior N(0, I) replaced by the "variational
mixture of posteriors": p(z) = 1/K sum_k q(z | u_k), the encoder's own posteriors at K learned
pseudo-inputs u_k (images, kept in [0, 1] by a hard tanh as in the paper's code, started at
random pixels). The KL term has no closed form under a mixture, so it is the single-sample
estimate log q(z|x) - log p(z) at the reparameterised z, as in the paper; evaluation draws z
from a fixed stream, so a validation loss is the same number each time.

Its diagnostics: `prior_logp`, the prior log-likelihood log p(z) of the posterior samples
(nats per image; it rises as the prior moves onto the codes), and `pseudo_shift`, how far the
pseudo-inputs moved from where they started (mean absolute pixel change): they are learned.
Prior samples pick a pseudo-input at random and draw z from its posterior (`prior_codes`,
which the sample tool's prior sampler uses).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.config.keys import HIDDEN_DIMS, KL_WARMUP, LATENT_DIM, key
from bench.models.vae import ACTIVATION, LOG_2PI, MLPVAE, ConvVAE, ConvVAEConfig, MLPVAEConfig, recon_term
from registry import register_model


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@dataclass
class VampConfig(ConvVAEConfig):
    """VAE with a VampPrior (vamp_vae)"""
    pseudo_inputs: int = key(50, "number K of learned pseudo-inputs in the VampPrior mixture", lo=1, hi=100000)
    bottleneck: str = key("linear", internal=True)  # the mixture is over flat codes


@dataclass
class MLPVampConfig(MLPVAEConfig):
    """MLP VAE with a VampPrior (mlp_vamp_vae); its defaults are the VampPrior paper's one-layer MNIST
    model (Tomczak and Welling 2018, section 4.1 and its code): two gated dense layers of 300 units in the
    encoder and the decoder, 40 latent units, K = 500 pseudo-inputs, a Bernoulli decoder, KL warm-up over
    100 epochs"""
    hidden_dims: list[int] = key((300, 300), **HIDDEN_DIMS)
    latent_dim: int = key(40, **LATENT_DIM)
    activation: str = key("gated", **ACTIVATION)
    kl_warmup_epochs: int = key(100, **KL_WARMUP)
    pseudo_inputs: int = key(500, "number K of learned pseudo-inputs in the VampPrior mixture", lo=1, hi=100000)


class VampPrior:
    """The VampPrior over any VAE's encoder: learned pseudo-inputs, their posteriors as the prior."""
    # Where the pseudo-inputs start: uniform pixels, or N(0.05, 0.01) as in the paper's code
    pseudo_start_mean: float | None = None

    def __init__(self, cfg):
        super().__init__(cfg)
        shape = (cfg.pseudo_inputs, cfg.in_channels, cfg.image_size, cfg.image_size)
        if self.pseudo_start_mean is None:
            start = torch.rand(shape)
        else:
            start = (self.pseudo_start_mean + 0.01 * torch.randn(shape)).clamp(0, 1)
        self.pseudo = nn.Parameter(start.clone())
        self.register_buffer("pseudo_start", start)

    def pseudo_images(self) -> torch.Tensor:
        return F.hardtanh(self.pseudo, 0.0, 1.0)

    @staticmethod
    def prior_logp(z: torch.Tensor, mu_k: torch.Tensor, logvar_k: torch.Tensor) -> torch.Tensor:
        """log p(z) under the mixture of the pseudo-inputs' posteriors (mu_k, logvar_k), one value per code.
        The squares are expanded into two matrix products, (B, D) x (D, K): the likelihood tool scores
        millions of codes against K = 500 components, which the broadcast (B, K, D) form makes slow."""
        prec = torch.exp(-logvar_k)  # (K, D)
        quad = z.pow(2) @ prec.T - 2 * z @ (mu_k * prec).T + (mu_k.pow(2) * prec).sum(1)
        per = -0.5 * (quad + (LOG_2PI + logvar_k).sum(1))  # (B, K)
        return torch.logsumexp(per, 1) - math.log(len(mu_k))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per code under the VampPrior (the pseudo-inputs' posteriors as this mode computes them)."""
        mu_k, logvar_k = self.posterior(self.pseudo_images())
        return self.prior_logp(z.flatten(1), mu_k, logvar_k)

    def forward(self, x, y=None):
        # The images and the pseudo-inputs in one pass: one set of batch statistics (BatchNorm)
        mu, logvar = self.posterior(torch.cat([self.model_input(x), self.pseudo_images()]))
        (mu, mu_k), (logvar, logvar_k) = mu.split([len(x), self.cfg.pseudo_inputs]), \
            logvar.split([len(x), self.cfg.pseudo_inputs])
        if self.training:
            eps = torch.randn_like(mu)
        else:  # a fixed stream: the same estimate each evaluation, nothing drawn from the training RNG
            eps = torch.randn(mu.shape, generator=torch.Generator(device=mu.device).manual_seed(0),
                              device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = self.decode_logits(z)
        rec = recon_term(logits, x, self.cfg.recon_type)
        logp = self.prior_logp(z, mu_k, logvar_k)
        kl = (log_normal(z, mu, logvar) - logp).mean()
        weight = self.beta * self._kl_scale
        loss = rec + weight * kl if weight > 0 else rec
        recon = torch.sigmoid(self.decode_logits(mu))
        return {"loss": loss, "recon": recon, "z": mu, "mu": mu, "logvar": logvar, "recon_loss": rec.detach(),
                "kl": kl.detach(), "beta_now": torch.tensor(weight), "prior_logp": logp.mean().detach(),
                "pseudo_shift": (self.pseudo_images() - self.pseudo_start.clamp(0, 1)).abs().mean().detach(),
                "mse": F.mse_loss(recon.detach(), x)}

    @torch.no_grad()
    def prior_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws from the VampPrior: a pseudo-input at random, then its posterior."""
        was = self.training
        self.eval()
        mu, logvar = self.posterior(self.pseudo_images())
        self.train(was)
        k = torch.from_numpy(rng.integers(0, len(mu), n)).to(mu.device)
        eps = torch.from_numpy(rng.standard_normal((n, mu.shape[1]))).to(mu)
        return (mu[k] + eps * torch.exp(0.5 * logvar[k])).double().cpu().numpy()


class VampVAE(VampPrior, ConvVAE):
    pass


class MLPVampVAE(VampPrior, MLPVAE):
    pseudo_start_mean = 0.05


@register_model(config=VampConfig)
def vamp_vae(cfg):
    """VampPrior VAE (Tomczak & Welling 2018): the conv VAE with a mixture-of-posteriors prior on learned pseudo-inputs."""
    return VampVAE(cfg)


@register_model(config=MLPVampConfig)
def mlp_vamp_vae(cfg):
    """VampPrior MLP VAE (Tomczak & Welling 2018): 784-300-300-40 gated, K = 500 pseudo-inputs, Bernoulli decoder."""
    return MLPVampVAE(cfg)
