"""Segmentation autoencoder of the CNN and autoencoder assignment (brain-tumour MRI): 1x240x240 in, mask logits out.

Symmetric conv / ConvTranspose stacks whose output paddings are derived from the
encoder's sizes, so any square input comes back at its own size. The Dice loss is the
assignment's formula verbatim: 1 - (2 sum(p t) + eps) / (sum(p^2) + sum(t^2) + eps), eps 1e-6.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.config.keys import BATCHNORM, CHANNELS, ImageInput, key
from bench.measure.metrics import dice_iou  # noqa: F401  (the loss and the metric agree)
from bench.models.base import BenchModel, conv_decoder, conv_encoder, down_sizes
from registry import register_model

EPS = 1e-6


def dice_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    inter = (probs * target).sum()
    return 1 - (2 * inter + eps) / (probs.pow(2).sum() + target.pow(2).sum() + eps)


@dataclass
class SegAEConfig(ImageInput):
    """segmentation encoder-decoder (seg_ae)"""
    image_size: int = 240
    channels: list[int] = key((16, 32, 64, 64), **CHANNELS)
    seg_loss: str = key("dice", "segmentation loss: dice, bce, or their sum", choices=["dice", "bce", "dice_bce"])
    batchnorm: bool = key(True, **BATCHNORM)


class SegAE(BenchModel):
    task = "segment"
    best_metric = ("val/dice", "max")
    reconstructs = False

    def __init__(self, cfg: SegAEConfig):
        super().__init__()
        self.cfg = cfg
        channels = list(cfg.channels)
        self.sizes = down_sizes(cfg.image_size, len(channels), "seg_ae")
        self.encoder = conv_encoder(cfg.in_channels, channels, cfg.batchnorm)
        self.decoder = conv_decoder(channels, 1, self.sizes, cfg.batchnorm)

    def encode(self, x):
        return self.encoder(x).flatten(1)

    def forward(self, x, y=None):
        logits = self.decoder(self.encoder(x))
        out = {"logits": logits, "recon": torch.sigmoid(logits), "z": None}
        if y is None:
            return out
        target = y.float()
        dice_l = dice_loss(torch.sigmoid(logits), target)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        loss = {"dice": dice_l, "bce": bce, "dice_bce": dice_l + bce}[self.cfg.seg_loss]
        dice, iou = dice_iou(logits.detach(), target)
        out.update(loss=loss, dice_loss=dice_l.detach(), bce=bce.detach(),
                   dice=dice.mean(), iou=iou.mean())
        return out


@register_model(config=SegAEConfig, input=(1, 240, 240), task="segment")
def seg_ae(cfg):
    """Symmetric encoder-decoder, 240x240 image -> mask logits, Dice/BCE loss."""
    return SegAE(cfg)
