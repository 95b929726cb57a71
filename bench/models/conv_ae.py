"""Convolutional autoencoders: plain, denoising, sparse, dropout, masked, STL-10.

One class covers the family because the variants differ only in what happens to the
input (corruption), to the feature maps (masking) and to the loss (L1 on z):
- `ae`: conv encoder, ConvTranspose decoder, sigmoid output, MSE (seeds 000, 001, 003).
- `dae`: trained on corrupted inputs, loss against the clean image (Vincent et al. 2008).
- `sparse_ae`: MSE + lambda * sum_j |z_j| per image, averaged over the batch (the CelebA assignment).
- `dropout_ae`: dropout (and optional BatchNorm) after every conv/deconv layer (the coloured-MNIST assignment).
- `mcae`: random patches of the encoder's first feature maps are zeroed during training
  (masked convolutional AE, the CIFAR-10 assignment; cf. ConvMAE, arXiv 2205.03892).
- `stl_ae`: fully convolutional, BatchNorm + ReLU, ~200k parameters at 3x96x96 (the CNN and autoencoder assignment).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.config.keys import BATCHNORM, BOTTLENECK, CHANNELS, DROPOUT, LATENT_DIM, Corruption, ImageInput, key
from bench.core.errors import UsageError
from bench.models.base import BenchModel, conv_decoder, conv_encoder, down_sizes
from registry import register_model


@dataclass
class ConvAEConfig(ImageInput, Corruption):
    """conv autoencoders (ae, dae, sparse_ae, dropout_ae, mcae, stl_ae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(64, **LATENT_DIM)
    bottleneck: str = key("linear", **BOTTLENECK)
    batchnorm: bool = key(False, **BATCHNORM)
    dropout: float = key(0.0, **DROPOUT)
    l1_lambda: float = key(0.0, "lambda in loss = MSE + lambda * sum_j |z_j| per image (sparse AE)", lo=0.0, hi=10.0,
                           weighs="l1")
    mask_ratio: float = key(0.0, "fraction of feature-map patches masked (mcae)", lo=0.0, hi=1.0, hi_open=True)
    mask_patch: int = key(1, "mask patch size in feature cells (mcae)", lo=1, hi=64)
    masked_loss_weight: float = key(1.0, "loss weight of masked regions (mcae)", lo=0.0, hi=100.0,
                                     weighs="mask_frac")
    near_zero_below: float = key(1e-2, internal=True)  # |z| below this counts as an inactive unit (near_zero)


class ConvAE(BenchModel):
    def __init__(self, cfg: ConvAEConfig):
        super().__init__()
        self.cfg = cfg
        self.set_noise(cfg.noise_level, cfg.noise_type)
        channels = list(cfg.channels)
        if not channels:
            raise UsageError("channels: give at least one conv width, e.g. 32,64,128")
        self.sizes = down_sizes(cfg.image_size, len(channels), "conv autoencoder")
        self.encoder = conv_encoder(cfg.in_channels, channels, cfg.batchnorm, cfg.dropout)
        self.decoder = conv_decoder(channels, cfg.in_channels, self.sizes, cfg.batchnorm, cfg.dropout)
        s = self.sizes[-1]
        self.feat_shape = (channels[-1], s, s)
        flat = channels[-1] * s * s
        if cfg.bottleneck == "linear":
            self.to_z = nn.Linear(flat, cfg.latent_dim)
            self.from_z = nn.Sequential(nn.Linear(cfg.latent_dim, flat), nn.ReLU(inplace=True))
        else:
            self.to_z = self.from_z = nn.Identity()
        self.last_mask = None
        self._mask_at_eval = None  # a ratio while `masked_eval` is active

    can_decode = True

    @property
    def mask_ratio(self) -> float:
        return self.cfg.mask_ratio

    @contextlib.contextmanager
    def masked_eval(self, ratio: float):
        """Mask `ratio` of the feature-map patches at test time too (the occlusion tool traces
        reconstruction error against the ratio); the trained setting is untouched."""
        self._mask_at_eval = ratio
        try:
            yield self
        finally:
            self._mask_at_eval = None

    # -- masking of feature maps (mcae)
    def feature_mask(self, feat: torch.Tensor) -> torch.Tensor:
        """A (B, 1, h, w) 0/1 mask with round(ratio * patches) patches set, per sample."""
        b, _, h, w = feat.shape
        p = self.cfg.mask_patch
        gh, gw = math.ceil(h / p), math.ceil(w / p)
        n = gh * gw
        k = int(round(self._active_ratio() * n))
        ranks = torch.rand(b, n, device=feat.device).argsort(dim=1).argsort(dim=1)
        grid = (ranks < k).to(feat.dtype).view(b, 1, gh, gw)
        return grid.repeat_interleave(p, 2).repeat_interleave(p, 3)[:, :, :h, :w]

    def _active_ratio(self) -> float:
        if self._mask_at_eval is not None:
            return self._mask_at_eval
        return self.cfg.mask_ratio if self.training else 0.0

    def features(self, x):
        feat = x
        for i, stage in enumerate(self.encoder):
            feat = stage(feat)
            if i == 0 and self._active_ratio() > 0:
                self.last_mask = self.feature_mask(feat)
                feat = feat * (1 - self.last_mask)
        return feat

    def encode(self, x):
        return self.to_z(self.features(x).flatten(1)) if self.cfg.bottleneck == "linear" \
            else self.features(x)

    def quiet_terms(self) -> set[str]:
        """Without an L1 penalty the code's l1 and near_zero are recorded (the CelebA assignment
        compares them across families) but not printed, and the loss is the MSE itself."""
        if self.cfg.l1_lambda > 0:
            return set()
        weighted = self.cfg.mask_ratio > 0 and self.cfg.masked_loss_weight != 1.0
        return {"l1", "near_zero"} | (set() if weighted else {"mse"})

    def decode(self, z):
        if self.cfg.bottleneck == "linear":
            z = self.from_z(z)
        return torch.sigmoid(self.decoder(z.reshape(-1, *self.feat_shape)))

    def forward(self, x, y=None):
        inp = self.model_input(x)
        self.last_mask = None
        z = self.encode(inp)
        recon = self.decode(z)
        err = (recon - x) ** 2
        mse = err.mean()
        if self.last_mask is not None and self.cfg.masked_loss_weight != 1.0:
            m = F.interpolate(self.last_mask, size=x.shape[-2:], mode="nearest")
            w = 1 + (self.cfg.masked_loss_weight - 1) * m
            recon_loss = (w * err).mean() / w.mean()
        else:
            recon_loss = mse
        l1 = z.flatten(1).abs().sum(1).mean()  # the CelebA assignment: lambda * sum_j |z_j| per image
        loss = recon_loss + self.cfg.l1_lambda * l1 if self.cfg.l1_lambda > 0 else recon_loss
        out = {"loss": loss, "recon": recon, "z": z, "mse": mse.detach(), "l1": l1.detach(),
               "near_zero": (z.abs() < self.cfg.near_zero_below).float().mean().detach()}
        if self.last_mask is not None:
            out["mask_frac"] = self.last_mask.mean().detach()
        return out


@register_model(config=ConvAEConfig)
def ae(cfg):
    """Conv encoder / ConvTranspose decoder, sigmoid output, MSE (undercomplete AE)."""
    return ConvAE(cfg)


@register_model(config=ConvAEConfig, task="denoise", defaults={"noise_level": 0.3})
def dae(cfg):
    """Denoising AE: ae trained on noisy inputs (noise level 0.3 default), loss vs the clean image."""
    return ConvAE(cfg)


@register_model(config=ConvAEConfig, defaults={"l1_lambda": 1e-3})
def sparse_ae(cfg):
    """Sparse AE: MSE + l1_lambda * sum|z| per image; L1 norm and near-zero fraction logged."""
    return ConvAE(cfg)


@register_model(config=ConvAEConfig, defaults={"dropout": 0.2})
def dropout_ae(cfg):
    """ae with dropout (p=0.2) after every conv/deconv layer; --batchnorm adds BN."""
    return ConvAE(cfg)


@register_model(config=ConvAEConfig, defaults={"mask_ratio": 0.5, "mask_patch": 2})
def mcae(cfg):
    """Masked conv AE: random patches of the first feature maps masked while training."""
    return ConvAE(cfg)


@register_model(config=ConvAEConfig, input=(3, 96, 96),
                defaults={"channels": (32, 48, 64, 96), "bottleneck": "conv", "batchnorm": True})
def stl_ae(cfg):
    """Fully conv AE, 4 conv/deconv stages with BN + ReLU, ~200k params at 3x96x96."""
    return ConvAE(cfg)
