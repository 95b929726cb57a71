"""Sample quality offline (`--sample-score small`): a Frechet distance in the features of small
classifiers, three per dataset, fixed.

The score is torchmetrics' FrechetInceptionDistance with a custom feature extractor: the
penultimate layer of a small CNN trained on the dataset's labelled training images (on a
dataset with binary attributes, CelebA, on all of them at once, multi-label: one attribute
such as Smiling leaves features that cannot tell samplers apart). Three networks, seeds 0, 1
and 2; the score is the mean of the three distances, their spread (max - min over mean) is
recorded as a diagnostic, and the score's error bar is the bootstrap interval of
`bench.tools._scores`.

For MNIST and Fashion-MNIST the networks ship with the project (`bench/tools/feature_nets/`, about
300 KB each, SHA-256 checked on load), so every user scores in the same space and no run
trains one. For other datasets they are trained once by the same recipe (fixed seed, the
first FEATURE_MAX_TRAIN labelled training images or the whole split where it is smaller,
FEATURE_EPOCHS epochs), cached on disk and shared by every run on the data; a network is
never trained on fewer images than that: where the whole split cannot be read, the tool
refuses and says how many it needs. Their identity (dataset, shape, images, recipe, hashed)
is recorded beside every score. Scores compare between runs that name the same identity,
and only between them; they are not the Inception FIDs of papers (`bench.tools._inception`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from bench.core.cache import cache_root
from bench.core.progress import one_off, progress
from bench.data import batches

FEATURE_SEEDS = (0, 1, 2)
FEATURE_EPOCHS = 3
FEATURE_MAX_TRAIN = 20000
FEATURE_CHANNELS = (16, 32, 64)
RECIPE = f"cnn{'-'.join(map(str, FEATURE_CHANNELS))}-adam2e-3-e{FEATURE_EPOCHS}-v2"
SHIPPED = Path(__file__).resolve().parent / "feature_nets"  # MNIST's and Fashion-MNIST's, trained once by RECIPE


class Features(nn.Module):
    """Penultimate features of a classifier, the space of the Frechet distance."""

    def __init__(self, clf, identity: str):
        super().__init__()
        self.clf = clf
        self.identity = identity
        self.num_features = clf.head.in_features

    def forward(self, x):
        return self.clf.encode(x.float())

    def metric(self, real: torch.Tensor):
        """torchmetrics' FID with this network as its feature extractor."""
        from torchmetrics.image.fid import FrechetInceptionDistance

        return FrechetInceptionDistance(feature=self, normalize=True, reset_real_features=False,
                                        input_img_size=tuple(real.shape[1:])).to(real.device)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x


class FeatureNetworks:
    """The networks of one dataset, one per seed in FEATURE_SEEDS; `identity` names them all
    (`bench.tools._inception.InceptionSpace` is the other space a score can be in: one member)."""

    def __init__(self, members: list[Features], identity: str):
        self.members = members
        self.identity = identity


def cache_dir() -> Path:
    return cache_root() / "fd_features"


def _identity(data, train, device) -> str:
    """What the networks are trained on and how, hashed; a member's name adds `-s<seed>`."""
    h = hashlib.sha256(f"{RECIPE}|{data.name}|{tuple(data.shape)}|{device.type}".encode())
    h.update(train.x.cpu().numpy().tobytes())
    h.update(train.y.cpu().numpy().tobytes())
    c, hh, w = data.shape
    target = f"attrs{train.y.shape[1]}" if train.y.dim() == 2 else f"classes{data.num_classes}"
    return f"{data.name}-{c}x{hh}x{w}-n{len(train)}-{target}-{RECIPE}-{h.hexdigest()[:12]}"


def _targets(data, train):
    """The training split with what the networks learn as `y`: every binary attribute where the
    dataset has them (multi-label), else the class."""
    from bench.core.errors import UsageError
    from bench.data import Split

    if train.attrs is not None and train.attrs.dim() == 2 and train.attrs.shape[1] > 1:
        return Split(train.x, train.attrs.float())
    if train.y is None or train.y.dim() != 1 or data.num_classes < 2:
        raise UsageError(f"sample quality needs class labels or attributes to train its feature networks; "
                         f"{data.name} has none")
    return train


def _full_training_set(data, spec):
    """The labelled training images of the whole dataset, whatever part of it the run used: the
    feature network is the dataset's, so every run on it (any --limit-train, any seed) shares one."""
    from bench.core.errors import UsageError
    from bench.data import load_data

    if spec is None or spec.limit_train is None:
        return data.labelled_train
    full = spec.with_keys(limit_train=None, limit_test=1, split_seed=FEATURE_SEEDS[0])
    try:
        return load_data(full).labelled_train
    except UsageError as e:  # the whole split is not there (CelebA's subset asked of a smaller copy)
        # Networks trained on fewer images than the recipe states would score in another space
        raise UsageError(f"the sample score's feature networks for {data.name} are trained on the first "
                         f"{FEATURE_MAX_TRAIN:,} labelled training images (or the whole training split where it "
                         f"is smaller), and only the run's {len(data.labelled_train):,} can be read here ("
                         f"{' '.join(str(e).split())}); give the whole dataset, or score with --sample-score "
                         f"inception") from None


