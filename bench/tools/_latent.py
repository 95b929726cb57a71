"""What the evaluation tools (`bench.tools`) share: latent codes of a split, test images,
the decoder check, and the scatter-plot helpers of the embedding figures.

A tool works on any registered autoencoder through `encode` (and, for VAEs, `posterior`
-> mu, logvar); it never asks which family a model is.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.core.tensors import to_float
from bench.data import batches


@torch.no_grad()
def latents(model, split, device, limit=None, sigma=0.0, seed=0, batch_size=500):
    """(z as float32 numpy (N, D), labels numpy or None) of up to `limit` images of a split."""
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    n = len(split) if limit is None else min(limit, len(split))
    sub = split.take(torch.arange(n, device=split.x.device))
    zs = []
    for x, _ in batches(sub, batch_size):
        x = x.to(device)
        if sigma > 0:
            x = model.corrupt(x, g, sigma=sigma)  # the model's own noise type
        zs.append(model.encode(x).flatten(1).float().cpu())
    y = None if sub.y is None or sub.y.dim() != 1 else sub.y.cpu().numpy()
    return torch.cat(zs).numpy(), y


@torch.no_grad()
def codes(model, split, device, limit=20000) -> np.ndarray:
    """Codes of up to `limit` images as float64 (N, D): the posterior mean for a VAE, z otherwise."""
    model.eval()
    out = []
    for x, _ in batches(split.take(torch.arange(min(len(split), limit))), 500):
        x = x.to(device)
        z = model.posterior(x)[0] if model.is_variational else model.encode(x)
        out.append(z.flatten(1).double().cpu())
    return torch.cat(out).numpy()


def images(split, idx, device):
    """Images `idx` of a split as floats in [0, 1] on `device`."""
    return to_float(split.x[idx].to(device))


def labels_required(data, tool):
    if data.kind != "labels":
        raise UsageError(f"eval {tool}: needs a labelled dataset; {data.name} has {data.kind}")


def decoder(model, tool):
    if not model.can_decode:
        raise UsageError(f"eval {tool}: {type(model).__name__} has no decode(z) (max-unpool decoders need "
                         f"the encoder's indices); valid: models with a latent decoder such as ae, vae, mlp_vae")
    return model.decode


def scatter(ax, xy, y, title, s=6):
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=s, alpha=0.8, vmin=0, vmax=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return sc


def legend(fig, y, classes):
    """One legend entry per class present, named, in the scatter's colours (tab10 by label), right
    of the axes and off the points however long the class names are."""
    from matplotlib.lines import Line2D

    from bench.measure.figures import plt
    cmap = plt.get_cmap("tab10")
    names = [str(c) for c in classes]
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(c % 10),
                      label=names[c] if c < len(names) else str(c)) for c in sorted({int(v) for v in y})]
    box = fig.legend(handles=handles, loc="center right", fontsize=7, title="class", title_fontsize=7)
    fig.canvas.draw()  # the legend's own width (class names differ in length), so the axes end left of it
    width = box.get_window_extent(fig.canvas.get_renderer()).width / fig.bbox.width
    fig.subplots_adjust(right=max(0.5, 0.98 - width))
