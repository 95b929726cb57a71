"""Datasets held in memory as uint8 tensors, split, limited, resized, and batched.

Every source (torchvision classes, image folders, generators) returns uint8 tensors of
shape (N, C, H, W); conversion to float in [0, 1] happens per batch. The train/val split
comes from the training set, drawn with the run's `split_seed` (not its training seed). Importing this package registers every
dataset with the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from bench.core.errors import UsageError
from bench.core.tensors import to_float

FIXED_DRAW_SEED = 20160101  # the one draw of dynamically binarized images that every run shares


@dataclass
class Split:
    x: torch.Tensor  # uint8 (N, C, H, W)
    y: Optional[torch.Tensor] = None  # int64 (N,) labels, or uint8 (N, 1, H, W) masks
    attrs: Optional[torch.Tensor] = None  # int64 (N, A) binary attributes (celeba)
    # Dynamic binarization (binarized MNIST): each batch is a Bernoulli draw from the pixel
    # intensities, drawn with the generator of the pass (a training pass: the run's shuffle
    # generator, so a new draw each epoch that a resumed run repeats)
    bernoulli: bool = False

    def __len__(self):
        return self.x.shape[0]

    def take(self, idx: torch.Tensor) -> "Split":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Split(self.x[idx], pick(self.y), pick(self.attrs), self.bernoulli)

    def to(self, device) -> "Split":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Split(self.x.to(device), mv(self.y), mv(self.attrs), self.bernoulli)


@dataclass
class Source:
    """What a dataset loader returns before splitting."""
    train: Split
    test: Split
    classes: list = field(default_factory=list)
    attr_names: list = field(default_factory=list)
    labelled: Optional[Split] = None  # labelled training images when `train` is unlabeled (STL-10)
    val: Optional[Split] = None  # a fixed validation split of the dataset's own (static binarized MNIST)


@dataclass
class DataBundle:
    name: str
    kind: str  # labels | masks | unlabeled
    train: Split
    val: Split
    test: Split
    classes: list
    attr_names: list
    labelled: Optional[Split] = None

    @property
    def labelled_train(self) -> Split:
        """What a probe trains on: the labelled split when training was self-supervised on
        unlabeled images (STL-10's -1 labels are never a class), else the training split."""
        split = self.labelled if self.labelled is not None else self.train
        if split.y is not None and split.y.dim() == 1 and bool((split.y < 0).any()):
            split = split.take((split.y >= 0).nonzero().flatten())
        return split

    @property
    def shape(self):
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self):
        return max(len(self.classes), 1)

    def to(self, device) -> "DataBundle":
        return DataBundle(self.name, self.kind, self.train.to(device), self.val.to(device),
                          self.test.to(device), self.classes, self.attr_names,
                          None if self.labelled is None else self.labelled.to(device))


