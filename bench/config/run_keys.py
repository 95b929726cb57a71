"""The run keys and the catalogue of every key: declarations, types, ranges.

The run keys (data, optimisation, evaluation, speed, tracking) are declared here
(`RunKeys`); each dataset and each model family declares its own keys, with help, default
and range, in its `Config` dataclass (`bench.config.keys.key`). Flags, config files and sweep
YAMLs stay flat and are checked against the catalogue of every key (`FIELDS`); values are
converted (`coerce`) and range-checked (`validate_value`) here. A run's keys are resolved
into one frozen spec by `bench.config.spec.resolve`; the command line is `bench.config.cli`.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bench.config.keys import RENAMED, bare
from bench.config.tasks import names as task_names
from bench.core.errors import UsageError


def tool_names() -> list[str]:
    """The evaluation tools' names, from the files of `bench/tools/` alone (nothing imported:
    `run.py --help` stays fast, and the run keys never depend on the tools' code)."""
    import pkgutil

    folder = Path(__file__).resolve().parents[1] / "tools"
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


def _opt(default=None, help="", choices=None, lo=None, hi=None, lo_open=False, hi_open=False, path=False):
    """A run key; `path`: a folder, never given empty (an empty one would mean the current folder)."""
    return field(default=default, metadata=dict(help=help, choices=choices, lo=lo, hi=hi,
                                                lo_open=lo_open, hi_open=hi_open, path=path))


def _list(default, help="", **kw):
    return field(default_factory=lambda: list(default), metadata=dict(help=help, **kw))


