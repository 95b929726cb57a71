"""Classifiers: a CNN trained from scratch, frozen backbones with a new head, and a
linear probe on the frozen encoder of a finished autoencoder run.

- `cnn_classifier`: conv blocks (Conv-BN-ReLU x2, max-pool, dropout), linear head
  (the CNN and autoencoder assignment Task 1, > 70% CIFAR-10 test accuracy).
- `resnet18_probe`: torchvision ResNet-18 (He et al., arXiv 1512.03385) frozen, new head;
  `--encoder timm:NAME` swaps in any timm backbone (features_only). ImageNet weights are
  loaded from the torch hub cache and never silently replaced by random ones.
- `linear_probe`: nn.Linear on z of a finished run's frozen encoder (`--probe-from RUN`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from bench.config.keys import CHANNELS, DROPOUT, ImageInput, key
from bench.core.errors import UsageError
from bench.models.base import BenchModel
from registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Classifier(BenchModel):
    task = "classify"
    best_metric = ("val/acc", "max")
    reconstructs = False
    epoch_splits = ("val", "test")  # test accuracy per epoch: the curve a classifier is judged by

    def head_out(self, logits, z, y):
        out = {"logits": logits, "z": z, "recon": None}
        if y is not None:
            loss = F.cross_entropy(logits, y)
            out.update(loss=loss, acc=(logits.argmax(1) == y).float().mean())
        return out


@dataclass
class CNNConfig(ImageInput):
    """CNN classifier (cnn_classifier)"""
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    dropout: float = key(0.25, **DROPOUT)


class CNNClassifier(Classifier):
    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        blocks, cin = [], cfg.in_channels
        for c in cfg.channels:
            blocks += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2), nn.Dropout(cfg.dropout)]
            cin = c
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, cfg.num_classes)

    def encode(self, x):
        return self.features(x)

    def forward(self, x, y=None):
        z = self.features(x)
        return self.head_out(self.head(z), z, y)


@dataclass
class ProbeConfig(ImageInput):
    """frozen pretrained backbone and a trained head (resnet18_probe)"""
    in_channels: int = 3
    image_size: int = 96
    num_classes: int = 10
    pretrained: bool = key(True, "load ImageNet weights")
    encoder: str = key("torchvision:resnet18", "frozen backbone, e.g. timm:resnet18")


def _hash_prefix(fname: str) -> str:
    """The SHA-256 prefix torchvision puts in its weight file names (resnet18-f37072fd.pth)."""
    match = torch.hub.HASH_REGEX.search(fname)
    return match.group(1) if match else ""


def _check_hash(path: str, fname: str) -> None:
    """A cached weight file is used only if its SHA-256 starts with the published prefix."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(_hash_prefix(fname)):
        raise UsageError(f"resnet18_probe: {path} does not match its published SHA-256 prefix "
                         f"{_hash_prefix(fname)}; delete it and place the original file there")


def _resnet18(pretrained: bool) -> nn.Module:
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    net = torchvision.models.resnet18(weights=None)
    if pretrained:
        fname = os.path.basename(weights.url)
        path = os.path.join(torch.hub.get_dir(), "checkpoints", fname)
        if not os.path.exists(path):
            try:
                if os.environ.get("AEBENCH_OFFLINE"):
                    raise OSError("offline")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                torch.hub.download_url_to_file(weights.url, path, hash_prefix=_hash_prefix(fname),
                                               progress=False)
            except Exception:
                raise UsageError(f"resnet18_probe: ImageNet weights not found and not downloadable; "
                                 f"place {fname} at {path} (or pass --pretrained=false)") from None
        _check_hash(path, fname)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    return net


