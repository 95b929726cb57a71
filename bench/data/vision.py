"""torchvision datasets: MNIST, Fashion-MNIST, coloured MNIST, CIFAR-10, STL-10, CelebA.

Files follow torchvision's layout under --data-root and are read by torchvision's own
classes. When files are missing a download is tried only if the dataset's host answers
(set AEBENCH_OFFLINE=1 to never try); otherwise one line says where the files must go.
Fashion-MNIST also accepts Debian's `dataset-fashion-mnist` files, and the project ships
the original files (bench/data/bundled), so its first command runs with no network.
"""
from __future__ import annotations

import gzip
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from bench.data import Source, Split
from bench.data.decoded import decoded
from bench.errors import UsageError
from bench.checkpoint import save
from bench.store import atomic_write_bytes
from bench.tensors import to_float
from registry import register_dataset

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _host_answers(url: str, timeout: float = 3.0) -> bool:
    if os.environ.get("AEBENCH_OFFLINE"):
        return False
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _open(name, make, root, url, where):
    """Build a torchvision dataset; download only when reachable; one-line errors otherwise."""
    try:
        return make(False)
    except RuntimeError as e:
        if "not found" not in str(e).lower() and "corrupted" not in str(e).lower():
            raise  # a torn file: the caller names it
    if _host_answers(url):
        try:
            return make(True)
        except Exception as e:  # network faults of any kind end in the same advice
            raise UsageError(f"{name}: download failed ({type(e).__name__}); place the files in {where}") from None
    raise UsageError(f"{name}: files not found and no network; place them in {where} "
                     f"(torchvision layout under --data-root {root})")


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
    into torchvision's layout when `root` has none (and saying so in one line). Returns `root`
    itself unless it cannot be written. A root the user named (`explicit`) that does not
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
    from bench.cache import cache_root

    cache = cache_root() / "data"
    for target in (Path(root), cache):
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


def idx_dataset(folder: str, name: str, cfg, root: str | None = None) -> Source:
    """A dataset of idx files in torchvision's layout, `<root>/<folder>/raw/`, where `folder`
    is the torchvision class that reads it (MNIST, FashionMNIST, KMNIST, ...): the base of
    every MNIST-shaped dataset. A new one is a registered function that returns
    `idx_dataset("KMNIST", "kmnist", cfg)`. Decoded once into the user cache."""
    root = root or cfg.data_root
    return decoded(name, Path(root) / folder, "", lambda: _decode_idx(folder, name, root))


def _decode_idx(folder, name, root) -> Source:
    import torchvision.datasets
    from torchvision.datasets import mnist as tv_mnist

    cls = getattr(torchvision.datasets, folder)
    where = os.path.join(root, cls.__name__, "raw")
    sets = []
    for train in (True, False):
        try:
            ds = _open(name, lambda dl, t=train: cls(root, train=t, download=dl), root, cls.mirrors[0], where)
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


@register_dataset(shape=(1, 28, 28))
def mnist(cfg, task):
    """MNIST handwritten digits, 1x28x28, 60k/10k, 10 classes (torchvision)."""
    return idx_dataset("MNIST", "mnist", cfg)


@register_dataset(shape=(1, 28, 28))
def fashion_mnist(cfg, task):
    """Fashion-MNIST clothing, 1x28x28, 60k/10k, 10 classes (torchvision; Debian's or the shipped files)."""
    return idx_dataset("FashionMNIST", "fashion_mnist", cfg,
                       _unpack_fashion(cfg.data_root, explicit=Path(cfg.data_root) != Path("data")))


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


@register_dataset(shape=(3, 28, 28))
def colored_mnist(cfg, task):
    """MNIST digits coloured per class or per image (--color-mode), 3x28x28 (the coloured-MNIST assignment)."""
    src = mnist(cfg, task)
    tr = Split(colorize(src.train.x, src.train.y, cfg.color_mode, cfg.seed), src.train.y)
    te = Split(colorize(src.test.x, src.test.y, cfg.color_mode, cfg.seed + 1), src.test.y)
    return Source(tr, te, src.classes)


def _hwc_to_chw(a) -> torch.Tensor:
    return torch.as_tensor(a).permute(0, 3, 1, 2).contiguous()


@register_dataset(shape=(3, 32, 32))
def cifar10(cfg, task):
    """CIFAR-10, 3x32x32, 50k/10k, 10 classes (torchvision python pickle files)."""
    return decoded("cifar10", Path(cfg.data_root) / "cifar-10-batches-py", "", lambda: _decode_cifar10(cfg.data_root))


