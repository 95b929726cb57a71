"""How a configuration key is declared: default, help, choices and range in one field.

Run keys are declared in `bench.config.run_keys`; every model family declares its own keys in its
config dataclass with `key(...)`, and `bench.config.run_keys` builds the command line, config-file
and sweep-YAML keys from those declarations, so a family's keys live in its own file.
Declarations shared by several families (conv widths, input corruption) are defined once here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Fields a model takes from the data or the run, never from the user.
STRUCTURAL = frozenset({"in_channels", "image_size", "num_classes", "runs_dir"})


# Older key names, still accepted wherever keys are read: flags, config files, sweep YAMLs and
# recorded runs. One table that imports nothing, so analysis reads older records without
# importing a model family (and torch). Renaming a key adds its old name here.
RENAMED = {"noise_std": "noise_level", "kl_weight": "beta", "recon_loss": "recon_type", "loss": "seg_loss"}


def canonical(values: dict) -> dict:
    """Flat keys with older names replaced by today's (`noise_std` -> `noise_level`), a key
    given for one model too (`dae.noise_std` -> `dae.noise_level`)."""
    return {_today(k): v for k, v in values.items()}


def _today(name: str) -> str:
    model, key = scope_of(name)
    return RENAMED.get(key, key) if model is None else f"{model}.{RENAMED.get(key, key)}"


def scope_of(name: str) -> tuple[str | None, str]:
    """(model, key) of a family key given for one model only, `dae.noise_level` -> ("dae",
    "noise_level"): a sweep over several models sets it for that model's runs alone, where
    `noise_level` would make every model a denoiser. (None, name) for a plain key."""
    model, dot, key = name.partition(".")
    return (model, key.replace("-", "_")) if dot and model and key else (None, name)


def own_keys(params: dict) -> dict:
    """A run's parameters without the keys given for another model (`dae.noise_level` in a vae's
    run, which ignores it): what its console line shows."""
    return {k: v for k, v in params.items() if scope_of(k)[0] in (None, params.get("model"))}


def bare(name: str) -> str:
    """The key itself, without the model it is scoped to (`dae.noise_level` -> `noise_level`)."""
    return scope_of(name)[1]


def older_name(key_name: str) -> str | None:
    """The older name still accepted for a key, if it has one."""
    return next((old for old, new in RENAMED.items() if new == key_name), None)


def key(default=None, help="", choices=None, lo=None, hi=None, lo_open=False, hi_open=False,
        internal: bool = False, shorthand: bool = False, implies_model: str | None = None,
        weighs: str | None = None):
    """A config field with its help and its valid values (checked when a run is configured).
    `internal`: a model knob that is not offered on the command line. `shorthand`: a key that
    only sets others in `derive()` (not recorded when unset). `implies_model`: giving this key
    without `--model` chooses that model. `weighs`: the key weighs this term of the loss (the
    name the training forward returns it under); the generated model test checks that changing
    the key changes the loss of every model that returns the term. An older name of a key goes
    in `RENAMED`."""
    meta = dict(help=help, choices=choices, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, internal=internal,
                shorthand=shorthand, implies_model=implies_model, weighs=weighs)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# Shared declarations: the same key means the same thing, with the same range, in every family.
CHANNELS = dict(help="conv widths per stage, e.g. 32,64,128", lo=1, hi=65536)
LATENT_DIM = dict(help="size of the latent code z", lo=1, hi=65536)
HIDDEN_DIMS = dict(help="MLP hidden widths, e.g. 400 or 400,100", lo=1, hi=65536)
BATCHNORM = dict(help="BatchNorm after every conv/deconv layer")
DROPOUT = dict(help="dropout probability (after every conv/deconv layer; before the head of a classifier)",
               lo=0.0, hi=1.0, hi_open=True)
BOTTLENECK = dict(help="'linear' (flat z of latent_dim) or 'conv' (z is the last feature map, e.g. 2x2x16 for "
                       "channels 128,64,32,16 at 28 px)", choices=["linear", "conv"])
BETA = dict(help="KL weight beta: loss = recon + beta * KL (beta-VAE; 0 trains the VAE's encoder as a plain AE)",
            lo=0.0, hi=1000.0, weighs="kl")
KL_WARMUP = dict(help="linear KL annealing over this many epochs", lo=0)
RECON_TYPE = dict(help="VAE reconstruction term: mse (Gaussian) or bce (Bernoulli); its value is logged as "
                       "recon_loss", choices=["mse", "bce"])


@dataclass
class FamilyConfig:
    """The base of every model family's `Config`: the second level of a run's configuration.

    The run keys (`bench.config.run_keys.RunKeys`) are resolved first; once `--model` is known, its
    family's Config resolves the remaining flat keys: the model's registered defaults, then
    the user's values, then `derive()` (keys set by other keys, cross-key checks), then
    `task()`. Generic code never names a family key; it asks the family."""

    def derive(self) -> None:
        """Set derived keys and check combinations; raise UsageError on bad input."""

    def task(self, registered: str) -> str:
        """The task this configuration trains (the model's registered task by default)."""
        return registered

    def to_dict(self) -> dict:
        """The user-settable keys as recorded in config.json and checkpoints (lists, not
        tuples; a shorthand key left unset is not recorded)."""
        out = {}
        for name, f in cli_keys(type(self)).items():
            value = getattr(self, name)
            if value is None and f.metadata.get("shorthand"):
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class DatasetConfig:
    """The base of every dataset's `Config`: its own keys (a colouring, an attribute used as
    the label, a split), declared with `key(...)` as a family declares its keys, and offered
    on the command line only for that dataset. A dataset without keys of its own uses this."""

    def derive(self) -> None:
        """Check combinations of the dataset's keys; raise UsageError on bad input."""

    def to_dict(self) -> dict:
        return FamilyConfig.to_dict(self)


@dataclass
class ImageInput(FamilyConfig):
    """What a model takes from the data (set by the run, not by the user)."""
    in_channels: int = 1
    image_size: int = 28


NOISE_HELP = ("input corruption level (denoising): the standard deviation of added noise for gaussian, "
              "the share of pixels zeroed for dropout, the share of pixels set to 0 or 1 for salt_pepper")


@dataclass
class Corruption(FamilyConfig):
    """Input corruption: every autoencoder family that can be trained as a denoiser."""
    noise_level: float = key(0.0, NOISE_HELP, lo=0.0, hi=1.0)
    noise_type: str = key("gaussian", "input corruption (what --noise-level means depends on it)",
                          choices=["gaussian", "dropout", "salt_pepper"])

    def task(self, registered: str) -> str:
        """An autoencoder denoises exactly when its inputs are corrupted (a `dae` at level 0
        is the plain-AE baseline)."""
        from bench.config.tasks import twin

        return twin(registered, corrupted=self.noise_level > 0)


def cli_keys(config_cls) -> dict:
    """{name: dataclass field} of a family config that a user may set."""
    import dataclasses
    return {f.name: f for f in dataclasses.fields(config_cls)
            if f.name not in STRUCTURAL and not f.metadata.get("internal") and not f.name.startswith("_")}


def aliases(config_cls) -> dict:
    """{old name: key} of a family config's accepted aliases."""
    keys = cli_keys(config_cls)
    return {old: new for old, new in RENAMED.items() if new in keys}


__all__ = ["key", "STRUCTURAL", "FamilyConfig", "DatasetConfig", "Corruption", "ImageInput", "cli_keys", "aliases", "canonical", "RENAMED", "Optional"]