def _timm_backbone(name: str, pretrained: bool) -> nn.Module:
    import timm

    if name not in timm.list_models():
        raise UsageError(f"--encoder timm:{name}: unknown timm model; see timm.list_models()")
    try:
        net = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(-1,))
    except Exception as e:
        raise UsageError(f"--encoder timm:{name}: pretrained weights unavailable offline "
                         f"({type(e).__name__}); place them in the Hugging Face cache "
                         f"(HF_HOME) or pass --pretrained=false") from None
    return nn.Sequential(_LastFeature(net), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class _LastFeature(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[-1]


class FrozenBackboneClassifier(Classifier):
    def __init__(self, cfg: ProbeConfig):
        super().__init__()
        self.cfg = cfg
        kind, _, name = cfg.encoder.partition(":")
        if kind == "timm" and name:
            self.backbone = _timm_backbone(name, cfg.pretrained)
        elif cfg.encoder in ("torchvision:resnet18", "resnet18"):
            self.backbone = _resnet18(cfg.pretrained)
        else:
            raise UsageError(f"--encoder {cfg.encoder!r}: valid: torchvision:resnet18 or timm:NAME")
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.in_channels = cfg.in_channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        with torch.no_grad():
            dim = self.backbone.eval()(torch.zeros(1, 3, 32, 32)).shape[1]
        self.head = nn.Linear(dim, cfg.num_classes)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen means frozen BatchNorm statistics too
        return self

    def encode(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        with torch.no_grad():
            return self.backbone((x - self.mean) / self.std)

    def forward(self, x, y=None):
        z = self.encode(x)
        return self.head_out(self.head(z), z, y)


@dataclass
class LinearProbeConfig(ImageInput):
    """linear head on a finished autoencoder's frozen encoder (linear_probe)"""
    probe_from: Optional[str] = key(None, "the finished run (folder, id, or wandb:ENTITY/PROJECT/NAME:ALIAS) "
                                          "whose frozen encoder feeds the linear head (required)",
                                    implies_model="linear_probe")
    runs_dir: str = "runs"
    num_classes: int = 10

    def derive(self) -> None:
        if not self.probe_from:
            raise UsageError("--probe-from: linear_probe needs the finished run whose encoder it probes "
                             "(a run folder, an id, or wandb:ENTITY/PROJECT/NAME:ALIAS)")


class LinearProbe(Classifier):
    """nn.Linear on the (standardised) frozen z of a finished autoencoder run."""

    def __init__(self, cfg: LinearProbeConfig):
        super().__init__()
        self.cfg = cfg
        from bench.records.rebuild import load_run_model  # local: it builds registry models

        self.encoder_model, _ = load_run_model(cfg.probe_from, cfg.runs_dir)
        for p in self.encoder_model.parameters():
            p.requires_grad_(False)
        shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        try:
            with torch.no_grad():
                self.encoder_model.eval()
                dim = self.encoder_model.encode(torch.zeros(2, *shape)).flatten(1).shape[1]
        except RuntimeError:
            raise UsageError(f"--probe-from {cfg.probe_from}: its encoder was trained on other images; it cannot "
                             f"encode this dataset's {'x'.join(map(str, shape))} images (probe it on the dataset "
                             f"it was trained on)") from None
        # Parameter-free BatchNorm standardises z first, as in MAE's linear probe (He et al.
        # 2021): the probe stays linear, and its learning rate no longer depends on z's scale.
        self.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False), nn.Linear(dim, cfg.num_classes))

    def train(self, mode=True):
        super().train(mode)
        self.encoder_model.eval()
        return self

    def encode(self, x):
        with torch.no_grad():
            return self.encoder_model.encode(x).flatten(1)

    def forward(self, x, y=None):
        z = self.encode(x)
        return self.head_out(self.head(z), z, y)


@register_model(config=CNNConfig, input=(3, 32, 32), task="classify")
def cnn_classifier(cfg):
    """Conv + BN + ReLU + dropout blocks, linear head (>70% CIFAR-10 target)."""
    return CNNClassifier(cfg)


@register_model(config=ProbeConfig, input=(3, 96, 96), task="classify")
def resnet18_probe(cfg):
    """ResNet-18 (ImageNet weights) frozen, new head; --encoder timm:NAME for any timm backbone."""
    return FrozenBackboneClassifier(cfg)


@register_model(config=LinearProbeConfig, task="classify", hidden=True)
def linear_probe(cfg):
    """Linear head on the frozen encoder of a finished run (--probe-from RUN)."""
    return LinearProbe(cfg)
