"""Small tensor helpers shared by training, evaluation and the models: mixed precision,
memory format, input corruption. Plain torch; imports nothing else of the project but
its errors."""
from __future__ import annotations

import contextlib

import torch

from bench.core.errors import UsageError


def autocast(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def prepare(x, channels_last):
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Stored uint8 images as floats in [0, 1] (on the tensor's device)."""
    return x.float().div_(255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (any float dtype, any device) as uint8 on the CPU, rounded."""
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def image_grid(images: torch.Tensor, nrow: int, padding: int = 1, pad_value: float = 0) -> torch.Tensor:
    """(N, C, H, W) images tiled into one (C, H', W') image, `nrow` per row, as torchvision's
    `make_grid` lays them out (same padding rule; a single channel stays single: figures and
    W&B read grey images as they are). Written here because importing torchvision imports
    torch's compiler stack, a second of start-up for every run."""
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    rows = (n + ncol - 1) // ncol
    out = torch.full((c, rows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value,
                     dtype=images.dtype, device=images.device)
    for k in range(n):
        i, j = divmod(k, ncol)
        top, left = i * (h + padding) + padding, j * (w + padding) + padding
        out[:, top:top + h, left:left + w] = images[k]
    return out


def corrupt(x, sigma, noise_type="gaussian", generator=None):
    """Corrupt images in [0, 1]; the result is clamped to [0, 1]."""
    if sigma <= 0:
        return x
    if noise_type == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + sigma * noise).clamp_(0.0, 1.0)
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if noise_type == "dropout":
        return x * (u >= sigma)
    if noise_type == "salt_pepper":
        out = x.clone()
        out[u < sigma / 2] = 0.0
        out[(u >= sigma / 2) & (u < sigma)] = 1.0
        return out
    raise UsageError(f"unknown noise type {noise_type!r}; valid: gaussian, dropout, salt_pepper")
