"""A run, resolved once into one frozen `RunSpec`.

`resolve` is the one function that turns what a user gave (flags, config files, a sweep's
values, a recorded run) and the environment (a `wandb agent`'s sweep) into a RunSpec. It
looks each registry entry up once, resolves the run keys, the dataset's own keys and the
model family's keys, fixes the input shape and class count from the dataset's declaration,
and decides the task. Everything downstream receives the spec and never changes it; a
value only a running process can choose (`--amp auto`) is kept beside it, not in it.
`to_dict()` is the flat record kept in config.json and every checkpoint, as before, so
older runs load; `from_record` reads one back.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.keys import canonical, cli_keys, scope_of
from bench.config.run_keys import RUN_FIELDS, RunKeys, coerce, copy_value, key_tables, validate_value
from bench.config.tasks import TASKS, same_kind
from bench.core.errors import UsageError


@dataclass(frozen=True)
class RunSpec:
    keys: RunKeys
    family: object  # the model family's Config (bench.config.keys.FamilyConfig)
    dataset_keys: object  # the dataset's own Config (bench.config.keys.DatasetConfig)
    task: str  # what the model trains: reconstruct, denoise, classify or segment
    input_shape: tuple  # (C, H, W) of the images the model takes
    num_classes: int
    model_entry: object = field(repr=False, compare=False)  # registry.ModelEntry
    dataset_entry: object = field(repr=False, compare=False)  # registry.DatasetEntry
    handoff: object = field(default=None, repr=False, compare=False)  # what a sweep handed the run (not recorded)

    def __getattr__(self, name: str):
        """A key reads flat (`spec.lr`, `spec.latent_dim`, `spec.color_mode`) from whichever
        level declares it; lists read as lists, as in the record."""
        if not name.startswith("_"):
            for part in ("keys", "family", "dataset_keys"):
                held = self.__dict__.get(part)
                if held is not None and hasattr(held, name):
                    return copy_value(getattr(held, name))
        raise AttributeError(f"the run of model {self.__dict__['keys'].model!r} has no key {name!r}")

    def to_dict(self) -> dict:
        """The flat record: run keys (with the task decided), the dataset's keys, the family's."""
        out = {f.name: copy_value(getattr(self.keys, f.name)) for f in dataclasses.fields(RunKeys)}
        out.update(self.dataset_keys.to_dict())
        out.update(self.family.to_dict())
        return dict(out, task=self.task)

    def with_keys(self, **values) -> "RunSpec":
        """A copy with run keys replaced (where the run's files and tracking go; an agent's sweep)."""
        return dataclasses.replace(self, keys=dataclasses.replace(self.keys, **values))


def resolve(overrides: dict, environ: dict | None = None) -> RunSpec:
    """Defaults < overrides, in three levels: the run keys, then the chosen dataset's keys,
    then the chosen model family's (its defaults, this model's, the values given, derived
    keys). Every value is coerced and range-checked; a key the dataset or model does not take
    is refused. `environ` (default: the process's): a `wandb agent` run joins its sweep."""
    import registry

    overrides = canonical(overrides)
    scoped = {k: v for k, v in overrides.items() if scope_of(k)[0]}
    run_values, other = _run_values({k: v for k, v in overrides.items() if k not in scoped})
    if "model" not in overrides:
        run_values["model"] = _implied_model(other) or RunKeys.model
    keys = RunKeys(**run_values)
    other.update(for_model(scoped, keys.model))
    mentry, dentry = registry.model_entry(keys.model), registry.dataset_entry(keys.dataset)
    for_dataset = set(cli_keys(dentry.config_cls)) | key_tables()["DATASET_KEYS"]  # another dataset's: refused
    dataset_keys = dentry.config(_checked(dentry.config_cls, {k: v for k, v in other.items() if k in for_dataset},
                                  f"dataset {keys.dataset}"))
    shape = dentry.input_shape(keys.image_size)
    family_values = _checked(mentry.config_cls, {k: v for k, v in other.items() if k not in for_dataset},
                             f"model {keys.model}")
    family = mentry.config(dict(family_values, runs_dir=keys.runs_dir), shape, dentry.num_classes)
    task = _task(keys, mentry.task_of(family), dentry)
    spec = RunSpec(keys, family, dataset_keys, task, shape, dentry.num_classes, mentry, dentry)
    return _for_agent(spec, overrides, os.environ if environ is None else environ)


def _run_values(overrides: dict) -> tuple[dict, dict]:
    """(the run keys given, checked; every other key, raw). A bad value of another key is
    named as such here, whichever model or dataset takes it."""
    run_keys = {f.name: f for f in dataclasses.fields(RunKeys)}
    hints = typing.get_type_hints(RunKeys)
    values, other = {}, {}
    for key, raw in overrides.items():
        if key not in run_keys:
            if key in key_tables()["FIELDS"]:
                validate_value(key, coerce(key, raw))
            other[key] = raw
            continue
        declared = (run_keys[key], hints[key])
        values[key] = coerce(key, raw, declared)
        validate_value(key, values[key], declared)
    return values, other


def for_model(values: dict, model: str) -> dict:
    """`values` with each key given for one model (`dae.noise_level`) checked, and those for
    `model` as its plain keys, which they override; those for other models are left out."""
    import registry

    plain, mine = {}, {}
    for name, raw in values.items():
        owner, key = scope_of(name)
        if owner is None:
            plain[name] = raw
            continue
        flag = "--" + name.replace("_", "-")
        try:
            entry = registry.model_entry(owner)
        except UsageError as e:
            raise UsageError(f"{flag}: {e}") from None
        fields = cli_keys(entry.config_cls)
        if key not in fields:
            raise UsageError(f"{flag}: a key given for one model is one of that model's own keys; "
                             f"{owner}'s: {', '.join('--' + k.replace('_', '-') for k in sorted(fields)) or 'none'}")
        declared = (fields[key], typing.get_type_hints(entry.config_cls)[key])
        validate_value(name, coerce(name, raw, declared), declared)
        if owner == model:
            mine[key] = raw
    return dict(plain, **mine)


def _implied_model(values: dict) -> str | None:
    """The model a family key chooses when no model is named (`--probe-from` -> linear_probe)."""
    fields = key_tables()["FIELDS"]
    for key, value in values.items():
        if key in fields and value is not None and fields[key].metadata.get("implies_model"):
            return fields[key].metadata["implies_model"]
    return None


def _checked(config_cls, values: dict, owner: str) -> dict:
    """Flat values each checked against `config_cls`'s own declaration; a key it does not
    declare is refused in one line naming the keys it takes."""
    fields, hints = cli_keys(config_cls), typing.get_type_hints(config_cls)
    checked = {}
    for key, raw in values.items():
        if key not in fields:
            raise UsageError(_foreign_key_message(key, owner, fields))
        declared = (fields[key], hints[key])
        checked[key] = coerce(key, raw, declared)
        if checked[key] == []:  # a family's list keys (widths, dims) always need a value
            raise UsageError(f"--{key.replace('_', '-')}: give at least one value, e.g. 32,64")
        validate_value(key, checked[key], declared)
    return checked


def _foreign_key_message(key: str, owner: str, fields: dict) -> str:
    flag = "--" + key.replace("_", "-")
    if key in key_tables()["FIELDS"]:
        return (f"{flag}: {owner} does not take it; its keys: "
                f"{', '.join('--' + k.replace('_', '-') for k in sorted(fields)) or 'none'}")
    close = difflib.get_close_matches(key, list(key_tables()["FIELDS"]), n=3)
    hint = f"; did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?" if close else ""
    return f"{flag}: unknown key{hint}"


def _task(keys: RunKeys, task: str, dentry) -> str:
    """The task the model trains, checked against what the user asked and the data it has."""
    if keys.task and not same_kind(keys.task, task):
        raise UsageError(f"--task {keys.task}: model {keys.model} does a {task} task; valid: {task}")
    if keys.select_on == "test" and not TASKS[task].selects_on_test:
        raise UsageError(f"--select-on test: only classifiers record test metrics every epoch; "
                         f"{keys.model} does a {task} task (valid: val)")
    needs = TASKS[task].targets
    if needs and dentry.kind != needs:
        raise UsageError(f"model {keys.model} needs a dataset with {needs}; {keys.dataset} has {dentry.kind}")
    return task


def _for_agent(spec: RunSpec, overrides: dict, environ) -> RunSpec:
    """A run started by `wandb agent` joins its sweep: the sweep's name (from the sweep YAML's
    command) becomes its group, and the local store files it under that name as the local
    runner does (`runs/<sweep>/`)."""
    from bench.core.files import check_plain_name

    sweep = spec.keys.sweep
    if sweep is not None:  # it names a folder of the runs directory
        check_plain_name("--sweep", sweep)
    if environ.get("WANDB_SWEEP_ID") and sweep:
        runs_dir = spec.keys.runs_dir if "runs_dir" in overrides else str(Path(spec.keys.runs_dir) / sweep)
        return spec.with_keys(group=spec.keys.group or sweep, runs_dir=runs_dir)
    return spec


def from_record(record: dict) -> dict:
    """The keys of a recorded run (config.json, a checkpoint's config) that resolve it again:
    older names read as today's, bookkeeping dropped, dataset keys that older records held for
    every dataset (`color_mode`, `label_attr`, `train_split`) kept only for their dataset, and
    the split seed of a run recorded before `split_seed` existed (its `seed` drew the split)."""
    import registry

    values = {k: v for k, v in canonical(record).items() if k in key_tables()["FIELDS"]}
    if "split_seed" not in values and "seed" in values:  # older runs: one seed drew both
        values["split_seed"] = values["seed"]
    dataset_keys = key_tables()["DATASET_KEYS"]
    try:
        own = set(cli_keys(registry.dataset_entry(values.get("dataset", RunKeys.dataset)).config_cls))
    except UsageError:
        own = set()
    return {k: v for k, v in values.items() if k not in dataset_keys or k in own}


__all__ = ["RunSpec", "resolve", "for_model", "from_record", "RUN_FIELDS"]
