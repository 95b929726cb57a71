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
import io
import os
from pathlib import Path

import torch
from torch import nn

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
    return Path(os.environ.get("AEBENCH_CACHE") or Path.home() / ".cache" / "aebench") / "fd_features"


def _identity(data, train, device) -> str:
    h = hashlib.sha256(f"{RECIPE}|{data.name}|{tuple(data.shape)}|{data.num_classes}|{device.type}".encode())
    h.update(train.x.cpu().numpy().tobytes())
    h.update(train.y.cpu().numpy().tobytes())
    c, hh, w = data.shape
    return f"{data.name}-{c}x{hh}x{w}-n{len(train)}-{RECIPE}-{h.hexdigest()[:12]}"


def feature_network(data, device) -> Features:
    """The shared feature network for this data: loaded from the cache, or trained and cached."""
    from registry import create_model

    from bench.errors import UsageError

    train = data.labelled_train
    if train.y is None or train.y.dim() != 1 or data.num_classes < 2:
        raise UsageError(f"sample quality needs class labels to train its feature network; {data.name} has none")
    train = train.take(torch.arange(min(len(train), FEATURE_MAX_TRAIN), device=train.x.device))
    ident = _identity(data, train, device)
    path = cache_dir() / f"{ident}.pt"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(FEATURE_SEED)
        clf = create_model("cnn_classifier", data.shape, data.num_classes, channels=FEATURE_CHANNELS).to(device)
        try:
            clf.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError):
            _train(clf, train, device)
            _store(path, clf.state_dict())
    return Features(clf.eval(), ident)


@torch.enable_grad()
def _train(clf, train, device) -> None:
    opt = torch.optim.Adam(clf.parameters(), 2e-3)
    g = torch.Generator().manual_seed(FEATURE_SEED)
    for _ in range(FEATURE_EPOCHS):
        clf.train()
        for x, y in batches(train, 128, shuffle=True, generator=g):
            loss = clf(x.to(device), y.to(device))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()


def _store(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in state.items()}, buf)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a retrain next time


@torch.no_grad()
def frechet(features: Features, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between two image sets (N, C, H, W) in [0, 1], on their own device."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=features, normalize=True,
                                   input_img_size=tuple(real.shape[1:])).to(real.device)
    for i in range(0, len(real), 500):
        fid.update(real[i:i + 500], real=True)
    for i in range(0, len(fake), 500):
        fid.update(fake[i:i + 500].to(real.device).clamp(0, 1), real=False)
    return float(fid.compute())
