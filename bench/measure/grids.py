"""Labelled rows of images as PNG, drawn with Pillow: every run's reconstruction figure.

Every run draws one (`reconstructions.png`), so it is drawn without matplotlib: importing
matplotlib and laying out a figure cost a tiny run about 0.5 CPU-s, a third of what the run
spends beyond its work. Pixels are upscaled by whole factors (nearest), so a 28x28 digit
stays sharp; the row labels sit in a left margin, the title above.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from bench.core.tensors import image_grid

CELL = 84          # pixels per image side, at least: small images are upscaled by a whole factor
FONT_SIZE = 13


def run_title(spec) -> str:
    """A run named by what its sweep varies, so a figure says which setting it shows:
    `dae (batchnorm=True, noise_level=0.3) seed 0 on colored_mnist`."""
    handoff = getattr(spec, "handoff", None)  # what the sweep runner handed the run (bench.config.handoff)
    shown = handoff.shown_settings() if handoff is not None else {}
    settings = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(shown.items()))
    return f"{spec.model}" + (f" ({settings})" if settings else "") + f" seed {spec.seed} on {spec.dataset}"


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # a Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _row_image(imgs: torch.Tensor, n: int) -> np.ndarray:
    """One row of up to `n` images, tiled, upscaled, as uint8 RGB (H, W, 3)."""
    imgs = imgs.detach().float().clamp(0, 1).cpu()
    h, w = imgs.shape[-2:]
    if imgs.shape[0] < n:  # a short row keeps the columns of the others
        imgs = torch.cat([imgs, torch.ones(n - imgs.shape[0], *imgs.shape[1:])])
    scale = max(1, CELL // max(h, w))
    if scale > 1:
        imgs = imgs.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    grid = image_grid(imgs, nrow=n, padding=max(2, w * scale // 14), pad_value=1.0)
    grid = grid.expand(3, -1, -1) if grid.shape[0] == 1 else grid[:3]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _wrapped(draw, text: str, font, width: int) -> list[str]:
    """`text` broken into lines no wider than `width` pixels, at spaces."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, title: str = "",
               col_titles: list[str] | None = None) -> Path:
    """A PNG with one labelled row per (name, (N, C, H, W) tensor); `col_titles` label the
    columns of the first row. Replaces `path` atomically (a link planted there is replaced,
    never written through)."""
    from PIL import Image, ImageDraw

    from bench.core.files import atomic_write_bytes

    n = max(r[1].shape[0] for r in rows)
    strips = [_row_image(imgs, n) for _, imgs in rows]
    font, small = _font(), _font(FONT_SIZE - 2)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = min(220, 12 + max(int(probe.textlength(name, font=small)) for name, _ in rows))
    grid_w = max(s.shape[1] for s in strips)
    width = label_w + grid_w + 8
    title_lines = _wrapped(probe, title, font, width - 16) if title else []
    line_h = FONT_SIZE + 5
    top = 6 + line_h * len(title_lines) + (line_h if col_titles else 0)
    height = top + sum(s.shape[0] + 4 for s in strips) + 4
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(title_lines):
        draw.text(((width - draw.textlength(line, font=font)) / 2, 4 + i * line_h), line, fill="black", font=font)
    if col_titles:
        cell = strips[0].shape[1] / n
        for j, name in enumerate(col_titles[:n]):
            draw.text((label_w + (j + 0.5) * cell - draw.textlength(name, font=small) / 2, top - line_h + 2),
                      name, fill="black", font=small)
    y = top
    for (name, _), strip in zip(rows, strips):
        lines = _wrapped(draw, name, small, label_w - 10)
        y0 = y + strip.shape[0] / 2 - len(lines) * (FONT_SIZE + 1) / 2
        for k, line in enumerate(lines):
            draw.text((label_w - 6 - draw.textlength(line, font=small), y0 + k * (FONT_SIZE + 1)), line,
                      fill="black", font=small)
        canvas.paste(Image.fromarray(strip), (label_w, y))
        y += strip.shape[0] + 4
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
