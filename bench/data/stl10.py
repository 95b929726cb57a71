"""STL-10: torchvision's binary files; self-supervised on `unlabeled`, probed on `train`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bench.config.keys import DatasetConfig, key
from bench.core.errors import UsageError
from bench.data import Source, Split
from bench.data.vision import learnable_images, open_dataset, trust_written
from registry import register_dataset


@dataclass
class STL10Config(DatasetConfig):
    """stl10's keys"""
    train_split: Optional[str] = key(None, "split to train on: train (labelled), unlabeled, or train+unlabeled "
                                           "(default: train for a classifier, else unlabeled)",
                                     choices=["train", "unlabeled", "train+unlabeled"])


def write_stl10(root, n_train=20, n_test=10, n_unlabeled=30, seed=0):
    """train, test and unlabeled binary files of learnable images, labels 1-10 as STL-10 stores them."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        labels = rng.permutation(np.arange(n) % 10)
        # STL-10 stores each image column-major: (N, C, W, H); torchvision transposes it back.
        x = learnable_images(labels, 96, 3, seed).transpose(0, 3, 2, 1)
        (base / f"{name}_X.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        if name != "unlabeled":
            (base / f"{name}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    (base / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog",
                                                     "horse", "monkey", "ship", "truck"]) + "\n")
    return base


def _files(root, patch):
    from torchvision.datasets import STL10

    trust_written(patch, STL10, write_stl10(root))


@register_dataset(shape=(3, 96, 96), config=STL10Config, fixture=_files)
def stl10(spec, task):
    """STL-10, 3x96x96, splits train (5k) / test (8k) / unlabeled (100k) (torchvision)."""
    from bench.config.tasks import TASKS

    labelled = TASKS[task].targets == "labels"
    split = spec.train_split or ("train" if labelled else "unlabeled")
    if split not in ("train", "unlabeled", "train+unlabeled"):
        raise UsageError(f"stl10: unknown --train-split {split!r}; valid: train, unlabeled, train+unlabeled")
    if labelled and split != "train":
        raise UsageError(f"stl10: a classifier trains on labels; --train-split {split} has unlabeled images "
                         f"(valid here: train)")
    # Not cached: its binary files are uint8 arrays already, and a copy of 100k unlabeled images is 2.7 GB.
    return _decode_stl10(spec.data_root, split)


def _decode_stl10(root, split) -> Source:
    from torchvision.datasets import STL10
    where = os.path.join(root, STL10.base_folder)

    def load(s):
        try:
            return open_dataset("stl10", lambda dl: STL10(root, split=s, download=dl), root, STL10.url, where)
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
