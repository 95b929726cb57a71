"""Names -> constructors for every model and dataset.

Importing a model module registers it (`@register_model`), as in timm; adding a model
never touches a central table and duplicate names are errors. `python registry.py`
lists everything with a one-line description and the parameter count at the default
configuration.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
from dataclasses import dataclass
from typing import Callable

from bench.core.errors import UsageError

# Filled by the @register_* decorators as the family modules are imported; read them
# through `registry.MODELS` / `registry.DATASETS` (or the functions below), which first
# import every module of bench/models and bench/data: a new family is one new file.
_MODELS: dict[str, "ModelEntry"] = {}
_DATASETS: dict[str, "DatasetEntry"] = {}
_FAMILY_PACKAGES = ("bench.models", "bench.data", "bench.tasks")  # a task file may register its model
_discovery = "pending"


def discover() -> None:
    """Import every module of the family packages once (registration happens on import)."""
    global _discovery
    if _discovery != "pending":
        return
    _discovery = "running"
    import importlib
    import pkgutil
    try:
        for pkg in _FAMILY_PACKAGES:
            package = importlib.import_module(pkg)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                importlib.import_module(f"{pkg}.{info.name}")
    except BaseException:
        _discovery = "pending"
        raise
    _discovery = "done"


def __getattr__(name: str):
    if name in ("MODELS", "DATASETS"):
        discover()
        return _MODELS if name == "MODELS" else _DATASETS
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable
    config_cls: type
    default_input: tuple[int, int, int]  # (C, H, W) used for the default build
    task: str
    hidden: bool = False
    defaults: tuple = ()  # (key, value) pairs: this model's defaults over its family's

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def config_keys(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.config_cls)}

    def config(self, values: dict | None = None, in_shape=None, num_classes=None):
        """This model's family Config, resolved: family defaults < this model's defaults <
        `values` (keys the family does not take, and None, are ignored here; the run's
        resolution refuses them first), then the family's derived keys. `in_shape` and
        `num_classes` fill what the model takes from the data."""
        from bench.config.keys import aliases

        keys, renamed = self.config_keys(), aliases(self.config_cls)
        given = {renamed.get(k, k): v for k, v in (values or {}).items()}
        kw = dict(self.defaults)
        kw.update({k: tuple(v) if isinstance(v, list) else v for k, v in given.items()
                   if k in keys and v is not None})
        cfg = self.with_data(self.config_cls(**kw), in_shape, num_classes)
        cfg.derive()
        return cfg

    def with_data(self, cfg, in_shape=None, num_classes=None):
        """`cfg` with what the model takes from the data: channels, (square) size, classes."""
        c, h, w = in_shape or self.default_input
        if h != w:
            raise UsageError(f"{self.name}: only square images are supported, got {h}x{w}")
        given = {"in_channels": c, "image_size": h, "num_classes": num_classes}
        keys = self.config_keys()
        return dataclasses.replace(cfg, **{k: v for k, v in given.items() if k in keys and v is not None})

    def task_of(self, cfg) -> str:
        return cfg.task(self.task)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    fn: Callable
    shape: tuple[int, int, int]
    kind: str  # "labels", "masks" or "unlabeled"
    num_classes: int
    config_cls: type  # the dataset's own keys (bench.config.keys.DatasetConfig)
    fixture: Callable | None  # writes a few images in the dataset's real on-disk format (None: made in memory)

    def config(self, values: dict | None = None):
        """This dataset's Config from its own keys (already checked), then its cross-key checks."""
        cfg = self.config_cls(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in (values or {}).items() if v is not None})
        cfg.derive()
        return cfg

    def input_shape(self, image_size: int | None = None) -> tuple[int, int, int]:
        """(C, H, W) of the images a run feeds its model: the dataset's own, or resized square."""
        c, h, w = self.shape
        return (c, image_size, image_size) if image_size else (c, h, w)

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]


def register_model(*, config: type, input: tuple[int, int, int] = (1, 28, 28),
                   task: str = "reconstruct", hidden: bool = False, defaults: dict | None = None):
    """`fn(cfg)` builds the model from its family's resolved Config; `defaults` are this
    model's values of family keys where they differ from the family's own."""
    def deco(fn):
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        unknown = set(defaults or {}) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise ValueError(f"model {fn.__name__!r}: defaults for keys its config lacks: {sorted(unknown)}")
        _MODELS[fn.__name__] = ModelEntry(fn.__name__, fn, config, tuple(input), task, hidden,
                                          tuple((defaults or {}).items()))
        return fn
    return deco


