"""CIFAR-10: torchvision's python pickle batches."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from bench.core.errors import UsageError
from bench.data import Source, Split
from bench.data.decoded import decoded
from bench.data.vision import hwc_to_chw, learnable_images, open_dataset, trust_written
from registry import register_dataset


def write_cifar10(root, n_per_batch=10, seed=0):
    """The five training batches, the test batch and batches.meta, of learnable images."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = rng.permutation(np.arange(n_per_batch) % 10)
        data = learnable_images(labels, 32, 3, seed).transpose(0, 3, 1, 2).reshape(n_per_batch, 3072)
        entry = {"data": np.ascontiguousarray(data), "labels": [int(v) for v in labels], "batch_label": name}
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"]}, f)
    return base


def _files(root, patch):
    from torchvision.datasets import CIFAR10

    trust_written(patch, CIFAR10, write_cifar10(root, n_per_batch=8))


@register_dataset(shape=(3, 32, 32), fixture=_files)
def cifar10(spec, task):
    """CIFAR-10, 3x32x32, 50k/10k, 10 classes (torchvision python pickle files)."""
    return decoded("cifar10", Path(spec.data_root) / "cifar-10-batches-py", "", lambda: _decode_cifar10(spec.data_root))


def _decode_cifar10(root) -> Source:
    from torchvision.datasets import CIFAR10
    where = os.path.join(root, CIFAR10.base_folder)
    sets = []
    for train in (True, False):
        try:
            ds = open_dataset("cifar10", lambda dl, t=train: CIFAR10(root, train=t, download=dl), root, CIFAR10.url, where)
        except UsageError:
            raise
        except Exception as e:
            raise UsageError(f"cifar10: corrupt or unreadable batch file in {where} ({type(e).__name__})") from None
        sets.append(Split(hwc_to_chw(ds.data), torch.as_tensor(ds.targets, dtype=torch.long)))
    return Source(sets[0], sets[1], list(ds.classes))
