"""The datasets' own fixtures (tiny files in the exact on-disk formats torchvision reads),
under the names the tests use. The torchvision classes that verify md5 sums (CIFAR10,
STL10, CelebA) get their checksum tables pointed at the written files (`trust_files`), so
the real loading code runs unchanged on them."""
from pathlib import Path

from bench.data.celeba import CELEBA_ATTRS, write_celeba  # noqa: F401
from bench.data.cifar import write_cifar10  # noqa: F401
from bench.data.folders import write_brain_tumor  # noqa: F401
from bench.data.mnist import write_idx_images, write_idx_labels, write_mnist  # noqa: F401
from bench.data.stl10 import write_stl10  # noqa: F401
from bench.data.vision import learnable_images, md5, trust_written  # noqa: F401


class Patch:
    """`setattr` for code outside pytest (the acceptance test's sitecustomize)."""

    @staticmethod
    def setattr(obj, name, value):
        setattr(obj, name, value)


def trust_files(monkeypatch, cls, base: Path):
    """Point a torchvision class's md5 table at the files a test wrote."""
    trust_written(monkeypatch, cls, base)
