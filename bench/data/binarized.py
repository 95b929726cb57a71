"""Binarized MNIST, both ways the likelihood literature uses it.

- `binarized_mnist` (dynamic binarization; Burda et al. 2016, Tomczak and Welling 2018):
  from the MNIST files. Each training batch is a fresh Bernoulli draw from the pixel
  intensities, drawn with the run's shuffle generator (a new draw every epoch, the same
  draws when a run is resumed); the validation and test images are drawn once, from a seed
  that every run shares, so every run is scored on the same bits. Labels are MNIST's.
- `binarized_mnist_static` (Larochelle and Murray 2011's fixed split, 50,000 / 10,000 /
  10,000): the files `binarized_mnist_{train,valid,test}.amat`, 784 space-separated 0/1 per
  line, under `<data-root>/BinarizedMNIST/` (or the data root itself). Its own validation
  file is the validation split (`--val-fraction` does not apply). No labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.data import Source, Split, fixed_draw
from bench.data.mnist import idx_dataset, write_mnist
from registry import register_dataset

STATIC_FOLDER = "BinarizedMNIST"
STATIC_FILES = {s: f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test")}
PIXELS = 28 * 28
TEST_DRAW_SEED = 20160102  # the one draw of the test images that every run shares


def _mnist_files(root, patch):
    write_mnist(root, "MNIST")


@register_dataset(shape=(1, 28, 28), fixture=_mnist_files)
def binarized_mnist(spec, task):
    """Dynamically binarized MNIST, 1x28x28 in {0,1}, 60k/10k: a fresh Bernoulli draw per training epoch,
    fixed draws for validation and test (the IWAE and VampPrior papers' MNIST)."""
    src = idx_dataset("MNIST", "mnist", spec)
    train = Split(src.train.x, src.train.y, None, bernoulli=True)
    return Source(train, fixed_draw(src.test, TEST_DRAW_SEED), src.classes)


def static_folder(root: str) -> Path:
    """Where the static split's files are: `<root>/BinarizedMNIST/`, else the root itself."""
    sub = Path(root) / STATIC_FOLDER
    return sub if sub.is_dir() else Path(root)


def read_amat(path: Path) -> torch.Tensor:
    """One .amat file of binarized MNIST: rows of 784 whitespace-separated 0/1 values, as
    uint8 0/255 images (N, 1, 28, 28). A file of anything else is named in one line."""
    raw = path.read_bytes()
    lines = [ln for ln in raw.split(b"\n") if ln.strip()]
    if not lines:
        raise UsageError(f"binarized_mnist_static: {path} is empty; it should hold one image of 784 0/1 values "
                         f"per line")
    widths = {len(ln.split()) for ln in lines}
    if widths != {PIXELS}:
        bad = next(i for i, ln in enumerate(lines) if len(ln.split()) != PIXELS)
        raise UsageError(f"binarized_mnist_static: {path} line {bad + 1} holds {len(lines[bad].split())} values, "
                         f"not {PIXELS}; the file is damaged or cut short")
    digits = np.frombuffer(b"".join(b"".join(ln.split()) for ln in lines), dtype=np.uint8)
    if len(digits) != len(lines) * PIXELS or not np.isin(digits, (ord("0"), ord("1"))).all():
        raise UsageError(f"binarized_mnist_static: {path} holds values other than 0 and 1; the file is damaged")
    x = torch.from_numpy((digits - ord("0")).astype(np.uint8) * 255).view(len(lines), 1, 28, 28)
    return x.contiguous()


def write_amat(path, images: np.ndarray) -> None:
    """Images (N, 28, 28) of 0/1 as an .amat file, the way the static split ships."""
    rows = images.reshape(len(images), PIXELS).astype(np.uint8)
    Path(path).write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))


def write_static(root, n_train=60, n_valid=20, n_test=20, seed=0) -> Path:
    """The static split's three files under `<root>/BinarizedMNIST/`, of binarized learnable images."""
    from bench.data.vision import learnable_images

    folder = Path(root) / STATIC_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate((("train", n_train), ("valid", n_valid), ("test", n_test))):
        grey = learnable_images(np.arange(n) % 10, 28, 1, seed + i)[..., 0]
        write_amat(folder / STATIC_FILES[split], (grey > 127).astype(np.uint8))
    return folder


def _static_files(root, patch):
    write_static(root)


@register_dataset(shape=(1, 28, 28), kind="unlabeled", num_classes=1, fixture=_static_files)
def binarized_mnist_static(spec, task):
    """Statically binarized MNIST (Larochelle & Murray 2011), 1x28x28 in {0,1}, 50k/10k/10k from
    binarized_mnist_{train,valid,test}.amat under <data-root>/BinarizedMNIST/; no labels."""
    folder = static_folder(spec.data_root)
    missing = [f for f in STATIC_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise UsageError(f"binarized_mnist_static: {', '.join(missing)} not found in {folder} (put Larochelle and "
                         f"Murray's files under {Path(spec.data_root) / STATIC_FOLDER}/); or use binarized_mnist, "
                         f"dynamically binarized from the MNIST files")
    x = {s: read_amat(folder / f) for s, f in STATIC_FILES.items()}
    return Source(Split(x["train"]), Split(x["test"]), [], val=Split(x["valid"]))
