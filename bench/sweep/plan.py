"""What a sweep runs next: W&B's own engine (`sweeps.next_run`) proposes each run from the
runs finished and in flight; a grid is planned whole and its size checked first. A run's
identity (its swept values and the runner's own flags) says whether it already finished.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import warnings

from bench.config.keys import bare
from bench.config.run_keys import FIELDS, coerce, validate_value
from bench.core.errors import UsageError
from bench.sweep.file import check_name, config_key


def propose(sweep_config: dict, done: list, count: int | None, pending: list | None = None):
    """The engine's next run (params dict) given finished and pending runs, or None.

    `pending` holds runs in flight and runs that failed in this invocation (so the
    engine moves on; a later invocation retries them)."""
    with warnings.catch_warnings():  # `sweeps` warns about its own pydantic settings on import
        warnings.simplefilter("ignore")
        from sweeps import RunState, SweepRun, next_run

    runs = []
    for params, metric, *status in done:  # a run stopped early is `killed` to the engine, as on W&B
        r = SweepRun(config={k: {"value": v} for k, v in params.items()},
                     state=RunState.killed if status == ["stopped"] else RunState.finished)
        if metric is not None:
            name = sweep_config.get("metric", {}).get("name")
            r.summary_metrics = {name: metric}
            r.history = [{name: metric}]
        runs.append(r)
    for params in pending or []:
        runs.append(SweepRun(config={k: {"value": v} for k, v in params.items()}, state=RunState.running))
    if count is not None and len(runs) >= count:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = next_run(sweep_config, runs, validate=False)
    return None if run is None else {k: v["value"] for k, v in run.config.items()}


MAX_GRID = 100_000  # configurations a local grid may have; past it, refused at once with its size
SAY_GRID = 1_000    # from here on, the runner says how many runs a grid makes before it plans


def grid_size(sweep_config: dict) -> int:
    """Configurations of a grid, counted without enumerating them (values listed twice count twice)."""
    return math.prod(len(param["values"]) if "values" in param else 1 for param in sweep_config["parameters"].values())


def check_grid(sweep_config: dict, name: str) -> int:
    """A grid's size, refused in one line past MAX_GRID (with what makes it large)."""
    n = grid_size(sweep_config)
    if n > MAX_GRID:
        sizes = sorted(((len(param["values"]), k) for k, param in sweep_config["parameters"].items() if "values" in param),
                       reverse=True)
        shown = " x ".join(f"{k} {m}" for m, k in sizes[:6]) + (" x ..." if len(sizes) > 6 else "")
        raise UsageError(f"sweep {name}: a grid of {n:,} configurations ({shown}) is over the {MAX_GRID:,} a sweep "
                         f"may make; narrow it: fewer values for the largest parameters, pin one with a flag "
                         f"(e.g. --seed 0), or use method random with --count K")
    return n


def plan(sweep_config: dict, count: int | None) -> list[dict]:
    """Every run the engine proposes up front (grid), or the first `count` (random/bayes)."""
    if sweep_config["method"] != "grid" and count is None:
        raise UsageError(f"method {sweep_config['method']!r} proposes runs without end; give --count K")
    if sweep_config["method"] == "grid":  # every combination once, in one pass: linear in the grid's size
        check_grid(sweep_config, str(sweep_config.get("name") or "grid"))
        import itertools

        names = list(sweep_config["parameters"])
        choices = [param["values"] if "values" in param else [param["value"]] for param in sweep_config["parameters"].values()]
        seen, out = set(), []
        for combo in itertools.product(*choices):
            key = json.dumps(combo, sort_keys=True, default=str)
            if key not in seen:  # a value listed twice is one configuration, as the engine sees it
                seen.add(key)
                out.append(dict(zip(names, combo)))
        return out[:count]
    out = []
    while True:
        p = propose(sweep_config, [(q, None) for q in out], count)
        if p is None:
            return out
        out.append(p)


# Runner flags that do not change a run's numbers: a run made with other values of these is
# the same configuration. Every other flag given to the runner (--limit-train, --epochs, ...)
# is part of what a finished run stands for.
NOT_IDENTITY = {"runs_dir", "data_root", "wandb", "project", "entity", "tags", "name", "group", "device", "num_threads",
                "eval", "compile", "amp", "channels_last", "verbose", "wandb_system", "wandb_artifacts", "workers",
                "embed_views", "max_memory"}


def fixed_identity(overrides: dict) -> str:
    """The runner's own flags that change results, as one canonical string (recorded by each run)."""
    return config_key({k: coerce(k, v) for k, v in overrides.items() if k not in NOT_IDENTITY})