def register_dataset(*, shape: tuple[int, int, int], kind: str = "labels", num_classes: int = 10,
                     config: type | None = None, fixture: Callable | None = None):
    """`fn(cfg, task)` loads the dataset (a `bench.data.Source`). `config`: the dataset's own
    keys (a `bench.config.keys.DatasetConfig`). `fixture(root, patch)`: writes a few images in the real
    on-disk format under `root` and returns the keys needed to load them (or None); `patch`
    has `setattr` (pytest's monkeypatch) for checksum tables. The generated tests use it."""
    def deco(fn):
        from bench.config.keys import DatasetConfig

        if fn.__name__ in _DATASETS:
            raise ValueError(f"dataset {fn.__name__!r} registered twice")
        _DATASETS[fn.__name__] = DatasetEntry(fn.__name__, fn, tuple(shape), kind, num_classes,
                                              config or DatasetConfig, fixture)
        return fn
    return deco


def _unknown(kind: str, name: str, table: dict) -> UsageError:
    valid = sorted(k for k, v in table.items() if not getattr(v, "hidden", False))
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}")


def model_entry(name: str) -> ModelEntry:
    discover()
    if name not in _MODELS:
        raise _unknown("model", name, _MODELS)
    return _MODELS[name]


def dataset_entry(name: str) -> DatasetEntry:
    discover()
    if name not in _DATASETS:
        raise _unknown("dataset", name, _DATASETS)
    return _DATASETS[name]


def create_model(name: str, in_shape=None, num_classes: int = 10, /, **kwargs):
    """Build a registered model for inputs of shape (C, H, W) from flat keys (a recorded
    config.json, or a notebook's keywords); keys its family does not take, and None, are
    dropped."""
    entry = model_entry(name)
    return build_model(entry, entry.config(kwargs, in_shape, num_classes))


def build_model(entry: ModelEntry, cfg, task: str | None = None):
    """The model of a resolved family Config; its task is `task` (a run's spec decided it), or
    the one its config implies."""
    model = entry.fn(cfg)
    model.task = task or entry.task_of(cfg)
    return model


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def on_meta():
    """Build (and run) models on the meta device: shapes and parameter counts without memory,
    weights or random numbers drawn (the global RNG is left as it was). A family that loads
    weights warns that meta tensors ignore them; those warnings are silenced."""
    import warnings

    import torch

    with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def forward_terms(entry: ModelEntry, in_shape, num_classes: int) -> set[str] | None:
    """The scalar terms (loss, mse, kl, acc, ...) a training forward pass of this model at
    its defaults returns, found on the meta device (no memory, no weights, no random
    numbers drawn); None for a family that cannot be built there (it loads weights or a run)."""
    import torch

    try:
        cfg = entry.config({}, tuple(in_shape), num_classes)
        with on_meta():
            model = build_model(entry, cfg).train()
            x = torch.rand(2, *in_shape)
            from bench.config.tasks import TASKS

            y = {"labels": torch.zeros(2, dtype=torch.long),
                 "masks": torch.zeros(2, 1, *tuple(in_shape)[1:])}.get(TASKS[entry.task].targets)
            out = model(x, y)
    except Exception:  # noqa: BLE001 (UsageError included: the family needs what a dry build lacks)
        return None
    return {k for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}


def describe() -> str:
    discover()
    lines = ["Models", "------"]
    for name, e in sorted(_MODELS.items()):
        if e.hidden:
            continue
        # Counting never needs downloaded weights.
        extra = {"pretrained": False} if "pretrained" in e.config_keys() else {}
        n = count_params(create_model(name, None, 10, **extra))
        c, h, w = e.default_input
        lines.append(f"  {name:<16} {n:>11,} params  {c}x{h}x{w:<4} {e.task:<11} {e.description}")
    lines += ["", "Datasets", "--------"]
    for name, d in sorted(_DATASETS.items()):
        c, h, w = d.shape
        lines.append(f"  {name:<16} {c}x{h}x{w:<8} {d.kind:<9} {d.description}")
    return "\n".join(lines)


def main():
    print(describe())


if __name__ == "__main__":
    import registry as _self  # the importable module holds the tables, not __main__

    _self.main()
