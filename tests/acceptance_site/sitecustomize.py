"""Test-only start-up hook for the sweep processes of the acceptance test.

The acceptance test writes tiny CIFAR-10, STL-10 and CelebA files in their real on-disk
formats; torchvision verifies its own md5 sums of the originals, so, as
`tests/formats.trust_files` does in-process, this points those tables at the files the
test wrote. Active only when AEBENCH_TRUST_DATA_ROOT names that data root; on
PYTHONPATH only for the acceptance test's sweeps.
"""
import os
import sys
from pathlib import Path

_root = os.environ.get("AEBENCH_TRUST_DATA_ROOT")
if _root:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for formats.py
    from formats import Patch, trust_files
    from torchvision.datasets import CIFAR10, STL10, CelebA

    for _cls in (CIFAR10, STL10, CelebA):
        _base = Path(_root) / _cls.base_folder
        if _base.is_dir():
            trust_files(Patch, _cls, _base)
