"""Variational autoencoders (Kingma & Welling, arXiv 1312.6114).

- `vae`: conv encoder with linear mu / logvar heads, reparameterisation, recon + beta*KL
  with optional linear KL warm-up (seeds 000, 001, 003; 64x64 / latent 128 for CelebA).
- `beta_vae`: the same with beta = 4 by default (Higgins et al., "beta-VAE: Learning Basic
  Visual Concepts with a Constrained Variational Framework", ICLR 2017).
- `mlp_vae`: the classic PyTorch-example MLP VAE with a list of hidden widths
  (the Fashion-MNIST VAE assignment: 784-400-20 and 784-400-100-20), BCE summed over pixels + KL.
- `mlp_ae`: its deterministic twin (one z layer, no KL), the assignment's "AE conversion".

Every VAE also scores its own importance weights, log p(x|z) + log p(z) - log q(z|x) for
given draws (`log_weights`): the IWAE bound trains on them and the likelihood tool
(`--eval nll`) estimates -log p(x) from them.

Losses are per image (summed over pixels / latent dims, averaged over the batch), so
recon and KL are on the scale of the ELBO. In eval mode z = mu.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from bench.config.keys import (BATCHNORM, BETA, BOTTLENECK, CHANNELS, HIDDEN_DIMS, KL_WARMUP, LATENT_DIM, RECON_TYPE,
                                Corruption, ImageInput, key)
from bench.core.errors import UsageError
from bench.models.base import BenchModel, conv_decoder, conv_encoder, down_sizes
from registry import register_model


def kl_per_dim(mu, logvar):
    """KL(q(z|x) || N(0, I)) per latent dim, averaged over the batch: shape (latent_dim,)
    (a convolutional z of shape (C, s, s) counts C*s*s dims)."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).mean(0)


LOG_2PI = math.log(2 * math.pi)
ACTIVATION = dict(help="MLP hidden units: relu, tanh (the IWAE paper's), or gated (h * sigmoid(g), the VampPrior "
                       "paper's gated dense layers)", choices=["relu", "tanh", "gated"])


