"""Sample quality: a Frechet distance in the features of one small classifier per dataset.

The score is torchmetrics' FrechetInceptionDistance with a custom feature extractor:
the penultimate layer of a small CNN classifier trained on the dataset's labelled
training images. That network is trained once, deterministically (fixed seed, fixed
image subset, fixed epochs), cached on disk, and shared by every run on the same data;
its identity (dataset, shape, images, recipe, hashed) is recorded beside every score.
Scores are comparable between runs that name the same identity, and only between them;
they are not Inception-FID numbers from papers.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from bench.cache import cache_root
from bench.data import batches

FEATURE_SEED = 0
FEATURE_EPOCHS = 3
FEATURE_MAX_TRAIN = 20000
FEATURE_CHANNELS = (16, 32, 64)
RECIPE = f"cnn{'-'.join(map(str, FEATURE_CHANNELS))}-adam2e-3-e{FEATURE_EPOCHS}-s{FEATURE_SEED}-v1"


class Features(nn.Module):
    """Penultimate features of a classifier, the space of the Frechet distance."""

    def __init__(self, clf, identity: str):
        super().__init__()
        self.clf = clf
        self.identity = identity
        self.num_features = clf.head.in_features

    def forward(self, x):
        return self.clf.encode(x.float())


def cache_dir() -> Path:
    return cache_root() / "fd_features"


def _identity(data, train, device) -> str:
    h = hashlib.sha256(f"{RECIPE}|{data.name}|{tuple(data.shape)}|{data.num_classes}|{device.type}".encode())
    h.update(train.x.cpu().numpy().tobytes())
    h.update(train.y.cpu().numpy().tobytes())
    c, hh, w = data.shape
    return f"{data.name}-{c}x{hh}x{w}-n{len(train)}-{RECIPE}-{h.hexdigest()[:12]}"


def _full_training_set(data, cfg):
    """The labelled training images of the whole dataset, whatever part of it the run used: the
    feature network is the dataset's, so every run on it (any --limit-train, any seed) shares one."""
    import dataclasses

    from bench.data import load_data

    from bench.errors import UsageError

    if cfg is None or cfg.limit_train is None:
        return data.labelled_train
    full = dataclasses.replace(cfg, limit_train=None, limit_test=1, seed=FEATURE_SEED)
    try:
        return load_data(full).labelled_train
    except UsageError:  # the whole dataset is not there (CelebA's subset asked of a smaller copy)
        return data.labelled_train


def feature_network(data, device, cfg=None) -> Features:
    """The shared feature network for this dataset: loaded from the cache, or trained and cached.

    With the run's `cfg` it is trained on the dataset's first FEATURE_MAX_TRAIN labelled
    training images whatever the run's own limits, so one network serves every run on the
    dataset. A file lock makes concurrent runs (a sweep's workers) train it once."""
    from registry import create_model

    from bench.errors import UsageError
    from bench.store import locked

    train = _full_training_set(data, cfg)
    if train.y is None or train.y.dim() != 1 or data.num_classes < 2:
        raise UsageError(f"sample quality needs class labels to train its feature network; {data.name} has none")
    train = train.take(torch.arange(min(len(train), FEATURE_MAX_TRAIN), device=train.x.device))
    ident = _identity(data, train, device)
    path = cache_dir() / f"{ident}.pt"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), locked(path):
        torch.manual_seed(FEATURE_SEED)
        clf = create_model("cnn_classifier", data.shape, data.num_classes, channels=FEATURE_CHANNELS).to(device)
        try:
            clf.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError):
            # Every core: other runs of a sweep wait on the lock for this network meanwhile.
            threads = torch.get_num_threads()
            torch.set_num_threads(max(threads, os.cpu_count() or 1))
            try:
                _train(clf, train.to(device), device)
            finally:
                torch.set_num_threads(threads)
            _store(path, clf.state_dict())
    return Features(clf.eval(), ident)


@torch.enable_grad()
def _train(clf, train, device) -> None:
    import time

    opt = torch.optim.Adam(clf.parameters(), 2e-3)
    g = torch.Generator().manual_seed(FEATURE_SEED)
    t0 = time.perf_counter()
    for epoch in range(FEATURE_EPOCHS):
        left = (time.perf_counter() - t0) / epoch * (FEATURE_EPOCHS - epoch) if epoch else None
        print(f"  sample: training the feature network once for this dataset (epoch {epoch + 1} of "
              f"{FEATURE_EPOCHS}{f', about {left:.0f} s left' if left is not None else ''}) ...", flush=True)
        clf.train()
        for x, y in batches(train, 128, shuffle=True, generator=g):
            loss = clf(x.to(device), y.to(device))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()


def _store(path: Path, state: dict) -> None:
    from bench.checkpoint import save

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path, {k: v.cpu() for k, v in state.items()})
    except OSError:
        pass  # an unwritable cache only costs a retrain next time


@torch.no_grad()
def frechet(features: Features, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between two image sets (N, C, H, W) in [0, 1], on their own device."""
    return frechet_each(features, real, {"fake": fake})["fake"]


@torch.no_grad()
def frechet_each(features: Features, real: torch.Tensor, fakes: dict) -> dict[str, float]:
    """{name: Frechet distance of fakes[name] to `real`}: the real images' features are
    computed once and kept (torchmetrics' reset_real_features=False) for every fake set."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=features, normalize=True, reset_real_features=False,
                                   input_img_size=tuple(real.shape[1:])).to(real.device)
    for i in range(0, len(real), 500):
        fid.update(real[i:i + 500], real=True)
    out = {}
    for name, fake in fakes.items():
        fid.reset()
        for i in range(0, len(fake), 500):
            fid.update(fake[i:i + 500].to(real.device).clamp(0, 1), real=False)
        out[name] = float(fid.compute())
    return out
