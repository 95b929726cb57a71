"""A finished run's model rebuilt from its record: its config.json checked key by key, its
checkpoint loaded weights-only. A run is found by folder, id or W&B model artifact, so this
sits above the run store and W&B references; checkpoint file I/O (`bench.records.checkpoint`) does not.
"""
from __future__ import annotations

from bench.core.errors import UsageError
from bench.records.checkpoint import load, load_weights


def check_record(record: dict, run_id: str) -> None:
    """Every known key of a run's saved config has a value of its type and range: a damaged
    config.json is named in one line, not met as a traceback deep in a model."""
    from bench.config.run_keys import FIELDS, coerce, validate_value
    from bench.records.store import RecordError

    for key, value in record.items():
        if key in FIELDS and value is not None:
            try:
                validate_value(key, coerce(key, value))
            except UsageError as e:
                raise RecordError(f"run {run_id}: config.json: {e}") from None


def load_run_model(ref: str, runs_dir: str = "runs", which: str = "best"):
    """(model in eval mode on CPU, resolved config dict) of a finished or stopped run."""
    from bench.records.artifacts import find_run
    from registry import create_model

    run = find_run(ref, runs_dir)
    record = run.read_config()
    path = run.ckpt(which) if run.ckpt(which).exists() else run.ckpt("last")
    if not path.exists():
        raise UsageError(f"run {run.id} has no checkpoint yet ({run.path})")
    state = load(path)
    check_record(record, run.id)
    try:
        model = create_model(record["model"], tuple(state["in_shape"]), state["num_classes"], **record)
    except (TypeError, ValueError) as e:
        raise UsageError(f"run {run.id}: its config.json and {path.name} do not build a model "
                         f"({' '.join(str(e).split())[:160]})") from None
    load_weights(model, state, path)
    return model.eval(), record
