"""The tasks a model can train, found like models and tools: each module of `bench/tasks/`
registers one task with `register_task(...)`, and nothing else names it.

A task says what its targets are, what a test records, how a trained model is evaluated and
drawn, what its forward pass outputs (the generated model tests check it), whether the
latent-space tools apply, whether the standard benchmark compares its models, and which task
it becomes when its inputs are corrupted (`reconstruct` -> `denoise`). A model family
registers its task by name (`register_model(task=...)`); its config may turn it into the
corrupted twin. The run's checks, the sweep's planning, evaluation, the generated tests, the
suite and `--help` ask the registered tasks.

A task module imports only this module at its top (its evaluation imports what it needs when it
runs), so reading the registered tasks stays cheap; `names()` reads the file names alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Task:
    name: str
    targets: str | None  # the data kind its targets come from: "labels", "masks", or None (the images)
    test_keys: frozenset  # the test numbers a run records (`test/<key>`)
    autoencoder: bool  # a reconstruction of its input: the latent-space tools apply
    evaluate: Callable  # (model, data, spec, device) -> {"test/<key>": value, ...} on the test split
    output: Callable  # (x, num_classes) -> (forward output key, its shape): what the generated tests check
    example_target: Callable = lambda x, num_classes: None  # a random target batch for the generated tests
    figure: Callable | None = None  # (model, data, spec, device, path) -> path of its test figure
    selects_on_test: bool = False  # may pick best.pt by a test metric recorded every epoch (`--select-on test`)
    corrupted: str | None = None  # the task this one becomes on corrupted inputs (reconstruct -> denoise)
    in_suite: bool = False  # the standard benchmark compares the models of this task
    description: str = ""


_TASKS: dict[str, Task] = {}
_discovered = False


def register_task(name: str, **fields) -> Task:
    """Declare a task (in its own module of `bench/tasks/`); a name registered twice is an error."""
    if name in _TASKS:
        raise ValueError(f"task {name!r} registered twice")
    _TASKS[name] = Task(name, **fields)
    return _TASKS[name]


def names() -> list[str]:
    """The tasks' names, from the files of the `bench.tasks` package alone (none of them is
    imported: `--help` stays fast)."""
    import importlib
    import pkgutil

    folders = importlib.import_module("bench.tasks").__path__
    return sorted(m.name for m in pkgutil.iter_modules(folders) if not m.name.startswith("_"))


def tasks() -> dict[str, Task]:
    """Every registered task; the task modules are imported on first use."""
    global _discovered
    if not _discovered:
        import importlib
        for name in names():
            importlib.import_module(f"bench.tasks.{name}")
        _discovered = True
    return dict(_TASKS)


def task(name: str) -> Task:
    return tasks()[name]


def __getattr__(name: str):
    if name == "TASKS":
        return tasks()
    raise AttributeError(f"module 'bench.config.tasks' has no attribute {name!r}")


def twin(name: str, corrupted: bool) -> str:
    """The task a model of task `name` trains with its inputs corrupted or clean (an autoencoder
    denoises exactly when its inputs are corrupted; a task without a twin stays itself)."""
    all_tasks = tasks()
    if corrupted:
        return all_tasks[name].corrupted or name
    clean = [t.name for t in all_tasks.values() if t.corrupted == name]
    return clean[0] if clean else name


def same_kind(a: str, b: str) -> bool:
    """Whether two task names describe the same training (a denoiser at noise 0 reconstructs)."""
    return a == b or twin(a, False) == twin(b, False)