def recon_per_image(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The reconstruction term, one value per image: -log p(x|z) for bce (Bernoulli), the summed
    squared error for mse (a Gaussian's up to its scale and constant: not a likelihood)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


def recon_term(logits, x, kind):
    """Per-image reconstruction loss from decoder logits (BCE on logits is stable, and a
    diverged decoder shows up as a non-finite loss rather than a range error)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / x.shape[0]


class VAEMixin(BenchModel):
    can_decode = True
    is_variational = True
    beta: float = 1.0
    warmup: int = 0
    _kl_scale: float = 1.0

    def forward(self, x, y=None):
        """Encode the (corrupted) input, sample z, decode; the ELBO terms against the clean image."""
        mu, logvar = self.posterior(self.model_input(x))
        z = self.reparameterise(mu, logvar)
        logits = self.decode_logits(z)
        recon = torch.sigmoid(logits)
        out = self.elbo_terms(x, logits, recon, mu, logvar, self.cfg.recon_type)
        out.update(recon=recon, z=z, mu=mu, logvar=logvar)
        return out

    def set_epoch(self, epoch, epochs):
        self._kl_scale = min(1.0, (epoch + 1) / self.warmup) if self.warmup > 0 else 1.0

    def reparameterise(self, mu, logvar):
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def encode(self, x):
        return self.posterior(x)[0]

    def likelihood_gap(self) -> str | None:
        """Why -log p(x) is not defined for this model, or None: it needs a stochastic encoder and
        a normalised decoder likelihood (Bernoulli, --recon-type bce)."""
        if not self.is_variational:
            return "its encoder is deterministic (no posterior to sample)"
        if self.cfg.recon_type != "bce":
            return (f"its decoder has no normalised likelihood (--recon-type {self.cfg.recon_type}: a squared error); "
                    f"train it with --recon-type bce")
        return None

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per code under N(0, I)."""
        return -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)

    def log_weights(self, x: torch.Tensor, eps: torch.Tensor, posterior=None) -> torch.Tensor:
        """log w = log p(x|z) + log p(z) - log q(z|x) of the draws z = mu + eps * sigma, shape (k, B),
        for standard normal `eps` of shape (k, B, *z). `posterior`: (mu, logvar) when already computed
        (of a corrupted x, for a model trained on corrupted inputs)."""
        mu, logvar = self.posterior(x) if posterior is None else posterior
        k, b = eps.shape[:2]
        z = mu + eps * torch.exp(0.5 * logvar)
        flat = z.flatten(0, 1)
        logits, target = self.decode_logits(flat).view(k, b, -1), x.flatten(1)
        if self.cfg.recon_type == "bce":  # sum x*l - softplus(l): x is never copied k times (the tool's k = 5,000)
            log_px = torch.einsum("kbd,bd->kb", logits, target) - F.softplus(logits).sum(-1)
        else:
            log_px = -(torch.sigmoid(logits) - target).pow(2).sum(-1)
        log_q = -0.5 * (eps.pow(2) + LOG_2PI + logvar).flatten(2).sum(2)
        return log_px + self.log_prior(flat).view(k, b) - log_q

    def elbo_terms(self, x, logits, recon, mu, logvar, recon_kind):
        rec = recon_term(logits, x, recon_kind)
        kl_dims = kl_per_dim(mu, logvar)
        kl = kl_dims.sum()
        weight = self.beta * self._kl_scale
        loss = rec + weight * kl if weight > 0 else rec
        return {"loss": loss, "recon_loss": rec.detach(), "kl": kl.detach(),
                "beta_now": torch.tensor(weight), "mse": F.mse_loss(recon.detach(), x)}


@dataclass
class ConvVAEConfig(ImageInput, Corruption):  # a VAE may be trained on corrupted inputs too
    """conv VAE (vae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(32, **LATENT_DIM)
    beta: float = key(1.0, **BETA)
    recon_type: str = key("mse", **RECON_TYPE)
    kl_warmup_epochs: int = key(0, **KL_WARMUP)
    batchnorm: bool = key(False, **BATCHNORM)
    bottleneck: str = key("linear", **BOTTLENECK)  # "conv": mu/logvar are 1x1 convs on the last feature map


class ConvVAE(VAEMixin):
    def __init__(self, cfg: ConvVAEConfig):
        super().__init__()
        self.cfg, self.beta, self.warmup = cfg, cfg.beta, cfg.kl_warmup_epochs
        self.set_noise(cfg.noise_level, cfg.noise_type)
        channels = list(cfg.channels)
        self.sizes = down_sizes(cfg.image_size, len(channels), "vae")
        self.encoder = conv_encoder(cfg.in_channels, channels, cfg.batchnorm)
        self.decoder = conv_decoder(channels, cfg.in_channels, self.sizes, cfg.batchnorm)
        s = self.sizes[-1]
        self.feat_shape = (channels[-1], s, s)
        flat = channels[-1] * s * s
        if cfg.bottleneck == "conv":  # z keeps the feature map's shape: (C, s, s)
            self.mu = nn.Conv2d(channels[-1], channels[-1], 1)
            self.logvar = nn.Conv2d(channels[-1], channels[-1], 1)
            self.from_z = nn.Identity()
        else:
            self.mu = nn.Linear(flat, cfg.latent_dim)
            self.logvar = nn.Linear(flat, cfg.latent_dim)
            self.from_z = nn.Sequential(nn.Linear(cfg.latent_dim, flat), nn.ReLU(inplace=True))

    def posterior(self, x):
        h = self.encoder(x)
        if self.cfg.bottleneck != "conv":
            h = h.flatten(1)
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z):
        return self.decoder(self.from_z(z).view(-1, *self.feat_shape))

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))



@dataclass
class MLPVAEConfig(ImageInput, Corruption):
    """MLP VAE and its deterministic twin (mlp_vae, mlp_ae)"""
    hidden_dims: list[int] = key((400,), **HIDDEN_DIMS)
    latent_dim: int = key(20, **LATENT_DIM)
    mlp_dims: Optional[list[int]] = key(None, "hidden widths then latent size in one list, e.g. 400,50 (sets "
                                        "hidden_dims and latent_dim; a sweep grid over pairs)", lo=1, hi=65536,
                                        shorthand=True)
    beta: float = key(1.0, **BETA)
    kl_warmup_epochs: int = key(0, **KL_WARMUP)
    recon_type: str = key("bce", **RECON_TYPE)
    activation: str = key("relu", **ACTIVATION)

    def derive(self) -> None:
        if self.mlp_dims is None:
            return
        if len(self.mlp_dims) < 2 or min(self.mlp_dims) < 1:
            raise UsageError(f"--mlp-dims: give hidden widths then the latent size, e.g. 400,50; "
                             f"got {','.join(map(str, self.mlp_dims))}")
        self.hidden_dims, self.latent_dim = tuple(self.mlp_dims[:-1]), self.mlp_dims[-1]


class GatedLinear(nn.Module):
    """A gated dense layer, h(x) * sigmoid(g(x)) (Dauphin et al. 2017; the VampPrior paper's MLPs)."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.h, self.g = nn.Linear(a, b), nn.Linear(a, b)

    def forward(self, x):
        return self.h(x) * torch.sigmoid(self.g(x))


def mlp(dims, activation: str = "relu"):
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        if activation == "gated":
            layers += [GatedLinear(a, b)]
        else:
            layers += [nn.Linear(a, b), nn.Tanh() if activation == "tanh" else nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class MLPVAE(VAEMixin):
    def __init__(self, cfg: MLPVAEConfig, variational: bool = True):
        super().__init__()
        self.cfg, self.variational = cfg, variational
        self.is_variational = variational
        self.beta, self.warmup = cfg.beta, cfg.kl_warmup_epochs
        self.set_noise(cfg.noise_level, cfg.noise_type)
        if not cfg.hidden_dims:
            raise UsageError("hidden_dims: give at least one hidden width, e.g. 400 or 400,100")
        self.shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        d = cfg.in_channels * cfg.image_size ** 2
        hidden = list(cfg.hidden_dims)
        act = cfg.activation
        self.body = mlp([d] + hidden, act)
        self.mu = nn.Linear(hidden[-1], cfg.latent_dim)
        self.logvar = nn.Linear(hidden[-1], cfg.latent_dim) if variational else None
        self.dec = nn.Sequential(mlp([cfg.latent_dim] + hidden[::-1], act), nn.Linear(hidden[0], d))

    def posterior(self, x):
        h = self.body(x.flatten(1))
        return self.mu(h), (self.logvar(h) if self.variational else None)

    def decode_logits(self, z):
        return self.dec(z).view(-1, *self.shape)

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x, y=None):
        if self.variational:
            return super().forward(x, y)
        mu, _ = self.posterior(self.model_input(x))  # the deterministic twin: z is the mean
        logits = self.decode_logits(mu)
        recon = torch.sigmoid(logits)
        rec = recon_term(logits, x, self.cfg.recon_type)
        return {"loss": rec, "recon": recon, "z": mu, "recon_loss": rec.detach(),
                "mse": F.mse_loss(recon.detach(), x)}


@register_model(config=ConvVAEConfig)
def vae(cfg):
    """Conv VAE: mu/logvar heads, reparameterisation, recon + beta*KL, KL warm-up."""
    return ConvVAE(cfg)


@register_model(config=ConvVAEConfig, defaults={"beta": 4.0})
def beta_vae(cfg):
    """beta-VAE (Higgins et al., ICLR 2017): the conv VAE with beta = 4 (--beta sets it), for disentangling."""
    return ConvVAE(cfg)


@register_model(config=MLPVAEConfig)
def mlp_vae(cfg):
    """MLP VAE 784-400-20 (hidden_dims list, e.g. 400,100), BCE-sum + KL."""
    return MLPVAE(cfg)


@register_model(config=MLPVAEConfig)
def mlp_ae(cfg):
    """Deterministic twin of mlp_vae: single z layer, BCE-sum, no KL (the VAE's AE conversion)."""
    return MLPVAE(cfg, variational=False)
