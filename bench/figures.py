"""PNG figures of a run: image grids and per-epoch curves (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Render `fig` to PNG and replace `path` atomically (a link planted at `path` is
    replaced, never written through); the figure is closed."""
    import io

    from bench.files import atomic_write_bytes

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def run_title(cfg) -> str:
    """A run named by what its sweep varies, so a figure says which setting it shows:
    `dae (batchnorm=True, noise_level=0.3) seed 0 on colored_mnist`."""
    import json
    import os

    try:
        swept = json.loads(os.environ.get("AEBENCH_SWEEP_PARAMS") or "{}")
    except ValueError:
        swept = {}
    varied = set(filter(None, os.environ.get("AEBENCH_SWEEP_VARIED", "").split(",")))
    shown = {k: v for k, v in swept.items() if k in varied and k not in ("model", "dataset", "seed")} \
        if isinstance(swept, dict) else {}
    settings = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(shown.items()))
    return f"{cfg.model}" + (f" ({settings})" if settings else "") + f" seed {cfg.seed} on {cfg.dataset}"


def to_hwc(img: torch.Tensor) -> np.ndarray:
    a = img.detach().float().clamp(0, 1).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, title: str = "",
               col_titles: list[str] | None = None) -> Path:
    """A grid with one labelled row per (name, (N,C,H,W) tensor). Each row is tiled into one
    image (`image_grid`) and drawn with one imshow: a figure of 9 rows of 8 images costs a
    tenth of what 72 separate axes cost."""
    from bench.tensors import image_grid

    n = max(r[1].shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.3 * n + 1, 1.4 * len(rows) + 0.4), squeeze=False)
    for i, (name, imgs) in enumerate(rows):
        ax = axes[i][0]
        imgs = imgs.detach().float().clamp(0, 1).cpu()
        h, w = imgs.shape[-2:]
        pad = max(1, w // 14)
        if imgs.shape[0] < n:  # a short row keeps the columns of the others
            imgs = torch.cat([imgs, torch.ones(n - imgs.shape[0], *imgs.shape[1:])])
        im = to_hwc(image_grid(imgs, nrow=n, padding=pad, pad_value=1.0))
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        ax.set_ylabel(name, fontsize=9)
        if i == 0 and col_titles:
            ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(min(n, len(col_titles)))])
            ax.set_xticklabels(col_titles[:n], fontsize=8)
            ax.xaxis.tick_top()
            ax.tick_params(length=0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def image_grids(panels: list[tuple[str, torch.Tensor]], path: Path, title: str = "", cols: int = 4) -> Path:
    """Side-by-side square grids, one titled panel per (name, (N,C,H,W) tensor): how samples
    are usually shown (4x4), rather than one long row."""
    from bench.tensors import image_grid

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 0.4, 2.9), squeeze=False)
    for ax, (name, imgs) in zip(axes[0], panels):
        im = to_hwc(image_grid(imgs.detach().float().clamp(0, 1).cpu(), nrow=cols, padding=1, pad_value=1.0))
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def curves(history: list[dict], path: Path, title: str = "") -> Path:
    """train/ and val/ curves vs epoch (and test/, for models tested every epoch: the
    classifiers), one panel per term (loss, recon_loss, kl, l1, acc...)."""
    skip = ("beta_now", "mask_frac")
    terms = []
    for row in history:
        for k in row:
            if k.startswith(("train/", "val/")):
                t = k.split("/", 1)[1]
                if t not in terms and t not in skip:
                    terms.append(t)
    terms = terms or ["loss"]
    cols = min(3, len(terms))
    rows = (len(terms) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    from matplotlib.ticker import MaxNLocator
    epochs = [r["epoch"] for r in history]
    for ax, t in zip(axes.flat, terms):
        for split, style in (("train", "-o"), ("val", "--s"), ("test", ":^")):  # test: where recorded per epoch
            ys = [r.get(f"{split}/{t}") for r in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], style, ms=3, label=split)
        ax.set_title(t)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