def feature_networks(data, device, spec=None, shipped: bool = True) -> FeatureNetworks:
    """The feature networks for this dataset: the ones shipped with the project (MNIST and
    Fashion-MNIST at 28x28), else loaded from the cache, or trained and cached.

    With the run's `spec` they are trained on the dataset's first FEATURE_MAX_TRAIN labelled
    training images whatever the run's own limits, so they serve every run on the dataset. A
    file lock per network makes concurrent runs (a sweep's workers) train each once."""
    if shipped:
        ready = shipped_networks(data, device)
        if ready is not None:
            return ready
    train = _targets(data, _full_training_set(data, spec))
    train = train.take(torch.arange(min(len(train), FEATURE_MAX_TRAIN), device=train.x.device))
    base = _identity(data, train, device)
    return FeatureNetworks([_member(data, train, device, seed, f"{base}-s{seed}") for seed in FEATURE_SEEDS],
                           f"{base}-s{'.'.join(map(str, FEATURE_SEEDS))}")


def shipped_networks(data, device) -> FeatureNetworks | None:
    """The networks `scripts/ship_feature_nets.py` trained once by RECIPE and the project ships
    (`bench/tools/feature_nets/`), each file checked against the SHA-256 in the manifest; None for a
    dataset or an image size they were not made for."""
    from bench.core.errors import UsageError
    from registry import create_model

    try:
        manifest = json.loads((SHIPPED / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    entry = manifest.get("datasets", {}).get(data.name)
    if manifest.get("recipe") != RECIPE or not entry or tuple(entry["shape"]) != tuple(data.shape) \
            or entry["outputs"] != data.num_classes:
        return None
    members, digest = [], hashlib.sha256()
    for seed in FEATURE_SEEDS:
        path = SHIPPED / f"{data.name}-s{seed}.pt"
        raw = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(raw).hexdigest() != entry["files"].get(path.name):
            raise UsageError(f"{path} does not match the SHA-256 in {SHIPPED / 'manifest.json'}; restore it from the "
                             f"project (git checkout -- {path.relative_to(SHIPPED.parents[2])})")
        digest.update(raw)
        clf = create_model("cnn_classifier", data.shape, entry["outputs"], channels=FEATURE_CHANNELS)
        clf.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
        members.append(Features(clf.to(device).eval(), f"{data.name}-shipped-{RECIPE}-s{seed}"))
    return FeatureNetworks(members, f"{data.name}-shipped-{RECIPE}-{digest.hexdigest()[:12]}")


def _member(data, train, device, seed: int, ident: str) -> Features:
    from bench.core.files import locked
    from registry import create_model

    path = cache_dir() / f"{ident}.pt"
    outputs = train.y.shape[1] if train.y.dim() == 2 else data.num_classes
    what = f"the sample score's feature network seed {seed} for {data.name}"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), locked(path, what):
        torch.manual_seed(seed)
        clf = create_model("cnn_classifier", data.shape, outputs, channels=FEATURE_CHANNELS).to(device)
        try:
            clf.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError):
            # Every core: other runs of a sweep wait on the lock for this network meanwhile.
            threads = torch.get_num_threads()
            torch.set_num_threads(max(threads, os.cpu_count() or 1))
            try:
                with one_off():
                    _train(clf, train.to(device), device, seed)
            finally:
                torch.set_num_threads(threads)
            _store(path, clf.state_dict())
    return Features(clf.eval(), ident)


@torch.enable_grad()
def _train(clf, train, device, seed: int) -> None:
    import time

    import torch.nn.functional as F

    opt = torch.optim.Adam(clf.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(FEATURE_EPOCHS):
        left = (time.perf_counter() - t0) / epoch * (FEATURE_EPOCHS - epoch) if epoch else None
        progress(f"sample: training feature network seed {seed} once for this dataset (epoch {epoch + 1} of "
                 f"{FEATURE_EPOCHS}{f', about {left:.0f} s left' if left is not None else ''})")
        clf.train()
        for x, y in batches(train, 128, shuffle=True, generator=g):
            x, y = x.to(device), y.to(device)
            loss = F.binary_cross_entropy_with_logits(clf.head(clf.encode(x)), y) if y.dim() == 2 else \
                clf(x, y)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()


def _store(path: Path, state: dict) -> None:
    from bench.records.checkpoint import save

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path, {k: v.cpu() for k, v in state.items()})
    except OSError:
        pass  # an unwritable cache only costs a retrain next time
