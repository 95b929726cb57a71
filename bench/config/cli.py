"""The command line of a run: flags, `--help`, and config files.

Flags accept `--key value` and `--key=value`, with dashes or underscores (W&B agents pass
`--noise_level=0.1`); older key names are accepted too (`--noise-std`). `--help` groups the
run keys, each dataset's keys and each model family's keys (`--help --model vae` shows only
that family's). Precedence: defaults < the file named by $AEBENCH_CONFIG < `--config FILE` < flags.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import functools
import json
import os
import typing
from pathlib import Path

import yaml

from bench.config.keys import bare, canonical, older_name, scope_of
from bench.config.run_keys import RUN_FIELDS, RunKeys, base_type, default_of, key_tables
from bench.core.errors import UsageError, yaml_problem


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# How `--help` groups the run keys; each dataset's keys follow "data", and each model family's
# keys follow "optimisation", in groups of their own taken from their configs (`key_groups`).
HELP_GROUPS = [
    ("what to run", ["model", "dataset", "task"]),
    ("data", ["data_root", "image_size", "val_fraction", "limit_train", "limit_test", "split_seed"]),
    ("optimisation", ["epochs", "batch_size", "lr", "weight_decay", "adam_eps", "lr_schedule", "seed", "select_on",
                      "keep_epochs", "max_params", "max_memory"]),
    ("evaluation after training", ["eval", "eval_sigmas", "embed_points", "embed_views", "sample_score", "nll_k",
                                   "nll_grey"]),
    ("speed", ["device", "amp", "compile", "channels_last", "num_threads"]),
    ("run store and W&B", ["runs_dir", "name", "resume", "wandb", "project", "entity", "group", "tags", "sweep",
                           "wandb_system", "wandb_artifacts", "verbose"]),
]


def key_groups(table: dict, kind: str, chosen=None) -> list[tuple[str, str, list[tuple[str, object]]]]:
    """(title, note, [(key, default)]) per model family's (or dataset's) config with keys, in
    registry order (only `chosen`'s, a registry entry, when given); a key shared with a family
    listed earlier is named in the note, not repeated."""
    from bench.config.keys import cli_keys

    by_cls: dict[type, list[str]] = {}
    for name, entry in sorted(table.items()):
        if (chosen is not None and entry.config_cls is not chosen.config_cls) or not cli_keys(entry.config_cls):
            continue
        names = by_cls.setdefault(entry.config_cls, [])
        if not getattr(entry, "hidden", False):
            names.append(name)
    shown, out = set(), []
    for cls, names in by_cls.items():
        fields = cli_keys(cls)
        defaults = {k: default_of(f) for k, f in fields.items()}
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ and not cls.__doc__.startswith(cls.__name__) \
            else ", ".join(names)
        again = [k for k in fields if k in shown]
        note = ("also takes " + ", ".join(f"--{k.replace('_', '-')} (default {_show(defaults[k])})" for k in again)
                + " (listed above)") if again else ""
        out.append((f"{kind} keys: {doc}", note, [(k, defaults[k]) for k in fields if k not in shown]))
        shown.update(fields)
    return out


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
        default = default_of(f)
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


def build_parser(prog="run.py", families=True, model: str | None = None,
                 dataset: str | None = None) -> argparse.ArgumentParser:
    """The command line: every key as `--key value` or `--key=value`; the underscore spelling
    a W&B agent passes (`--noise_level=0.1`) is accepted and not listed twice. With
    `families=False` only the run keys (no torch import: `run.py --help`); with `model` or
    `dataset`, the run keys and that family's or dataset's keys (`run.py --help --model vae`)."""
    parser = _Parser(prog=prog, description="Train, evaluate and log one autoencoder run. A model family's key given as "
                     "--MODEL.KEY (--dae.noise-level 0.316) applies to that model's runs alone: a sweep over "
                     "several models sets it for one of them.",
                     argument_default=argparse.SUPPRESS, allow_abbrev=False)
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of keys; flags override it")
    parser.add_argument("--list", action="store_true", help="list models and datasets and exit")
    parser.add_argument("--print-config", action="store_true", dest="print_config",
                        help="print the fully resolved config of this run and exit (nothing is trained)")
    if families or model or dataset:
        import registry

        tables = key_tables()
        fields, hints = tables["FIELDS"], tables["hints"]
        everything = families and not (model or dataset)
        family_groups = key_groups(registry.MODELS, "model", registry.model_entry(model) if model else None) \
            if everything or model else []
        dataset_groups = key_groups(registry.DATASETS, "dataset", registry.dataset_entry(dataset) if dataset else None) \
            if everything or dataset else []
    else:  # run keys only: nothing of the model families (nor torch) is imported
        fields = {f.name: f for f in dataclasses.fields(RunKeys)}
        hints = typing.get_type_hints(RunKeys)
        family_groups = [("model keys", "each model family takes keys of its own; list them with "
                "`python run.py --help --model NAME` (names: `python run.py --list`)", [])]
        dataset_groups = [("dataset keys", "some datasets take keys of their own (colored_mnist, stl10, celeba); list them "
                 "with `python run.py --help --dataset NAME`", [])]
    grouped = {k for _, keys in HELP_GROUPS for k in keys}
    groups = [(t, "", [(k, dataclasses.MISSING) for k in keys]) for t, keys in HELP_GROUPS[:2]] + dataset_groups \
        + [(t, "", [(k, dataclasses.MISSING) for k in keys]) for t, keys in HELP_GROUPS[2:3]] + family_groups \
        + [(t, "", [(k, dataclasses.MISSING) for k in keys]) for t, keys in HELP_GROUPS[3:]] \
        + [("other", "", [(k, dataclasses.MISSING) for k in sorted(RUN_FIELDS) if k not in grouped])]
    for title, note, keys in groups:
        group = parser.add_argument_group(title, note or None)
        for key, default in keys:
            if key not in fields:
                continue
            f, tp = fields[key], base_type(hints[key])
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
    build_parser(prog=prog, families=False, model=help_value(argv, "--model"),
                 dataset=help_value(argv, "--dataset")).print_help()
    return True


def help_value(argv: list[str], flag: str) -> str | None:
    """The value of `flag` on a `--help` command line (`--model vae` or `--model=vae`), if any."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def flag_names() -> list[str]:
    """Every flag run.py takes (every family's and dataset's keys: the registry is imported)."""
    known = list(key_tables()["FIELDS"]) + list(key_tables()["ALIASES"])
    return ["--" + k.replace("_", "-") for k in known] + ["--config", "--list", "--print-config"]


def _unknown_flag_message(args, names: list[str] | None = None):
    names = flag_names() if names is None else names
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
        values = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"--config: {path} is not valid {kind}: {yaml_problem(e)}") from None
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--config: {path} is not valid {kind}: {first}") from None
    except RecursionError:
        raise UsageError(f"--config: {path} is nested too deeply to be a config file") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UsageError(f"--config: {path} must hold a mapping of keys to values, got {type(values).__name__}")
    values = canonical({str(k).replace("-", "_"): v for k, v in values.items()})
    fields = key_tables()["FIELDS"]
    unknown = sorted(k for k in set(values) - set(fields) if bare(k) not in fields)  # `dae.noise_level`: for_model checks
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"--config: unknown key {unknown[0]!r} in {path}{hint}")
    return values


