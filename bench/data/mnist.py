"""MNIST-shaped datasets of idx files: MNIST, Fashion-MNIST, coloured MNIST.

Fashion-MNIST also accepts Debian's `dataset-fashion-mnist` files, and the project ships
the original files (bench/data/bundled), so its first command runs with no network.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.config.keys import DatasetConfig, key
from bench.core.errors import UsageError
from bench.core.files import atomic_write_bytes
from bench.core.tensors import to_float
from bench.data import Source, Split
from bench.data.decoded import decoded
from bench.data.vision import learnable_images, open_dataset
from registry import register_dataset

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

BUNDLED_FASHION_DIR = Path(__file__).resolve().parent / "bundled" / "fashion-mnist"


def _fashion_sources() -> list[Path]:
    """Folders of Fashion-MNIST's original .gz files: Debian's package, then the copy shipped here."""
    return [Path(os.environ.get("AEBENCH_DEBIAN_FASHION_DIR", DEBIAN_FASHION_DIR)), BUNDLED_FASHION_DIR]


def _gunzip(path: Path) -> bytes:
    """A .gz file's bytes; a damaged one (cut short, not gzip) is bad input, named in one line."""
    import zlib

    try:
        with gzip.open(path, "rb") as fin:
            return fin.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        reason = "cut short" if isinstance(e, EOFError) else " ".join(str(e).split())[:80]
        raise UsageError(f"fashion_mnist: {path} is damaged ({reason}); reinstall it (Debian: apt-get install "
                         f"--reinstall dataset-fashion-mnist) or point --data-root at an unpacked copy") from None


def _unpack_fashion(root: str, explicit: bool = False) -> str:
    """The data root to read Fashion-MNIST from, unpacking Debian's or the shipped .gz files
    into torchvision's layout when `root` has none (and saying so in one line): into `root`
    when the user named it (or the cache if it cannot be written), else into the cache. A root the user named (`explicit`) that does not
    exist is refused: it is never silently replaced by another."""
    import hashlib

    if all((Path(root) / "FashionMNIST" / "raw" / f).exists() for f in MNIST_FILES):
        return root
    if explicit and not Path(root).is_dir():
        raise UsageError(f"--data-root {root}: no such folder (fashion_mnist reads {root}/FashionMNIST/raw/); "
                         f"leave --data-root out to use Debian's or the project's own copy of Fashion-MNIST")
    src = next((d for d in _fashion_sources() if all((d / f"{f}.gz").exists() for f in MNIST_FILES)), None)
    if src is None:
        return root
    sums = {}
    if (src / "SHA256SUMS").exists():
        sums = dict(reversed(line.split()) for line in (src / "SHA256SUMS").read_text().splitlines() if line.strip())
    from bench.core.cache import cache_root

    # The default root (./data) is not filled: one unpacked copy in the cache serves every
    # working folder; a root the user named gets its own, as asked.
    cache = cache_root() / "data"
    if not explicit and all((cache / "FashionMNIST" / "raw" / f).exists() for f in MNIST_FILES):
        return str(cache)
    for target in (Path(root), cache) if explicit else (cache,):
        raw = target / "FashionMNIST" / "raw"
        try:
            raw.mkdir(parents=True, exist_ok=True)
            for f in MNIST_FILES:
                if (raw / f).exists():
                    continue
                data = _gunzip(src / f"{f}.gz")
                if f in sums and hashlib.sha256(data).hexdigest() != sums[f]:
                    raise UsageError(f"fashion_mnist: {src / f}.gz does not match its SHA-256 sum")
                atomic_write_bytes(raw / f, data)
            print(f"fashion_mnist: {'the copy shipped with aebench' if src == BUNDLED_FASHION_DIR else src} "
                  f"unpacked into {raw}", flush=True)
            return str(target)
        except OSError:
            continue  # unwritable data root: unpack into the cache instead
    return root


