"""What every model shares: the output contract, input corruption, conv stacks.

`forward(x, y=None)` returns a dict with `loss` (scalar to minimise), `recon` (or
`logits`), `z`, and named 0-dim terms (`recon_loss`, `kl`, `l1`, ...). The trainer
logs every 0-dim entry and never asks which model it trains.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from bench.core.errors import UsageError
from bench.core.tensors import corrupt


class BenchModel(nn.Module):
    task = "reconstruct"  # set from the family config when the registry builds the model
    best_metric = ("val/loss", "min")  # how the best checkpoint is chosen
    reconstructs = True  # outputs `recon` of its input (epoch snapshots, reconstruction figures)
    epoch_splits = ("val",)  # splits evaluated after every epoch (a classifier adds "test")

    def quiet_terms(self) -> set[str]:
        """Scalar terms left off the per-epoch console line (they are still recorded): those
        this configuration does not use, or that repeat the loss."""
        return set()
    noise_level = 0.0
    noise_type = "gaussian"
    is_variational = False  # a VAE: posterior(x) -> (mu, logvar), a prior N(0, I), KL terms
    can_decode = False  # decode(z) maps any latent code to an image (interpolation, sampling, arithmetic)
    mask_ratio = 0.0  # fraction of feature-map patches hidden while training (masked AE)
    _eval_noise: torch.Generator | None = None

    def set_noise(self, noise_level: float, noise_type: str) -> None:
        """Input corruption of a denoising model: it sees corrupted inputs, its loss is vs the
        clean image (its task, `denoise`, is what its family config implies)."""
        self.noise_level, self.noise_type = noise_level, noise_type

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees: corrupted while training, and while `corrupted_eval` is
        active (validation and best-checkpoint choice of a denoiser use the corruption it
        is trained to remove); the clean image otherwise."""
        if self.noise_level <= 0:
            return x
        if self.training:
            return self.corrupt(x)
        return x if self._eval_noise is None else self.corrupt(x, self._eval_noise)

    @contextlib.contextmanager
    def corrupted_eval(self, generator: torch.Generator):
        self._eval_noise = generator
        try:
            yield self
        finally:
            self._eval_noise = None

    def validation(self, seed: int, device) -> contextlib.AbstractContextManager:
        """How validation (and so the best checkpoint) sees the data: a denoiser is
        validated on inputs corrupted as in training, with the same noise every epoch."""
        if self.noise_level <= 0:
            return contextlib.nullcontext(self)
        return self.corrupted_eval(torch.Generator(device=device).manual_seed(seed))

    @contextlib.contextmanager
    def masked_eval(self, ratio: float):
        """Evaluate with a given share of feature-map patches masked (masked models only)."""
        raise UsageError(f"{type(self).__name__} does not mask its features")
        yield self  # pragma: no cover

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each training epoch (KL annealing and the like)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sigma: float | None = None) -> torch.Tensor:
        return corrupt(x, self.noise_level if sigma is None else sigma, self.noise_type, generator)


def down_sizes(size: int, n: int, name: str, kernel=3, stride=2, padding=1, min_size=2) -> list[int]:
    """Spatial sizes through n stride-2 convs; refuses stacks that shrink the image below min_size."""
    sizes = [size]
    for _ in range(n):
        nxt = (sizes[-1] + 2 * padding - kernel) // stride + 1
        if nxt < min_size:
            max_ok = len(sizes) - 1
            raise UsageError(f"{name}: {n} stride-2 conv layers shrink a {size}x{size} image below "
                             f"{min_size}x{min_size}; use at most {max_ok} channel stages for this image size")
        sizes.append(nxt)
    return sizes


def conv_block(cin, cout, batchnorm=False, dropout=0.0, transpose=False, output_padding=0,
               kernel=3, stride=2, padding=1):
    conv = (nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding=output_padding)
            if transpose else nn.Conv2d(cin, cout, kernel, stride, padding))
    layers = [conv]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


def conv_encoder(in_channels, channels, batchnorm=False, dropout=0.0) -> nn.Sequential:
    """One nn.Sequential per stride-2 stage, so models can act between stages."""
    stages, cin = [], in_channels
    for c in channels:
        stages.append(nn.Sequential(*conv_block(cin, c, batchnorm, dropout)))
        cin = c
    return nn.Sequential(*stages)


def conv_decoder(channels, out_channels, sizes, batchnorm=False, dropout=0.0) -> nn.Sequential:
    """Mirror of conv_encoder: ConvTranspose2d stages that land exactly on the encoder's sizes.

    `channels` are the encoder widths, `sizes` the encoder's spatial sizes (input first).
    The last stage maps to out_channels with no activation (the model adds sigmoid or not).
    """
    rev = list(reversed(channels))
    targets = list(reversed(sizes[:-1]))
    stages = []
    for i, cin in enumerate(rev):
        cout = rev[i + 1] if i + 1 < len(rev) else out_channels
        in_size = sizes[len(sizes) - 1 - i]
        op = targets[i] - (2 * in_size - 1)  # ConvT(k3,s2,p1): out = 2*in - 1 + output_padding
        last = i == len(rev) - 1
        if last:
            stages.append(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=op))
        else:
            stages.append(nn.Sequential(*conv_block(cin, cout, batchnorm, dropout, transpose=True,
                                                    output_padding=op)))
    return nn.Sequential(*stages)


def flat_mse(recon, x):
    return torch.mean((recon - x) ** 2)


class LinearCodeAE(BenchModel):
    """A deterministic conv autoencoder with a linear code of `cfg.latent_dim` values: conv
    encoder, a linear map to z and back, ConvTranspose decoder, sigmoid output. Families that
    differ only in their loss on z (`wae`, `rae`) build on it and write `forward`."""
    can_decode = True

    def __init__(self, cfg, name: str):
        super().__init__()
        self.cfg = cfg
        self.set_noise(cfg.noise_level, cfg.noise_type)
        channels = list(cfg.channels)
        self.sizes = down_sizes(cfg.image_size, len(channels), name)
        self.encoder = conv_encoder(cfg.in_channels, channels, cfg.batchnorm)
        self.decoder = conv_decoder(channels, cfg.in_channels, self.sizes, cfg.batchnorm)
        s = self.sizes[-1]
        self.feat_shape = (channels[-1], s, s)
        flat = channels[-1] * s * s
        self.to_z = nn.Linear(flat, cfg.latent_dim)
        self.from_z = nn.Sequential(nn.Linear(cfg.latent_dim, flat), nn.ReLU(inplace=True))

    def encode(self, x):
        return self.to_z(self.encoder(x).flatten(1))

    def decode(self, z):
        return torch.sigmoid(self.decoder(self.from_z(z).view(-1, *self.feat_shape)))
