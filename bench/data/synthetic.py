"""Generated datasets for tests and smoke runs: shapes with class labels, blobs with masks.

Ten classes: five shapes (disk, square, ring, horizontal bar, vertical bar) at two
brightness levels, random position and size, on a random linear ramp. Fully
determined by the seed; a few thousand images build in well under a second.
"""
from __future__ import annotations

import torch

from bench.data import Source, Split
from registry import register_dataset

N_TRAIN, N_TEST = 2000, 500


def shapes(n: int, size: int, channels: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    cy, cx = (torch.rand(2, n, 1, 1, generator=g) * 0.5 + 0.25) * size
    r = (torch.rand(n, 1, 1, generator=g) * 0.15 + 0.15) * size
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    dy, dx = yy - cy, xx - cx
    dist = (dy ** 2 + dx ** 2).sqrt()
    kind = (labels % 5).view(n, 1, 1)
    masks = torch.stack([
        dist <= r,
        (dy.abs() <= r) & (dx.abs() <= r),
        (dist <= r) & (dist >= 0.55 * r),
        (dy.abs() <= 0.35 * r) & (dx.abs() <= 1.3 * r),
        (dx.abs() <= 0.35 * r) & (dy.abs() <= 1.3 * r),
    ])  # (5, n, size, size)
    mask = masks.gather(0, kind.unsqueeze(0).expand(1, n, size, size)).squeeze(0)
    level = torch.where(labels >= 5, 1.0, 0.6).view(n, 1, 1)
    tint = torch.rand(n, channels, 1, 1, generator=g) * 0.4 + 0.6 if channels > 1 else torch.ones(n, 1, 1, 1)
    # A smooth random ramp behind the shape: a constant image is never a good reconstruction.
    angle = torch.rand(n, 1, 1, generator=g) * 6.2832
    ramp = (torch.cos(angle) * yy + torch.sin(angle) * xx) / size
    background = (0.25 + 0.2 * ramp).unsqueeze(1)
    fg = mask.unsqueeze(1).float()
    img = background * (1 - fg) + fg * level.unsqueeze(1) * tint
    img = img + 0.03 * torch.rand(n, channels, size, size, generator=g)
    x = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return x, labels, mask.unsqueeze(1).to(torch.uint8)


def _source(spec, size, channels, masks=False):
    xs, ys, ms = shapes(N_TRAIN + N_TEST, size, channels, seed=1234)
    y = ms if masks else ys
    classes = [] if masks else [f"{s}-{b}" for b in ("dim", "bright")
                                for s in ("disk", "square", "ring", "hbar", "vbar")]
    return Source(Split(xs[:N_TRAIN], y[:N_TRAIN]), Split(xs[N_TRAIN:], y[N_TRAIN:]), classes)


@register_dataset(shape=(1, 28, 28))
def synthetic(spec, task):
    """Generated shapes, 10 classes, 1x28x28, 2000/500 images (tests, smoke runs)."""
    return _source(spec, 28, 1)


@register_dataset(shape=(3, 32, 32))
def synthetic_rgb(spec, task):
    """Generated tinted shapes, 10 classes, 3x32x32, 2000/500 images (tests, smoke runs)."""
    return _source(spec, 32, 3)


@register_dataset(shape=(1, 64, 64), kind="masks", num_classes=1)
def synthetic_seg(spec, task):
    """Generated blobs with binary masks, 1x64x64, 2000/500 images (segmentation tests)."""
    return _source(spec, 64, 1, masks=True)