def idx_dataset(folder: str, name: str, spec, root: str | None = None) -> Source:
    """A dataset of idx files in torchvision's layout, `<root>/<folder>/raw/`, where `folder`
    is the torchvision class that reads it (MNIST, FashionMNIST, KMNIST, ...): the base of
    every MNIST-shaped dataset. A new one is a registered function that returns
    `idx_dataset("KMNIST", "kmnist", spec)`. Decoded once into the user cache."""
    root = root or spec.data_root
    return decoded(name, Path(root) / folder, "", lambda: _decode_idx(folder, name, root))


def _decode_idx(folder, name, root) -> Source:
    import torchvision.datasets
    from torchvision.datasets import mnist as tv_mnist

    cls = getattr(torchvision.datasets, folder)
    where = os.path.join(root, cls.__name__, "raw")
    sets = []
    for train in (True, False):
        try:
            ds = open_dataset(name, lambda dl, t=train: cls(root, train=t, download=dl), root, cls.mirrors[0], where)
        except UsageError:
            raise
        except Exception as e:  # truncated / corrupt IDX file: name it, no torchvision traceback
            raise UsageError(_which_idx_file_is_bad(where, name, e, tv_mnist)) from None
        sets.append(Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long()))
    return Source(sets[0], sets[1], list(cls.classes))


def _which_idx_file_is_bad(where, name, err, tv_mnist):
    for f in MNIST_FILES:
        path = os.path.join(where, f)
        reader = tv_mnist.read_image_file if "images" in f else tv_mnist.read_label_file
        try:
            reader(path)
        except Exception as e:
            return f"{name}: corrupt or truncated file {path} ({type(e).__name__}: {str(e)[:80]})"
    return f"{name}: cannot read files in {where} ({type(err).__name__}: {str(err)[:80]})"


def write_idx_images(path, images: np.ndarray):
    n, h, w = images.shape
    Path(path).write_bytes(struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray):
    Path(path).write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root, folder="MNIST", n_train=60, n_test=20, seed=0):
    """MNIST-layout idx files (`<root>/<folder>/raw/`) of learnable images, labels 0-9."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10)
        write_idx_images(raw / f"{split}-images-idx3-ubyte", learnable_images(labels, 28, 1, seed)[..., 0])
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
    return raw


def _mnist_files(root, patch):
    write_mnist(root, "MNIST")


def _fashion_files(root, patch):
    write_mnist(root, "FashionMNIST")


@register_dataset(shape=(1, 28, 28), fixture=_mnist_files)
def mnist(spec, task):
    """MNIST handwritten digits, 1x28x28, 60k/10k, 10 classes (torchvision)."""
    return idx_dataset("MNIST", "mnist", spec)


@register_dataset(shape=(1, 28, 28), fixture=_fashion_files)
def fashion_mnist(spec, task):
    """Fashion-MNIST clothing, 1x28x28, 60k/10k, 10 classes (torchvision; Debian's or the shipped files)."""
    return idx_dataset("FashionMNIST", "fashion_mnist", spec,
                       _unpack_fashion(spec.data_root, explicit=Path(spec.data_root) != Path("data")))


PALETTE = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190]],
                       dtype=torch.float32)


def colorize(x: torch.Tensor, y: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    """(N,1,H,W) uint8 digits -> (N,3,H,W) uint8, coloured per class or per image."""
    if mode == "class":
        colors = PALETTE[y]
    else:
        g = torch.Generator().manual_seed(seed)
        colors = torch.rand(len(y), 3, generator=g) * 200 + 55
    return (to_float(x) * colors.view(-1, 3, 1, 1)).round().to(torch.uint8)


@dataclass
class ColoredConfig(DatasetConfig):
    """colored_mnist's keys"""
    color_mode: str = key("class", "colored_mnist colouring: one colour per class, or per image",
                          choices=["class", "random"])


@register_dataset(shape=(3, 28, 28), config=ColoredConfig, fixture=_mnist_files)
def colored_mnist(spec, task):
    """MNIST digits coloured per class or per image (--color-mode), 3x28x28 (the coloured-MNIST assignment)."""
    src = mnist(spec, task)
    tr = Split(colorize(src.train.x, src.train.y, spec.color_mode, spec.split_seed), src.train.y)
    te = Split(colorize(src.test.x, src.test.y, spec.color_mode, spec.split_seed + 1), src.test.y)
    return Source(tr, te, src.classes)
