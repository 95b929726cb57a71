"""The typed run configuration and its command-line parser.

Two levels. The run keys (data, optimisation, evaluation, speed, tracking) are declared
here (`RunKeys`); each model family declares its own keys, with help, default and range,
in its `Config` dataclass (`bench.keys.key`). A run's flat keys are resolved run keys
first; once `--model` is known, its family's Config resolves the rest (`RunConfig.family`)
and refuses keys it does not take. Flags, config files and sweep YAMLs stay flat and are
checked against the catalogue of every key (`FIELDS`). Flags accept `--key value` and
`--key=value`, with dashes or underscores (W&B agents pass `--noise_level=0.1`); older
key names are accepted as aliases (`noise_std`).
Precedence: defaults < the file named by $AEBENCH_CONFIG < `--config FILE` < flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from bench.errors import UsageError, yaml_problem
from bench.keys import RENAMED, canonical, older_name


def tool_names() -> list[str]:
    """The evaluation tools' names, from the files of `bench/tools/` alone (nothing imported:
    `run.py --help` stays fast, and the run keys never depend on the tools' code)."""
    import pkgutil

    folder = Path(__file__).resolve().parent / "tools"
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


def _opt(default=None, help="", choices=None, lo=None, hi=None, lo_open=False, hi_open=False, path=False):
    """A run key; `path`: a folder, never given empty (an empty one would mean the current folder)."""
    return field(default=default, metadata=dict(help=help, choices=choices, lo=lo, hi=hi,
                                                lo_open=lo_open, hi_open=hi_open, path=path))


def _list(default, help="", **kw):
    return field(default_factory=lambda: list(default), metadata=dict(help=help, **kw))


