"""Vector-quantised VAE, `vqvae` (van den Oord, Vinyals and Kavukcuoglu, "Neural Discrete
Representation Learning", NeurIPS 2017, arXiv 1711.00937).

A conv encoder's last feature map is projected (1x1 conv) to `latent_dim` channels, and each
of its positions is replaced by the nearest of `codebook_size` learned vectors; the decoder
maps the quantised map back to an image. Gradients pass the quantisation straight through.
The loss is the paper's: reconstruction (mean squared error) + ||sg[z_e] - e||^2 (moves the
codebook, `vq_loss`) + `commitment` * ||z_e - sg[e]||^2 (keeps the encoder near its codes,
`commit`). The code is a grid of discrete indices (`latent_dim` x s x s values as vectors):
the benchmark's code columns say so and do not rank it against a flat code.

Its diagnostic is how much of the codebook is in use, per batch: `perplexity` (exp of the
entropy of the code frequencies: K when all K codes are used equally, 1 for one code) and
`codes_used` (the share of the codebook picked at least once). Codebook collapse, the known
failure where a few codes take every position, is `codebook_collapse`: 1 for a batch that
uses fewer than COLLAPSE_BELOW of the codebook (its test mean is the share of such batches).
Training starts the codebook on encoder outputs and restarts dead codes (`VQVAE.restart`),
the usual remedy for it.

Generation: the paper fits a PixelCNN prior over the index grid; here, as for every
deterministic family, the sample tool fits a density to the training codes ex post, and
`decode` snaps each drawn vector to its nearest code before decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.config.keys import BATCHNORM, CHANNELS, LATENT_DIM, Corruption, ImageInput, key
from bench.models.base import BenchModel, conv_decoder, conv_encoder, down_sizes
from registry import register_model

COLLAPSE_BELOW = 0.1  # a batch that picks fewer than this share of the codebook: collapsed


@dataclass
class VQVAEConfig(ImageInput, Corruption):
    """vector-quantised VAE (vqvae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(16, **LATENT_DIM)  # here: the size of each codebook vector, per grid position
    codebook_size: int = key(128, "number of codebook vectors K", lo=2, hi=65536)
    commitment: float = key(0.25, "weight of the commitment loss ||z_e - sg[e]||^2 (the paper's beta)", lo=0.0,
                            hi=1e4, weighs="commit")
    batchnorm: bool = key(True, **BATCHNORM)  # without it the conv stack's outputs died on MNIST (PSNR 9.6)


def code_counts(index: torch.Tensor, k: int) -> torch.Tensor:
    """How many positions picked each of the K codes (bincount's, as a sum that also runs on meta)."""
    flat = index.flatten()
    return torch.zeros(k, device=flat.device).index_add_(0, flat, torch.ones(flat.shape, device=flat.device))


def perplexity(index: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(exp of the entropy of the code frequencies, share of the K codes picked at least once)."""
    p = code_counts(index, k) / index.numel()
    return torch.exp(-(p * torch.log(p + 1e-10)).sum()), (p > 0).float().mean()


class VQVAE(BenchModel):
    can_decode = True

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.set_noise(cfg.noise_level, cfg.noise_type)
        channels = list(cfg.channels)
        self.sizes = down_sizes(cfg.image_size, len(channels), "vqvae")
        self.encoder = nn.Sequential(conv_encoder(cfg.in_channels, channels, cfg.batchnorm),
                                     nn.Conv2d(channels[-1], cfg.latent_dim, 1))
        self.decoder = nn.Sequential(nn.Conv2d(cfg.latent_dim, channels[-1], 1), nn.ReLU(inplace=True),
                                     conv_decoder(channels, cfg.in_channels, self.sizes, cfg.batchnorm))
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.latent_dim)
        self.codebook.weight.data.uniform_(-1.0 / cfg.codebook_size, 1.0 / cfg.codebook_size)  # as the paper's code
        self.register_buffer("usage", torch.zeros(cfg.codebook_size))  # running share of positions per code
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def restart(self, flat: torch.Tensor, index: torch.Tensor) -> None:
        """While training: the codebook starts on encoder outputs of the first batch, and a code
        no position has picked for a while (running usage under 1/(100 K)) moves onto a random
        encoder output of this batch (the restarts of Dhariwal et al. 2020, Jukebox). Without
        them one code took every position on MNIST within an epoch (codes used 2%)."""
        if flat.is_meta:  # a dry build (shapes and terms only): nothing to start or restart from
            return
        k = self.cfg.codebook_size
        pick = lambda n: flat[torch.randint(len(flat), (n,), device=flat.device)]  # noqa: E731
        if not self.started:
            self.codebook.weight.data.copy_(pick(k))
            self.usage.fill_(1.0 / k)
            self.started.fill_(True)
            return
        self.usage.mul_(0.99).add_(0.01 * code_counts(index, k) / len(index))
        dead = self.usage < 0.01 / k
        if dead.any():
            self.codebook.weight.data[dead] = pick(int(dead.sum()))
            self.usage[dead] = 1.0 / k

    def quantise(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the nearest codebook vector at each position, (B, D, s, s); its index, (B, s, s))."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        index = torch.cdist(flat, self.codebook.weight).argmin(1)
        if self.training:
            self.restart(flat.detach(), index)
            index = torch.cdist(flat, self.codebook.weight).argmin(1)
        return self.codebook(index).view(b, h, w, d).permute(0, 3, 1, 2), index.view(b, h, w)

    def encode(self, x):
        return self.quantise(self.encoder(x))[0]

    def decode(self, z):
        return torch.sigmoid(self.decoder(self.quantise(z.view(-1, *self.code_shape))[0]))

    @property
    def code_shape(self) -> tuple[int, int, int]:
        s = self.sizes[-1]
        return (self.cfg.latent_dim, s, s)

    def forward(self, x, y=None):
        z_e = self.encoder(self.model_input(x))
        z_q, index = self.quantise(z_e)
        vq = F.mse_loss(z_q, z_e.detach())
        commit = F.mse_loss(z_e, z_q.detach())
        z_st = z_e + (z_q - z_e).detach()  # straight-through: the decoder's gradient reaches the encoder
        recon = torch.sigmoid(self.decoder(z_st))
        rec = F.mse_loss(recon, x)
        used_perplexity, used = perplexity(index, self.cfg.codebook_size)
        loss = rec + vq + self.cfg.commitment * commit if self.cfg.commitment > 0 else rec + vq
        return {"loss": loss, "recon": recon, "z": z_q, "recon_loss": rec.detach(), "vq_loss": vq.detach(),
                "commit": commit.detach(), "perplexity": used_perplexity, "codes_used": used,
                "codebook_collapse": (used < COLLAPSE_BELOW).float(), "mse": rec.detach()}


@register_model(config=VQVAEConfig)
def vqvae(cfg):
    """VQ-VAE (van den Oord et al. 2017): a grid of discrete codes from a learned codebook; codebook usage logged."""
    return VQVAE(cfg)