@dataclass(frozen=True)
class RunKeys:
    # --- what to run
    model: str = _opt("ae", "registry name of the model (see `python registry.py`)")
    dataset: str = _opt("fashion_mnist", "registry name of the dataset")
    task: Optional[str] = _opt(None, "implied by the model; set only to check it",
                               choices=task_names())
    # --- data
    data_root: str = _opt("./data", "torchvision-layout data folder", path=True)
    image_size: Optional[int] = _opt(None, "resize images to this size (default: dataset's own)", lo=16, hi=512)
    val_fraction: float = _opt(0.1, "fraction of the training set held out for validation",
                               lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    limit_train: Optional[int] = _opt(None, "use at most N training images", lo=1)
    limit_test: Optional[int] = _opt(None, "use at most N test images", lo=1)
    # --- optimisation
    epochs: int = _opt(10, "training epochs", lo=1, hi=100000)
    batch_size: int = _opt(128, "batch size", lo=1, hi=65536)
    lr: float = _opt(1e-3, "Adam learning rate", lo=0.0, hi=1e6, lo_open=True)
    weight_decay: float = _opt(0.0, "Adam weight decay", lo=0.0, hi=10.0)
    adam_eps: float = _opt(1e-8, "Adam's epsilon (the IWAE paper's MNIST runs: 1e-4)", lo=0.0, hi=1.0, lo_open=True)
    lr_schedule: str = _opt("constant", "learning-rate schedule: constant, or iwae (Burda et al. 2016: --lr * "
                            "10^(-i/7) for 3^i epochs, i = 0..7, 3,280 epochs in all; the last rate after that)",
                            choices=["constant", "iwae"])
    seed: int = _opt(0, "random seed of training: initial weights, batch order, noise (runs are deterministic on CPU)",
                     lo=0, hi=2**32 - 1)
    split_seed: int = _opt(0, "random seed of the data: the train/validation split and randomly coloured images; "
                              "fixed by default, so runs over --seed differ in training randomness alone",
                           lo=0, hi=2**32 - 1)
    device: str = _opt("auto", "where to train", choices=["auto", "cpu", "cuda"])
    amp: str = _opt("off", "mixed precision on CUDA (auto: whichever of off and bf16 steps faster in a short "
                    "probe; always off on CPU)", choices=["off", "bf16", "fp16", "auto"])
    compile: bool = _opt(False, "torch.compile the model")
    channels_last: bool = _opt(False, "channels_last memory format for conv models")
    num_threads: Optional[int] = _opt(None, "torch CPU threads (default: all cores)", lo=1, hi=4096)
    select_on: str = _opt("val", "split whose metric picks best.pt: val (honest) or test (where an assignment asks for "
                          "the best test accuracy)", choices=["val", "test"])
    keep_epochs: list[int] = _list([], "epochs after which the weights are also kept as epoch-N.pt (a measure "
                                   "against epochs: bench.evaluate RUN --checkpoint epoch-N)", lo=1, hi=100000)
    max_params: Optional[int] = _opt(None, "refuse models with more parameters than this", lo=1)
    max_memory: Optional[float] = _opt(None, "refuse models whose weights, gradients and Adam state (16 bytes per "
                                       "parameter) need more GiB than this (default: 80% of the memory free at "
                                       "start; activations come on top)", lo=0.0, lo_open=True, hi=1e6)
    # --- evaluation
    eval: list[str] = _list([], f"evaluation tools after training: {', '.join(tool_names())}, or all")
    eval_sigmas: list[float] = _list([0.0, 0.1, 0.3, 0.5], "noise levels of the denoising matrix", lo=0.0, hi=1.0)
    sample_score: str = _opt("small", "feature space of --eval sample's Frechet distance: small (the dataset's own "
                             "small classifiers, offline; comparable within this project) or inception (the FID papers "
                             "report: InceptionV3 weights fetched once into the user cache; offline it falls back to "
                             "small and says so)", choices=["small", "inception"])
    nll_k: int = _opt(5000, "importance samples per test image of --eval nll's estimate of -log p(x) (the papers: "
                      "5,000)", lo=1, hi=100000)
    nll_grey: bool = _opt(False, "let --eval nll score a Bernoulli decoder on grey-level images (not binary: the "
                          "number is then no likelihood of those images, and is not comparable with papers)")
    embed_points: int = _opt(2000, "test images embedded by --eval embed (t-SNE and UMAP time grows with it)",
                             lo=10, hi=100000)
    embed_views: list[str] = _list(["2d", "3d", "noisy"], "what --eval embed draws: 2d (PCA, t-SNE, UMAP, and "
                                   "decision regions on the UMAP), 3d (the same three in 3-D), noisy (one t-SNE of "
                                   "clean and corrupted latents); each view is its own fits", choices=["2d", "3d", "noisy"])
    # --- tracking
    runs_dir: str = _opt("runs", "local run store", path=True)
    name: Optional[str] = _opt(None, "run name in W&B, tables and figures; the run folder keeps its generated id, and "
                                          "--resume NAME or bench.evaluate NAME finds the run by this name")
    wandb: Optional[str] = _opt(None, "W&B mode (default: online when logged in, else offline)",
                                choices=["online", "offline", "disabled"])
    project: str = _opt("aebench", "W&B project")
    entity: Optional[str] = _opt(None, "W&B entity")
    group: Optional[str] = _opt(None, "W&B group (sweeps use the sweep name)")
    tags: list[str] = _list([], "W&B tags, comma separated")
    sweep: Optional[str] = _opt(None, "sweep this run belongs to (set by bench.sweep and by the sweep YAML's "
                                      "command for `wandb agent`)")
    wandb_system: bool = _opt(True, "W&B console capture and system metrics (false: off, and W&B stays quiet)")
    verbose: bool = _opt(False, "also print W&B's own start-up banner and footer")
    wandb_artifacts: str = _opt("best", "checkpoints uploaded as a W&B `model` artifact (aliases best, latest)",
                                choices=["best", "all", "none"])
    resume: Optional[str] = _opt(None, "run directory or id to continue")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def copy_value(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _declared_fields(table: dict) -> dict:
    """Every model family's (or dataset's) user-settable keys, one field per name (a key several
    families declare shares one declaration from bench.config.keys; the first family's is kept): the catalogue
    that flags, config files and sweep YAMLs are checked against before a model is known."""
    from bench.config.keys import cli_keys

    out: dict = {}
    for name, entry in sorted(table.items()):
        hints = typing.get_type_hints(entry.config_cls)
        for key, f in cli_keys(entry.config_cls).items():
            if key not in out and key not in RUN_FIELDS:
                out[key] = (f, hints[key])
    return out


RUN_FIELDS = {f.name for f in dataclasses.fields(RunKeys)}
_TABLES: dict = {}


def key_tables() -> dict:
    """The catalogue of every key, built on first use: the run keys, every dataset's keys, every
    model family's keys, and their older names. Finding the families imports them (and torch),
    which `run.py --help` never needs: `FIELDS`, `MODEL_KEYS`, `DATASET_KEYS` and `ALIASES` are
    made when first read."""
    if not _TABLES:
        import registry

        family, dataset = _declared_fields(registry.MODELS), _declared_fields(registry.DATASETS)
        fields = {f.name: f for f in dataclasses.fields(RunKeys)}
        hints = typing.get_type_hints(RunKeys)
        for key, (f, hint) in list(dataset.items()) + list(family.items()):
            fields[key], hints[key] = f, hint
        aliases = {old: new for old, new in RENAMED.items() if new in fields}
        _TABLES.update(FIELDS=fields, MODEL_KEYS=frozenset(family), DATASET_KEYS=frozenset(dataset),
                       ALIASES=aliases, hints=hints)
    return _TABLES


def __getattr__(name: str):
    if name in ("FIELDS", "MODEL_KEYS", "DATASET_KEYS", "ALIASES"):
        return key_tables()[name]
    raise AttributeError(f"module 'bench.config.run_keys' has no attribute {name!r}")


# Keys that may differ between a run and its resumption: where it runs, not what it computes.
RESUME_FREE_KEYS = {"device", "wandb", "runs_dir", "data_root", "num_threads", "resume", "config",
                    "eval", "sample_score", "embed_points", "embed_views", "compile", "max_memory", "wandb_system", "wandb_artifacts", "verbose"}


def base_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return base_type(args[0])
    return tp


def _parse_bool(text):
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_list(text, item):
    if isinstance(text, (list, tuple)):
        return [item(v) for v in text]
    text = str(text).strip().strip("[]()")
    parts = [p for p in text.replace(",", " ").split() if p]
    return [item(p.strip("'\"")) for p in parts]


def _parse_int(value) -> int:
    """Integers only: `3`, `1e3`, `3.0` yes; `2.5e0`, `true`, `inf` no (no silent truncation)."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        f = float(text)  # 1e3 is how W&B and YAML write a thousand
        if not math.isfinite(f) or not f.is_integer():
            raise ValueError from None
        return int(f)


def _parse_float(value) -> float:
    """Finite numbers only; a boolean is not a number."""
    if isinstance(value, bool):
        raise ValueError
    f = float(value)
    if not math.isfinite(f):
        raise ValueError
    return f


def _is_null(value) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("none", "null")


def coerce(key: str, value, declared: tuple | None = None):
    """Convert a raw value (flag text, YAML/JSON value) to the key's declared type. `declared`:
    (field, type hint) of the chosen family's declaration (default: the catalogue's)."""
    t = key_tables()
    f, hint = declared or (t["FIELDS"][bare(key)], t["hints"][bare(key)])
    tp = base_type(hint)
    nullable = f.default is None
    if value is None or (nullable and _is_null(value)):
        if not nullable:
            raise UsageError(f"--{key.replace('_', '-')}: a value is required (no default of None)")
        return None
    try:
        if typing.get_origin(tp) is list:
            item = typing.get_args(tp)[0]
            parse = {int: _parse_int, float: _parse_float}.get(item, item)
            if isinstance(value, (dict, bool)):
                raise ValueError
            items = _parse_list(value, parse)
            if nullable and not items:
                raise UsageError(f"--{key.replace('_', '-')}: give at least one value, e.g. 32,64")
            return items
        if tp is bool:
            return _parse_bool(value)
        if tp is int:
            return _parse_int(value)
        if tp is float:
            return _parse_float(value)
        if isinstance(value, (bool, list, tuple, dict)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError, OverflowError):
        name = {"bool": "true/false", "list": "a comma-separated list", "int": "an integer",
                "float": "a finite number", "str": "text"}.get(
            getattr(tp, "__name__", ""), getattr(tp, "__name__", str(tp)))
        if typing.get_origin(tp) is list:
            name = f"a comma-separated list of {typing.get_args(tp)[0].__name__}"
        raise UsageError(f"--{key.replace('_', '-')}: expected {name}, got {value!r}") from None


def meta_default(key: str, declared: tuple | None = None):
    return (declared[0] if declared else key_tables()["FIELDS"][bare(key)]).default


def validate_value(key: str, value, declared: tuple | None = None):
    """Range and choice checks declared on the field; one-line UsageError on failure."""
    meta = (declared[0] if declared else key_tables()["FIELDS"][bare(key)]).metadata
    flag = "--" + key.replace("_", "-")
    if value is None:
        return
    if meta.get("path") and isinstance(value, str) and not value.strip():
        raise UsageError(f"{flag}: empty; give a folder (or leave the flag out for {meta_default(key, declared)!r})")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if meta.get("choices") and v not in meta["choices"]:
            import difflib
            near = difflib.get_close_matches(str(v), [str(c) for c in meta["choices"]], n=1, cutoff=0.5)
            raise UsageError(f"{flag}: unknown value {v!r}" + (f"; did you mean {near[0]}?" if near else "")
                             + f" (valid: {', '.join(meta['choices'])})")
        lo, hi = meta.get("lo"), meta.get("hi")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if v != v:  # NaN
                raise UsageError(f"{flag}: got NaN")
            bad_lo = lo is not None and (v <= lo if meta.get("lo_open") else v < lo)
            bad_hi = hi is not None and (v >= hi if meta.get("hi_open") else v > hi)
            if bad_lo or bad_hi:
                left = "(" if meta.get("lo_open") else "["
                right = ")" if meta.get("hi_open") else "]"
                lo_s = "-inf" if lo is None else str(lo) if isinstance(lo, int) else f"{lo:g}"
                hi_s = "inf" if hi is None else str(hi) if isinstance(hi, int) else f"{hi:g}"
                raise UsageError(f"{flag}: {v!r} is out of range; valid: {left}{lo_s}, {hi_s}{right}")


def default_of(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def default_record(entry, dataset_entry=None) -> dict:
    """The flat record of a run of a model (its registry entry) given no keys: run-key
    defaults, its dataset's and its family's defaults, then the model's own (before keys
    derived from others; nothing is required)."""
    from bench.config.keys import cli_keys

    out = {f.name: copy_value(default_of(f)) for f in dataclasses.fields(RunKeys)}
    for cls in ([dataset_entry.config_cls] if dataset_entry else []) + [entry.config_cls]:
        out.update({k: copy_value(default_of(f)) for k, f in cli_keys(cls).items()})
    out.update({k: copy_value(v) for k, v in entry.defaults})
    return dict(out, model=entry.name)