def pinned(key: str, raw) -> dict:
    """The sweep parameter for a value given on the command line, as the YAML would write it."""
    if isinstance(raw, str) and "," in raw and "list" not in str(FIELDS[bare(key)].type):
        values = [coerce(key, part) for part in raw.split(",") if part.strip()]
        for v in values:
            validate_value(key, v)
            check_name(key, v)
        return {"values": values}
    value = coerce(key, raw)
    validate_value(key, value)
    check_name(key, value)
    return {"value": value}


def failed_tools(summary: dict) -> list[str]:
    """Evaluation tools that failed in a run (its results are kept; the tool can be re-run)."""
    return sorted(k.split("/")[0] for k, v in summary.items() if k.endswith("/failed") and v)


def collapse_note(summary: dict) -> str | None:
    """`COLLAPSED` or `POSTERIOR COLLAPSE` for a run whose numbers describe a constant or the
    prior (`bench.records.health`), else None."""
    from bench.records.health import collapse_words

    words = collapse_words(summary) if summary else None
    return words.split(" (")[0] if words else None


def stop_note(summary: dict) -> str:
    """`after epoch N: <the rule's reason>` of a run stopped early."""
    if not summary:
        return "stopped early"
    return f"after epoch {summary.get('stopped_epoch')}: {summary.get('stop_reason')}"


def in_space(params: dict, sweep_config: dict) -> bool:
    """Whether a recorded run's params lie in this sweep's (possibly pinned) parameter space."""
    for name, param in sweep_config["parameters"].items():
        if name not in params:
            return False
        v = params[name]
        if "value" in param and v != param["value"]:
            return False
        if "values" in param and v not in param["values"]:
            return False
    return True


def seed_search(seed: int) -> None:
    """The engine draws random proposals from `random` and bayes candidates from numpy."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


def auto_workers(gpus: int, free_gib: float | None = None, per_run_gib: float = 2.0, cap: int = 8) -> int:
    """Runs at once for `--workers auto`. On CPU one run per core, each with one thread
    (workers x threads = cores: short runs are mostly single-threaded start-up, evaluation and
    small kernels, so packing beats threading). On GPUs as many runs as fit the free memory of
    each device at `per_run_gib` (a CUDA context plus a small model and its data on the
    device), and no more than the cores that feed them."""
    cores = available_cores()
    if gpus == 0:
        return max(1, min(cores, cap))
    if free_gib is None:
        import torch
        free_gib = min(torch.cuda.mem_get_info(i)[0] for i in range(gpus)) / 2 ** 30
    return max(1, min(cores, cap * gpus, gpus * int(free_gib // per_run_gib)))


def available_cores() -> int:
    """The cores this runner may use: a Slurm task's own (SLURM_CPUS_PER_TASK), else the
    process's affinity, else the machine's."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def parse_workers(text: str):
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of runs at once or auto, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("--workers must be >= 1 (or auto)")
    return n


def gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def datasets_of(sweep_config: dict, overrides: dict) -> list[str]:
    """The datasets a sweep's runs read: its `dataset` parameter's values, else the one given
    for every run, else run.py's default."""
    from bench.config.run_keys import RunKeys
    from bench.sweep.file import canonical_key

    param = next((v for k, v in sweep_config["parameters"].items() if canonical_key(k) == "dataset"), None)
    if param is None:
        return [str(overrides.get("dataset", RunKeys.dataset))]
    values = [param["value"]] if "value" in param else list(param.get("values", []))
    return list(dict.fromkeys(str(v) for v in values))


def missing_data(sweep_config: dict, overrides: dict, name: str) -> str | None:
    """One line naming the sweep's datasets that cannot be read under its data root (and where
    it looked), or None: said before the first run, instead of once per failed run."""
    root = str(overrides.get("data_root", "./data"))
    missing = [(d, why) for d in datasets_of(sweep_config, overrides) if (why := unavailable(d, root))]
    if not missing:
        return None
    if len(missing) == 1:
        return f"sweep {name}: {missing[0][1]}"
    return (f"sweep {name}: {', '.join(d for d, _ in missing)} cannot be read under --data-root {root} "
            f"({missing[0][1]})")


def unavailable(dataset: str, root: str) -> str | None:
    """Why the dataset's files cannot be read under `root` (its loader's own one line: where to
    put them), or None. Asked in a forked child: loading data starts torch's thread pools, and
    the sweep runner forks its runs from this process, where a pool started before the fork
    deadlocks the child (seen: a run that never started)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, exit without running the parent's handlers
        try:
            os.close(r)
            os.write(w, (_probe(dataset, root) or "").encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    return answer or None


def _probe(dataset: str, root: str) -> str | None:
    from bench.config.spec import resolve
    from bench.data import load_data

    try:
        load_data(resolve({"dataset": dataset, "data_root": root, "limit_train": 2, "limit_test": 1}))
    except UsageError as e:
        return " ".join(str(e).split())
    except Exception as e:  # any other fault reading it: said, and the sweep goes on to refuse
        return f"{dataset}: cannot be read ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    return None