@dataclass
class RunKeys:
    # --- what to run
    model: str = _opt("ae", "registry name of the model (see `python registry.py`)")
    dataset: str = _opt("fashion_mnist", "registry name of the dataset")
    task: Optional[str] = _opt(None, "implied by the model; set only to check it",
                               choices=["reconstruct", "denoise", "classify", "segment"])
    # --- data
    data_root: str = _opt("./data", "torchvision-layout data folder", path=True)
    image_size: Optional[int] = _opt(None, "resize images to this size (default: dataset's own)", lo=16, hi=512)
    val_fraction: float = _opt(0.1, "fraction of the training set held out for validation",
                               lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    limit_train: Optional[int] = _opt(None, "use at most N training images", lo=1)
    limit_test: Optional[int] = _opt(None, "use at most N test images", lo=1)
    color_mode: str = _opt("class", "colored_mnist colouring", choices=["class", "random"])
    label_attr: str = _opt("Smiling", "celeba attribute used as the label")
    train_split: Optional[str] = _opt(None, "dataset split to train on (stl10: train|unlabeled)")
    # --- optimisation
    epochs: int = _opt(10, "training epochs", lo=1, hi=100000)
    batch_size: int = _opt(128, "batch size", lo=1, hi=65536)
    lr: float = _opt(1e-3, "Adam learning rate", lo=0.0, hi=1e6, lo_open=True)
    weight_decay: float = _opt(0.0, "Adam weight decay", lo=0.0, hi=10.0)
    seed: int = _opt(0, "random seed (runs are deterministic on CPU)", lo=0, hi=2**32 - 1)
    device: str = _opt("auto", "where to train", choices=["auto", "cpu", "cuda"])
    amp: str = _opt("off", "mixed precision on CUDA (auto: whichever of off and bf16 steps faster in a short "
                    "probe; always off on CPU)", choices=["off", "bf16", "fp16", "auto"])
    compile: bool = _opt(False, "torch.compile the model")
    channels_last: bool = _opt(False, "channels_last memory format for conv models")
    num_threads: Optional[int] = _opt(None, "torch CPU threads (default: all cores)", lo=1, hi=4096)
    select_on: str = _opt("val", "split whose metric picks best.pt: val (honest) or test (where a seed asks for "
                          "the best test accuracy)", choices=["val", "test"])
    max_params: Optional[int] = _opt(None, "refuse models with more parameters than this", lo=1)
    max_memory: Optional[float] = _opt(None, "refuse models whose weights, gradients and Adam state (16 bytes per "
                                       "parameter) need more GiB than this (default: 80% of the memory free at "
                                       "start; activations come on top)", lo=0.0, lo_open=True, hi=1e6)
    # --- evaluation
    eval: list[str] = _list([], f"evaluation tools after training: {', '.join(tool_names())}, or all")
    eval_sigmas: list[float] = _list([0.0, 0.1, 0.3, 0.5], "noise levels of the denoising matrix", lo=0.0, hi=1.0)
    embed_points: int = _opt(2000, "test images embedded by --eval embed (t-SNE and UMAP time grows with it)",
                             lo=10, hi=100000)
    embed_views: list[str] = _list(["2d", "3d", "noisy"], "what --eval embed draws: 2d (PCA, t-SNE, UMAP, and "
                                   "decision regions on the UMAP), 3d (the same three in 3-D), noisy (one t-SNE of "
                                   "clean and corrupted latents); each view is its own fits", choices=["2d", "3d", "noisy"])
    # --- tracking
    runs_dir: str = _opt("runs", "local run store", path=True)
    name: Optional[str] = _opt(None, "run name (default: generated)")
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


@dataclass
class RunConfig(RunKeys):
    """A resolved run configuration, in two levels: the run keys above, and `family`, the
    chosen model family's own Config (`bench.keys.FamilyConfig`), resolved from the
    remaining flat keys once `--model` is known. A family key reads flat (`cfg.latent_dim`)
    from the family; `to_dict()` is the flat record kept in config.json and checkpoints."""
    family: object = field(default=None, repr=False, compare=False)

    def __getattr__(self, name: str):
        family = self.__dict__.get("family")
        if family is not None and not name.startswith("_") and hasattr(family, name):
            return _copy(getattr(family, name))  # lists, as in the record
        raise AttributeError(f"the config of model {self.__dict__.get('model')!r} has no key {name!r}")

    def to_dict(self) -> dict:
        out = {f.name: _copy(getattr(self, f.name)) for f in dataclasses.fields(RunKeys)}
        if self.family is not None:
            out.update(self.family.to_dict())
        return out


def _copy(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _family_fields() -> dict:
    """Every model family's user-settable keys, one field per name (a key several families
    declare shares one spec from bench.keys; the first family's is kept): the catalogue
    that flags, config files and sweep YAMLs are checked against before a model is known."""
    import registry
    from bench.keys import cli_keys

    out: dict = {}
    for name, entry in sorted(registry.MODELS.items()):
        hints = typing.get_type_hints(entry.config_cls)
        for key, f in cli_keys(entry.config_cls).items():
            if key not in out and key not in RUN_FIELDS:
                out[key] = (f, hints[key])
    return out


RUN_FIELDS = {f.name for f in dataclasses.fields(RunKeys)}
_TABLES: dict = {}


def _tables() -> dict:
    """The catalogue of every key, built on first use: the run keys, then every model
    family's keys and their aliases. Finding the families imports them (and torch), which
    `run.py --help` never needs: `FIELDS`, `MODEL_KEYS` and `ALIASES` are made when first read."""
    if not _TABLES:
        family = _family_fields()
        fields = {f.name: f for f in dataclasses.fields(RunKeys)}
        hints = typing.get_type_hints(RunKeys)
        for key, (f, hint) in family.items():
            fields[key], hints[key] = f, hint
        aliases = {old: new for old, new in RENAMED.items() if new in fields}
        _TABLES.update(FIELDS=fields, MODEL_KEYS=frozenset(family), ALIASES=aliases, hints=hints)
    return _TABLES


def __getattr__(name: str):
    if name in ("FIELDS", "MODEL_KEYS", "ALIASES"):
        return _tables()[name]
    raise AttributeError(f"module 'bench.config' has no attribute {name!r}")


# Keys that may differ between a run and its resumption: where it runs, not what it computes.
RESUME_FREE_KEYS = {"device", "wandb", "runs_dir", "data_root", "num_threads", "resume", "config",
                    "eval", "embed_points", "embed_views", "compile", "max_memory", "wandb_system", "wandb_artifacts", "verbose"}


def _base_type(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
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


def coerce(key: str, value, spec: tuple | None = None):
    """Convert a raw value (flag text, YAML/JSON value) to the key's declared type. `spec`:
    (field, type hint) of the chosen family's declaration (default: the catalogue's)."""
    t = _tables()
    f, hint = spec or (t["FIELDS"][key], t["hints"][key])
    tp = _base_type(hint)
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


def meta_default(key: str, spec: tuple | None = None):
    return (spec[0] if spec else _tables()["FIELDS"][key]).default


def validate_value(key: str, value, spec: tuple | None = None):
    """Range and choice checks declared on the field; one-line UsageError on failure."""
    meta = (spec[0] if spec else _tables()["FIELDS"][key]).metadata
    flag = "--" + key.replace("_", "-")
    if value is None:
        return
    if meta.get("path") and isinstance(value, str) and not value.strip():
        raise UsageError(f"{flag}: empty; give a folder (or leave the flag out for {meta_default(key, spec)!r})")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if meta.get("choices") and v not in meta["choices"]:
            raise UsageError(f"{flag}: unknown value {v!r}; valid: {', '.join(meta['choices'])}")
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


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# How `--help` groups the run keys; each model family's keys follow "optimisation" in a
# group of their own, taken from the family's config (`family_groups`).
HELP_GROUPS = [
    ("what to run", ["model", "dataset", "task"]),
    ("data", ["data_root", "image_size", "val_fraction", "limit_train", "limit_test", "color_mode", "label_attr",
              "train_split"]),
    ("optimisation", ["epochs", "batch_size", "lr", "weight_decay", "seed", "select_on", "max_params", "max_memory"]),
    ("evaluation after training", ["eval", "eval_sigmas", "embed_points", "embed_views"]),
    ("speed", ["device", "amp", "compile", "channels_last", "num_threads"]),
    ("run store and W&B", ["runs_dir", "name", "resume", "wandb", "project", "entity", "group", "tags", "sweep",
                           "wandb_system", "wandb_artifacts", "verbose"]),
]


def family_groups(model: str | None = None) -> list[tuple[str, str, list[tuple[str, object]]]]:
    """(title, note, [(key, this family's default)]) per model family config, in registry
    order (only `model`'s family when given); a key shared with a family listed earlier is
    named in the note, not repeated."""
    import registry
    from bench.keys import cli_keys

    by_cls: dict[type, list[str]] = {}
    chosen = registry.model_entry(model) if model else None
    for name, entry in sorted(registry.MODELS.items()):
        if chosen is not None and entry.config_cls is not chosen.config_cls:
            continue
        names = by_cls.setdefault(entry.config_cls, [])
        if not entry.hidden:
            names.append(name)
    shown, out = set(), []
    for cls, names in by_cls.items():
        fields = cli_keys(cls)
        defaults = {k: _default(f) for k, f in fields.items()}
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ and not cls.__doc__.startswith(cls.__name__) \
            else ", ".join(names)
        again = [k for k in fields if k in shown]
        note = ("also takes " + ", ".join(f"--{k.replace('_', '-')} (default {_show(defaults[k])})" for k in again)
                + " (listed above)") if again else ""
        out.append((f"model keys: {doc}", note, [(k, defaults[k]) for k in fields if k not in shown]))
        shown.update(fields)
    return out


def _default(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def default_record(model: str) -> dict:
    """The flat record of a run of `model` given no keys: run-key defaults, its family's
    defaults, then the model's own (before keys derived from others; nothing is required)."""
    import registry
    from bench.keys import cli_keys

    entry = registry.model_entry(model)
    out = {f.name: _copy(_default(f)) for f in dataclasses.fields(RunKeys)}
    out.update({k: _copy(_default(f)) for k, f in cli_keys(entry.config_cls).items()})
    out.update({k: _copy(v) for k, v in entry.defaults})
    return dict(out, model=model)


def _show(v) -> str:
    if v is None or v == "" or v == [] or v == ():
        return "none"
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _help_text(key: str, f, default=dataclasses.MISSING) -> str:
    """One help line: what the key does, its choices or range, its default, each once."""
    meta = f.metadata
    parts = [meta.get("help", "")]  # choices are in the metavar, {a,b}
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None or hi is not None:
        left, right = ("(" if meta.get("lo_open") else "["), (")" if meta.get("hi_open") else "]")
        parts.append(f"{left}{'-inf' if lo is None else lo:g}, {'inf' if hi is None else hi:g}{right}"
                     if not isinstance(lo, int) or not isinstance(hi, (int, type(None)))
                     else f"{left}{lo}, {'inf' if hi is None else hi}{right}")
    if default is dataclasses.MISSING:
        default = _default(f)
    if "default" not in parts[0] and "(required)" not in parts[0]:
        parts.append(f"(default: {_show(default)})")
    if older_name(key):
        parts.append(f"(older name, still accepted: --{older_name(key).replace('_', '-')})")
    return " ".join(p for p in parts if p).replace("%", "%%")


def _metavar(tp, meta) -> str:
    if meta.get("choices"):
        return "{" + ",".join(meta["choices"]) + "}"
    if typing.get_origin(tp) is list:
        return "A,B,..."
    return {int: "INT", float: "FLOAT", bool: "BOOL"}.get(tp, "TEXT")


def build_parser(prog="run.py", families=True, model: str | None = None) -> argparse.ArgumentParser:
    """The command line: every key as `--key value` or `--key=value`; the underscore spelling
    a W&B agent passes (`--noise_level=0.1`) is accepted and not listed twice. With
    `families=False` only the run keys (no torch import: `run.py --help`); with `model`, the
    run keys and that model family's keys (`run.py --help --model vae`)."""
    parser = _Parser(prog=prog, description="Train, evaluate and log one autoencoder run.",
                     argument_default=argparse.SUPPRESS, allow_abbrev=False)
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of keys; flags override it")
    parser.add_argument("--list", action="store_true", help="list models and datasets and exit")
    parser.add_argument("--print-config", action="store_true", dest="print_config",
                        help="print the fully resolved config of this run and exit (nothing is trained)")
    if families or model:
        tables = _tables()
        fields, hints = tables["FIELDS"], tables["hints"]
        fam = family_groups(model)
    else:  # run keys only: nothing of the model families (nor torch) is imported
        fields = {f.name: f for f in dataclasses.fields(RunKeys)}
        hints = typing.get_type_hints(RunKeys)
        fam = [("model keys", "each model family takes keys of its own; list them with "
                "`python run.py --help --model NAME` (names: `python run.py --list`)", [])]
    grouped = {k for _, keys in HELP_GROUPS for k in keys}
    groups = [(t, "", [(k, dataclasses.MISSING) for k in keys]) for t, keys in HELP_GROUPS[:3]] + fam \
        + [(t, "", [(k, dataclasses.MISSING) for k in keys]) for t, keys in HELP_GROUPS[3:]] \
        + [("other", "", [(k, dataclasses.MISSING) for k in RUN_FIELDS if k not in grouped])]
    for title, note, keys in groups:
        group = parser.add_argument_group(title, note or None)
        for key, default in keys:
            if key not in fields:
                continue
            f, tp = fields[key], _base_type(hints[key])
            kwargs = dict(dest=key, help=_help_text(key, f, default), metavar=_metavar(tp, f.metadata))
            if tp is bool:
                # `--batchnorm` alone means true; `--batchnorm=False` from an agent means false.
                kwargs.update(nargs="?", const="true")
            group.add_argument("--" + key.replace("_", "-"), **kwargs)
            hidden = {"--" + key} - {"--" + key.replace("_", "-")}
            if older_name(key):  # an older name, still accepted (shipped sweeps, W&B agents)
                old = older_name(key)
                hidden |= {"--" + old, "--" + old.replace("_", "-")}
            if hidden:
                group.add_argument(*sorted(hidden), **dict(kwargs, help=argparse.SUPPRESS))
    return parser


def print_help(argv: list[str], prog: str = "run.py") -> bool:
    """`--help` (with `--model NAME`, that family's keys too): printed, and True; False when the
    command line does not ask for help. The same text for `python run.py` and `aebench-run`."""
    if not any(a in ("-h", "--help") for a in argv):
        return False
    build_parser(prog=prog, families=False, model=help_model(argv)).print_help()
    return True


def help_model(argv: list[str]) -> str | None:
    """The model named on a `--help` command line (`--model vae` or `--model=vae`), if any."""
    for i, a in enumerate(argv):
        if a in ("--model",) and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--model="):
            return a.split("=", 1)[1]
    return None


def _unknown_flag_message(args):
    known = list(_tables()["FIELDS"]) + list(_tables()["ALIASES"])
    names = ["--" + k.replace("_", "-") for k in known] + ["--config", "--list", "--print-config"]
    flags = [a.split("=")[0] for a in args if a.startswith("-")]
    bad = flags[0] if flags else args[0]
    close = difflib.get_close_matches(bad.replace("_", "-"), names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `python run.py --help`"
    return f"unknown argument {bad}{hint}"


CONFIG_MAX_BYTES = 1 << 20  # a config file is a page of keys; anything far larger is not one


def load_config_file(path: str, source: str = "--config") -> dict:
    """A config file's keys; `source` names where its path came from in every error."""
    try:
        return _load_config_file(path)
    except UsageError as e:
        if source == "--config":
            raise
        raise UsageError(str(e).replace("--config:", f"{source} (the config file it names):", 1)) from None


def _load_config_file(path: str) -> dict:
    p = Path(path)
    kind = "JSON" if p.suffix == ".json" else "YAML"
    try:
        if not p.is_file():  # a FIFO would block, /dev/zero never ends, a folder is not a file
            raise UsageError(f"--config: {path} is not a regular file" if p.exists() else
                             f"--config: cannot read {path}: No such file or directory")
        if p.stat().st_size > CONFIG_MAX_BYTES:
            raise UsageError(f"--config: {path} is {p.stat().st_size:,} bytes; a config file is at most "
                             f"{CONFIG_MAX_BYTES:,}")
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise UsageError(f"--config: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"--config: {path} is not UTF-8 text (byte {e.start})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"--config: {path} is not valid {kind}: {yaml_problem(e)}") from None
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--config: {path} is not valid {kind}: {first}") from None
    except RecursionError:
        raise UsageError(f"--config: {path} is nested too deeply to be a config file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} must hold a mapping of keys to values, got {type(data).__name__}")
    data = canonical({str(k).replace("-", "_"): v for k, v in data.items()})
    fields = _tables()["FIELDS"]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"--config: unknown key {unknown[0]!r} in {path}{hint}")
    return data


def parse_args(argv: list[str], prog="run.py") -> tuple[dict, set]:
    """Parse flags into raw overrides. Returns (overrides, actions asked for: "list", "print_config")."""
    parser = build_parser(prog)
    ns, rest = parser.parse_known_args(argv)
    if rest:
        raise UsageError(_unknown_flag_message(rest))
    raw = vars(ns)
    actions = {a for a in ("list", "print_config") if raw.pop(a, False)}
    merged = {}
    if os.environ.get("AEBENCH_CONFIG"):  # site or session defaults, below --config and flags
        merged.update(load_config_file(os.environ["AEBENCH_CONFIG"], "$AEBENCH_CONFIG"))
    if "config" in raw:
        merged.update(load_config_file(raw.pop("config")))
    merged.update(raw)
    return merged, actions


def resolve(overrides: dict) -> RunConfig:
    """Defaults < overrides, in two levels: the run keys first; then the chosen model's
    family resolves the rest (its defaults, this model's, the values given, derived keys).
    Every value is coerced and range-checked; a key the model does not take is refused."""
    overrides = canonical(overrides)
    run_keys = {f.name: f for f in dataclasses.fields(RunKeys)}
    hints = typing.get_type_hints(RunKeys)
    cfg = RunConfig()
    family_values = {}
    for key, raw in overrides.items():
        if key not in run_keys:
            if key in _tables()["FIELDS"]:  # a bad value is named as such, whichever model takes the key
                validate_value(key, coerce(key, raw))
            family_values[key] = raw
            continue
        spec = (run_keys[key], hints[key])
        value = coerce(key, raw, spec)
        validate_value(key, value, spec)
        setattr(cfg, key, value)
    if "model" not in overrides:
        cfg.model = _implied_model(family_values) or cfg.model
    cfg.family = family_config(cfg, family_values)
    return cfg


def _implied_model(family_values: dict) -> str | None:
    """The model a family key chooses when no model is named (`--probe-from` -> linear_probe)."""
    fields = _tables()["FIELDS"]
    for key, value in family_values.items():
        if key in fields and value is not None and fields[key].metadata.get("implies_model"):
            return fields[key].metadata["implies_model"]
    return None


def family_config(cfg: RunConfig, values: dict):
    """The chosen model family's Config from flat values, each checked against its own
    declaration; a key of another family, or of none, is refused in one line."""
    import registry
    from bench.keys import cli_keys

    entry = registry.model_entry(cfg.model)
    fields, hints = cli_keys(entry.config_cls), typing.get_type_hints(entry.config_cls)
    checked = {}
    for key, raw in values.items():
        if key not in fields:
            raise UsageError(_foreign_key_message(key, cfg.model, fields))
        spec = (fields[key], hints[key])
        checked[key] = coerce(key, raw, spec)
        if checked[key] == []:  # a family's list keys (widths, dims) always need a value
            raise UsageError(f"--{key.replace('_', '-')}: give at least one value, e.g. 32,64")
        validate_value(key, checked[key], spec)
    return entry.config(dict(checked, runs_dir=cfg.runs_dir))


def _foreign_key_message(key: str, model: str, fields: dict) -> str:
    flag = "--" + key.replace("_", "-")
    if key in _tables()["FIELDS"]:
        return (f"{flag}: model {model} does not take it; its keys: "
                f"{', '.join('--' + k.replace('_', '-') for k in sorted(fields)) or 'none'}")
    close = difflib.get_close_matches(key, list(_tables()["FIELDS"]), n=3)
    hint = f"; did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?" if close else ""
    return f"{flag}: unknown key{hint}"
