"""Image + mask folders: the brain-tumour segmentation set of the CNN and autoencoder assignment.

Expected layout under --data-root:

    brain_tumor/
      images/  NAME.png|jpg|tif ...      (MRI slices, any size, read as grayscale)
      masks/   NAME.png  or NAME_mask.png (binary masks, non-zero = tumour)

Images are resized to 240x240 (bilinear), masks with nearest neighbour; the last 20%
of names in sorted order form the test split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.data import Source, Split
from registry import register_dataset

EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
SIZE = 240


def _find_mask(masks: Path, stem: str):
    for cand in (stem, f"{stem}_mask", f"{stem}-mask"):
        for ext in EXTS:
            p = masks / f"{cand}{ext}"
            if p.exists():
                return p
    return None


def _read(path: Path, size: int, nearest: bool) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as im:
            im = im.convert("L").resize((size, size), Image.NEAREST if nearest else Image.BILINEAR)
            return np.asarray(im)
    except Exception as e:
        raise UsageError(f"brain_tumor: cannot read {path} ({type(e).__name__})") from None


def write_brain_tumor(root, n=10, size=100, seed=0):
    """images/caseNNN.png and masks/caseNNN_mask.png: a bright lesion on textured tissue."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Path(root) / "brain_tumor"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        top, left = 10 + (7 * i) % (size // 2), 15 + (11 * i) % (size // 2)
        mask[top:top + 20 + i % 10, left:left + 20] = 255
        # A bright lesion on textured tissue: the mask can be learned from the image.
        img = (rng.integers(40, 110, (size, size)) + (mask > 0) * 120).astype(np.uint8)
        Image.fromarray(img).save(base / "images" / f"case{i:03d}.png")
        Image.fromarray(mask).save(base / "masks" / f"case{i:03d}_mask.png")
    return base


def _files(root, patch):
    write_brain_tumor(root, n=10)


@register_dataset(shape=(1, SIZE, SIZE), kind="masks", num_classes=1, fixture=_files)
def brain_tumor(spec, task):
    """Brain MRI slices + binary tumour masks (brain_tumor/images, brain_tumor/masks), 240x240."""
    root = Path(spec.data_root) / "brain_tumor"
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise UsageError(f"brain_tumor: expected folders {images} and {masks} "
                         f"(same file names, masks non-zero on the tumour)")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in EXTS)
    pairs = [(p, _find_mask(masks, p.stem)) for p in files]
    missing = [p.name for p, m in pairs if m is None]
    if missing:
        raise UsageError(f"brain_tumor: no mask in {masks} for {missing[0]} (and {len(missing) - 1} more)")
    if len(pairs) < 2:
        raise UsageError(f"brain_tumor: need at least 2 image/mask pairs in {root}, found {len(pairs)}")
    if spec.limit_train is not None:
        pairs = pairs[: spec.limit_train + max(1, len(pairs) // 5)]
    x = torch.from_numpy(np.stack([_read(p, SIZE, False) for p, _ in pairs])).unsqueeze(1)
    y = torch.from_numpy(np.stack([_read(m, SIZE, True) for _, m in pairs]) > 0).unsqueeze(1).to(torch.uint8)
    n_test = max(1, len(pairs) // 5)
    return Source(Split(x[:-n_test], y[:-n_test]), Split(x[-n_test:], y[-n_test:]))