def _decode_cifar10(root) -> Source:
    from torchvision.datasets import CIFAR10
    where = os.path.join(root, CIFAR10.base_folder)
    sets = []
    for train in (True, False):
        try:
            ds = _open("cifar10", lambda dl, t=train: CIFAR10(root, train=t, download=dl), root, CIFAR10.url, where)
        except UsageError:
            raise
        except Exception as e:
            raise UsageError(f"cifar10: corrupt or unreadable batch file in {where} ({type(e).__name__})") from None
        sets.append(Split(_hwc_to_chw(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)))
    return Source(sets[0], sets[1], list(ds.classes))


@register_dataset(shape=(3, 96, 96))
def stl10(cfg, task):
    """STL-10, 3x96x96, splits train (5k) / test (8k) / unlabeled (100k) (torchvision)."""
    split = cfg.train_split or ("train" if task == "classify" else "unlabeled")
    if split not in ("train", "unlabeled", "train+unlabeled"):
        raise UsageError(f"stl10: unknown --train-split {split!r}; valid: train, unlabeled, train+unlabeled")
    if task == "classify" and split != "train":
        raise UsageError(f"stl10: a classifier trains on labels; --train-split {split} has unlabeled images "
                         f"(valid here: train)")
    # Not cached: its binary files are uint8 arrays already, and a copy of 100k unlabeled images is 2.7 GB.
    return _decode_stl10(cfg.data_root, split)


def _decode_stl10(root, split) -> Source:
    from torchvision.datasets import STL10
    where = os.path.join(root, STL10.base_folder)

    def load(s):
        try:
            return _open("stl10", lambda dl: STL10(root, split=s, download=dl), root, STL10.url, where)
        except UsageError:
            raise
        except Exception as e:
            raise UsageError(f"stl10: corrupt or unreadable binary file in {where} ({type(e).__name__})") from None
    tr, te = load(split), load("test")
    classes = list(te.classes)

    def as_split(ds):
        return Split(torch.as_tensor(ds.data), torch.as_tensor(ds.labels, dtype=torch.long))
    # The CNN and autoencoder assignment: pretrain on `unlabeled`, then probe on the labelled train split.
    labelled = as_split(load("train")) if split != "train" else None
    return Source(as_split(tr), as_split(te), classes, labelled=labelled)


CELEBA_SIZE = 64
CELEBA_SUBSET = (30000, 5000)  # the CelebA assignment: exactly 30k train / 5k test images


def _celeba_split(root, split, n, size):
    from torchvision import transforms
    from torchvision.datasets import CelebA
    cache = Path(root) / "celeba" / f"aebench_{split}_{size}_{n}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    ds = _open("celeba", lambda dl: CelebA(root, split=split, target_type="attr", transform=tf, download=dl),
               root, "https://drive.google.com", os.path.join(root, "celeba"))
    if len(ds) < n:
        flag = "--limit-train" if split == "train" else "--limit-test"
        raise UsageError(f"celeba: the {split} split has {len(ds)} images, fewer than the {n} asked "
                         f"(the CelebA assignment's subset is {CELEBA_SUBSET[0]}/{CELEBA_SUBSET[1]}); pass {flag} {len(ds)}")
    xs, attrs = torch.empty(n, 3, size, size, dtype=torch.uint8), ds.attr[:n].long()
    for i in range(n):
        try:
            xs[i] = ds[i][0]
        except Exception as e:
            raise UsageError(f"celeba: cannot decode {ds.filename[i]} ({type(e).__name__})") from None
    out = {"x": xs, "attrs": attrs, "names": list(ds.attr_names[:40])}
    try:
        save(cache, out)
    except OSError:
        pass  # read-only data root: decode again next time
    return out


@register_dataset(shape=(3, 64, 64), num_classes=2)
def celeba(cfg, task):
    """CelebA faces resized+cropped to 64x64, 30k/5k subset, label = --label-attr (40 attrs)."""
    n_train = cfg.limit_train or CELEBA_SUBSET[0]
    n_test = cfg.limit_test or CELEBA_SUBSET[1]
    tr = _celeba_split(cfg.data_root, "train", n_train, CELEBA_SIZE)
    te = _celeba_split(cfg.data_root, "test", n_test, CELEBA_SIZE)
    names = tr["names"]
    if cfg.label_attr not in names:
        raise UsageError(f"celeba: unknown --label-attr {cfg.label_attr!r}; valid: {', '.join(names)}")
    k = names.index(cfg.label_attr)
    return Source(Split(tr["x"], tr["attrs"][:, k], tr["attrs"]), Split(te["x"], te["attrs"][:, k], te["attrs"]),
                  [f"not {cfg.label_attr}", cfg.label_attr], names)