def as_typed(error: UsageError, argv: list[str]) -> UsageError:
    """The refusal of a key the user gave under its older name (`--loss`) to a model that does
    not take it, naming the flag as typed instead of today's name (`--seg-loss`), which the user
    never wrote. (A bad value is named by today's name: the one to use from now on.)"""
    from bench.config.keys import RENAMED

    text = str(error)
    for old, new in RENAMED.items():
        today = "--" + new.replace("_", "-")
        typed = next((a.split("=")[0] for a in argv if a.split("=")[0] in ("--" + old, "--" + old.replace("_", "-"))),
                     None)
        if typed and text.startswith(today + ":") and "does not take it" in text \
                and not any(a.split("=")[0] == today for a in argv):  # a bad value is named by today's name
            return UsageError(typed + text[len(today):])
    return error


@functools.lru_cache(maxsize=1)
def _catalogue() -> Path:
    """Where the flags of this very source tree are kept (a name from its files' sizes and times),
    worked out once per process: run.py's early check and the full parse both ask."""
    import hashlib

    from bench.core.cache import cache_root

    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in sorted([root / "registry.py", *(root / "bench").rglob("*.py")]):
        with contextlib.suppress(OSError):
            st = path.stat()
            digest.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    return cache_root() / "flags" / f"{digest.hexdigest()[:20]}.json"


def refuse_unknown_flags(argv: list[str]) -> None:
    """A flag that no key has is refused before torch is imported (seconds on a busy machine),
    from the flags the last full parse of this same source tree wrote to the cache; where
    there is no such list yet, the full parse refuses it a moment later instead."""
    try:
        names = json.loads(_catalogue().read_text())
    except (OSError, ValueError):
        return
    from bench.config.handoff import FLAG as HANDOFF  # a sweep's hand-off, taken before the parse

    given = [a for a in argv if a.startswith("--")]
    known = set(names) | {HANDOFF}
    unknown = [a for a in given if a.split("=")[0].replace("_", "-") not in known  # --noise_level: an agent's
               and "--" + bare(a[2:].split("=")[0]).replace("_", "-") not in known]  # --dae.noise-level
    if unknown and isinstance(names, list):
        raise UsageError(_unknown_flag_message(unknown, names))


def _remember_flags() -> None:
    """The flags of this source tree, for `refuse_unknown_flags` of later runs."""
    from bench.core.files import atomic_write_text

    path = _catalogue()
    if not path.exists():
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(flag_names()))


def parse_args(argv: list[str], prog="run.py") -> tuple[dict, set]:
    """Parse flags into raw overrides. Returns (overrides, actions asked for: "list", "print_config")."""
    parser = build_parser(prog)
    _remember_flags()
    argv, scoped = _scoped_flags(argv)
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
    merged.update(scoped)
    return merged, actions


def _scoped_flags(argv: list[str]) -> tuple[list[str], dict]:
    """(argv without its keys given for one model, those keys): `--dae.noise-level 0.316` or
    `--dae.noise_level=0.316` (a W&B agent's spelling) sets dae's noise level in dae's runs
    alone; `bench.config.spec.for_model` checks the model and the key."""
    rest, scoped, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg[2:].partition("=")
        if not (arg.startswith("--") and scope_of(name)[0]):
            rest.append(arg)
        elif eq:
            scoped[name.replace("-", "_")] = value
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            scoped[name.replace("-", "_")] = argv[i + 1]
            i += 1
        else:  # `--dae.batchnorm` alone, as `--batchnorm` alone means true
            scoped[name.replace("-", "_")] = "true"
        i += 1
    return rest, canonical(scoped)