def resize(split: Split, size: int, kind: str) -> Split:
    if split.x.shape[-1] == size and split.x.shape[-2] == size:
        return split
    x = F.interpolate(split.x.float(), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    y = split.y
    if kind == "masks" and y is not None:
        y = F.interpolate(y.float(), size=(size, size), mode="nearest").to(torch.uint8)
    return Split(x, y, split.attrs, split.bernoulli)


def check_split(dataset: str, name: str, split: Split, entry) -> None:
    """What the files hold is what the dataset declares, checked before any run exists: the
    image shape, one label (or mask) per image, labels within the classes, binary masks."""
    where = f"{dataset}: the {name} split"
    if split.x.dim() != 4 or tuple(split.x.shape[1:]) != tuple(entry.shape):
        raise UsageError(f"{where} holds images of shape {tuple(split.x.shape[1:])}, the dataset declares "
                         f"{tuple(entry.shape)}; its files are damaged or of another dataset")
    if split.y is None:
        return
    if len(split.y) != len(split.x):
        raise UsageError(f"{where} has {len(split.x)} images but {len(split.y)} labels; its files are truncated "
                         f"or do not belong together")
    if entry.kind == "labels" and len(split.y):
        known = split.y[split.y != -1]  # -1: torchvision's "no label" (STL-10's unlabeled images)
        lo, hi = (int(known.min()), int(known.max())) if len(known) else (0, 0)
        if lo < 0 or hi >= entry.num_classes:
            raise UsageError(f"{where} has labels from {lo} to {hi}; {dataset} has {entry.num_classes} classes "
                             f"(0 to {entry.num_classes - 1})")
    if entry.kind == "masks" and tuple(split.y.shape[1:]) != (1,) + tuple(entry.shape[1:]):
        raise UsageError(f"{where} holds masks of shape {tuple(split.y.shape[1:])}, expected "
                         f"{(1,) + tuple(entry.shape[1:])}")


def load_data(spec, task: str | None = None) -> DataBundle:
    """Load, limit, split and resize the dataset of a run's spec (`bench.config.spec.RunSpec`), for
    its task (or `task`: a run's model on another run's data)."""
    entry = spec.dataset_entry
    src: Source = entry.fn(spec, task or spec.task)
    g = torch.Generator().manual_seed(spec.split_seed)
    train, test = src.train, src.test
    if len(train) == 0 or len(test) == 0:
        raise UsageError(f"{spec.dataset}: the dataset is empty (train {len(train)}, test {len(test)} images)")
    for name, split in (("train", train), ("test", test), ("labelled", src.labelled), ("val", src.val)):
        if split is not None:
            check_split(spec.dataset, name, split, entry)
    perm = torch.randperm(len(train), generator=g)
    if spec.limit_train is not None:
        perm = perm[: spec.limit_train]
    if spec.limit_test is not None:
        test = test.take(torch.arange(min(spec.limit_test, len(test))))
    if src.val is not None:  # the dataset's own validation split: --val-fraction does not apply
        val = src.val if spec.limit_test is None else src.val.take(torch.arange(min(spec.limit_test, len(src.val))))
        train_split, val_split = train.take(perm), val
    else:
        n_val = max(1, int(round(spec.val_fraction * len(perm))))
        if len(perm) - n_val < 1:
            raise UsageError(f"{spec.dataset}: {len(perm)} training images leave none for training after "
                             f"holding out {n_val} for validation; raise --limit-train (valid: >= 2)")
        train_split, val_split = train.take(perm[n_val:]), train.take(perm[:n_val])
        if train.bernoulli:  # held-out images: one draw that every run shares, whichever images they are
            val_split = fixed_draw(train, FIXED_DRAW_SEED).take(perm[:n_val])
    labelled = src.labelled
    if labelled is not None and spec.limit_train is not None:
        labelled = labelled.take(torch.arange(min(spec.limit_train, len(labelled))))
    if spec.image_size is not None:
        train_split, val_split, test = (resize(s, spec.image_size, entry.kind)
                                        for s in (train_split, val_split, test))
        labelled = None if labelled is None else resize(labelled, spec.image_size, entry.kind)
    return DataBundle(spec.dataset, entry.kind, train_split, val_split, test, src.classes, src.attr_names,
                      labelled)


def batches(split: Split, batch_size: int, shuffle: bool = False,
            generator: Optional[torch.Generator] = None) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """Yield (x float in [0,1], y) batches; shuffling is a permutation of indices.

    A shuffled (training) pass leaves out a last batch of one image: batch statistics of
    one value (BatchNorm) are undefined, and the image left out changes every epoch."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    # A pass in order (codes for a tool, a probe) draws its bits from a fixed stream: the same each time
    binarizer = torch.Generator().manual_seed(FIXED_DRAW_SEED) if split.bernoulli and generator is None else None
    if order is not None and split.x.device.type != "cpu":
        order = order.to(split.x.device)
    for i in range(0, n, batch_size):
        if shuffle and n - i == 1 and n > 1:
            break
        if order is None:
            xb, yb = split.x[i:i + batch_size], None if split.y is None else split.y[i:i + batch_size]
        else:
            idx = order[i:i + batch_size]
            xb, yb = split.x[idx], None if split.y is None else split.y[idx]
        xf = to_float(xb)
        if split.bernoulli:
            xf = bernoulli_draw(xf, generator if generator is not None else binarizer)
        yield xf, yb


def fixed_draw(split: Split, seed: int) -> Split:
    """`split` binarized once, pixel by pixel with P(1) = intensity, from `seed`: uint8 0/255.
    A pixel is on when a uniform integer of 0..254 lies below its value (0..255), which has
    exactly that probability; an image's bits depend on the seed and its place alone."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, 255, tuple(split.x.shape), generator=g, dtype=torch.uint8)
    return Split((u < split.x).to(torch.uint8) * 255, split.y, split.attrs)


def bernoulli_draw(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Binary images drawn pixel by pixel with P(1) = intensity (dynamic binarization), the
    uniforms drawn on the CPU from `generator` whatever the device, so a CPU run and a CUDA
    run of one seed see the same bits."""
    u = torch.rand(x.shape, generator=generator)
    return (u.to(x.device) < x).to(x.dtype)


