"""Compact autoencoders of the CNN and autoencoder assignment: the linear AE and the max-pool/unpool conv AE.

- `linear_ae`: flatten, 784-128-64-32-15 with ReLU, mirrored decoder, sigmoid, MSE.
- `pool_ae`: two 3x3 stride-2 convs, a 5x5 conv, MaxPool2d(return_indices=True);
  the decoder unpools with the saved indices, then a 5x5 and two 3x3 stride-2
  ConvTranspose2d layers. The assignment caps it at 35,000 parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.config.keys import CHANNELS, HIDDEN_DIMS, LATENT_DIM, Corruption, ImageInput, key
from bench.core.errors import UsageError
from bench.models.base import BenchModel, flat_mse
from bench.models.vae import mlp
from registry import register_model


@dataclass
class LinearAEConfig(ImageInput, Corruption):
    """MLP autoencoder of the CNN and autoencoder assignment (linear_ae)"""
    hidden_dims: list[int] = key((128, 64, 32), **HIDDEN_DIMS)
    latent_dim: int = key(15, **LATENT_DIM)


class LinearAE(BenchModel):
    can_decode = True
    def __init__(self, cfg: LinearAEConfig):
        super().__init__()
        self.cfg = cfg
        self.set_noise(cfg.noise_level, cfg.noise_type)
        self.shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        d = cfg.in_channels * cfg.image_size ** 2
        dims = [d] + list(cfg.hidden_dims)
        self.encoder = nn.Sequential(nn.Flatten(), mlp(dims), nn.Linear(dims[-1], cfg.latent_dim))
        self.decoder = nn.Sequential(mlp([cfg.latent_dim] + dims[::-1][:-1]), nn.Linear(dims[1], d))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return torch.sigmoid(self.decoder(z)).view(-1, *self.shape)

    def forward(self, x, y=None):
        inp = self.model_input(x)
        z = self.encode(inp)
        recon = self.decode(z)
        loss = flat_mse(recon, x)
        return {"loss": loss, "recon": recon, "z": z, "mse": loss.detach()}


@dataclass
class PoolAEConfig(ImageInput, Corruption):
    """MaxPool/MaxUnpool autoencoder (pool_ae)"""
    channels: list[int] = key((16, 24, 16), **CHANNELS)


class PoolAE(BenchModel):
    def __init__(self, cfg: PoolAEConfig):
        super().__init__()
        self.cfg = cfg
        self.set_noise(cfg.noise_level, cfg.noise_type)
        if len(cfg.channels) != 3:
            raise UsageError(f"pool_ae: channels takes exactly 3 widths, got {list(cfg.channels)}")
        c1, c2, c3 = cfg.channels
        s = cfg.image_size
        s1 = (s - 1) // 2 + 1
        s2 = (s1 - 1) // 2 + 1
        s3 = s2 - 4
        if s3 < 2:
            raise UsageError(f"pool_ae: a {s}x{s} image is too small (needs at least 20x20 for the 5x5 conv "
                             f"and 2x2 max-pool); valid: image_size >= 20")
        self.sizes = (s, s1, s2, s3)
        self.encoder = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c1, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 5), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 5), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=s1 - (2 * s2 - 1)), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c1, cfg.in_channels, 3, 2, 1, output_padding=s - (2 * s1 - 1)))

    def encode(self, x):
        return self.pool(self.encoder(x))[0].flatten(1)

    def forward(self, x, y=None):
        inp = self.model_input(x)
        feat = self.encoder(inp)
        pooled, idx = self.pool(feat)
        up = self.unpool(pooled, idx, output_size=feat.shape[-2:])
        recon = torch.sigmoid(self.decoder(up))
        loss = flat_mse(recon, x)
        return {"loss": loss, "recon": recon, "z": pooled.flatten(1), "mse": loss.detach()}


@register_model(config=LinearAEConfig)
def linear_ae(cfg):
    """MLP AE 784-128-64-32-15 (hidden_dims/latent_dim configurable), ReLU, sigmoid."""
    return LinearAE(cfg)


@register_model(config=PoolAEConfig)
def pool_ae(cfg):
    """Conv AE with MaxPool(return_indices) + MaxUnpool, <= 35,000 params."""
    return PoolAE(cfg)
