"""How a configuration key is declared: default, help, choices and range in one field.

Run keys are declared in `bench.config`; every model family declares its own keys in its
config dataclass with `key(...)`, and `bench.config` builds the command line, config-file
and sweep-YAML keys from those declarations, so a family's keys live in its own file.
Specs shared by several families (conv widths, input corruption) are defined once here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Fields a model takes from the data or the run, never from the user.
STRUCTURAL = frozenset({"in_channels", "image_size", "num_classes", "runs_dir"})


def key(default=None, help="", choices=None, lo=None, hi=None, lo_open=False, hi_open=False,
        internal: bool = False):
    """A config field with its help and its valid values (checked when a run is configured).
    `internal`: a model knob that is not offered on the command line."""
    meta = dict(help=help, choices=choices, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, internal=internal)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# Shared specs: the same key means the same thing, with the same range, in every family.
CHANNELS = dict(help="conv widths per stage, e.g. 32,64,128", lo=1, hi=65536)
LATENT_DIM = dict(help="size of the latent code z", lo=1, hi=65536)
HIDDEN_DIMS = dict(help="MLP hidden widths, e.g. 400 or 400,100", lo=1, hi=65536)
BATCHNORM = dict(help="BatchNorm after every conv/deconv layer")
DROPOUT = dict(help="dropout probability (after every conv/deconv layer; before the head of a classifier)",
               lo=0.0, hi=1.0, hi_open=True)
BOTTLENECK = dict(help="'linear' (flat z of latent_dim) or 'conv' (z is the last feature map, e.g. 2x2x16 for "
                       "channels 128,64,32,16 at 28 px; seed 001)", choices=["linear", "conv"])
KL_WARMUP = dict(help="linear KL annealing over this many epochs", lo=0)
RECON_LOSS = dict(help="VAE reconstruction loss", choices=["mse", "bce"])


@dataclass
class Corruption:
    """Input corruption: every autoencoder family that can be trained as a denoiser."""
    noise_std: float = key(0.0, "input corruption level sigma (denoising)", lo=0.0, hi=1.0)
    noise_type: str = key("gaussian", "input corruption", choices=["gaussian", "dropout", "salt_pepper"])


@dataclass
class ImageInput:
    """What a model takes from the data (set by the run, not by the user)."""
    in_channels: int = 1
    image_size: int = 28


def cli_keys(config_cls) -> dict:
    """{name: dataclass field} of a family config that a user may set."""
    import dataclasses
    return {f.name: f for f in dataclasses.fields(config_cls)
            if f.name not in STRUCTURAL and not f.metadata.get("internal") and not f.name.startswith("_")}


__all__ = ["key", "STRUCTURAL", "Corruption", "ImageInput", "cli_keys", "Optional"]
