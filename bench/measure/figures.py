"""PNG figures of a run drawn with matplotlib (Agg backend): per-epoch curves, sample grids,
and the plots of the evaluation tools. The labelled image rows every run draws are Pillow's
(bench.measure.grids, re-exported here), so a run that draws nothing else never imports matplotlib."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.measure.grids import image_rows, run_title  # noqa: E402  (the tools' one import of figures)

__all__ = ["plt", "save_figure", "to_hwc", "image_rows", "image_grids", "curves", "run_title"]


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Render `fig` to PNG and replace `path` atomically (a link planted at `path` is
    replaced, never written through); the figure is closed."""
    import io

    from bench.core.files import atomic_write_bytes

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def to_hwc(img: torch.Tensor) -> np.ndarray:
    a = img.detach().float().clamp(0, 1).cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def image_grids(panels: list[tuple[str, torch.Tensor]], path: Path, title: str = "", cols: int = 4) -> Path:
    """Side-by-side square grids, one titled panel per (name, (N,C,H,W) tensor): how samples
    are usually shown (4x4), rather than one long row."""
    from bench.core.tensors import image_grid

    import textwrap

    width = 2.6 * len(panels) + 0.4  # inches; a 9-point character is about 1/13 inch wide
    wrap = lambda text, inches: "\n".join(textwrap.fill(line, max(12, int(inches * 12))) or line  # noqa: E731
                                          for line in text.split("\n"))
    names = [wrap(name, 2.5) for name, _ in panels]  # each panel's title inside its own column
    title = wrap(title, width - 0.2) if title else ""
    lines = max(n.count("\n") for n in names) + 1 + (title.count("\n") + 1 if title else 0)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 2.5 + 0.17 * lines), squeeze=False,
                             layout="constrained")  # makes room for the suptitle above the panels' titles
    for ax, name, (_, imgs) in zip(axes[0], names, panels):
        im = to_hwc(image_grid(imgs.detach().float().clamp(0, 1).cpu(), nrow=cols, padding=1, pad_value=1.0))
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
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
