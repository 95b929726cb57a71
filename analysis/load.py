"""Recorded runs -> one pandas frame, from the local store or from the W&B API.

One row per run: `run_id`, `status` (a `running` run whose process is gone reads as
`crashed`), `source`, every config key under its own name, every summary number under
its recorded key (`test/psnr`, `probe/linear_acc`, ...), `epochs_done`, and `history`
(the list of per-epoch rows). Analysis never recomputes a metric: it only reads these.
"""
from __future__ import annotations

import re
import warnings

import pandas as pd

from bench.config.keys import canonical
from bench.core.errors import UsageError
from bench.records.store import RecordError, effective_status, list_runs

# Config keys that never define a configuration (where and how a run was recorded).
BOOKKEEPING = {"runs_dir", "data_root", "wandb", "project", "entity", "tags", "name", "resume", "device",
               "num_threads", "group", "sweep", "eval", "compile", "amp", "channels_last", "task", "config",
               "wandb_system", "wandb_artifacts", "sweep_id", "verbose"}
SUMMARY_RENAME = {"epochs": "epochs_done", "status": "recorded_status", "model": "_model", "dataset": "_dataset",
                  "group": "_group", "sweep": "_sweep",
                  # numbers recorded under older names: one name per probe, named by its method
                  "probe/logreg_acc": "probe/logistic_acc", "embed/probe_acc": "embed/logistic_acc"}


# Columns analysis itself sets; a recorded config or summary can never overwrite them
# (a crafted `path` in summary.json would otherwise point the report at any file).
RESERVED = {"run_id", "source", "path", "status", "history", "config_keys"}


def _row(run_id, source, path, status, config: dict, summary: dict, history: list) -> dict:
    config = canonical(config)  # older runs' key names (noise_std) read as today's (noise_level)
    row = {"run_id": run_id, "source": source, "path": path, "status": status,
           "config_keys": tuple(k for k in config if k not in RESERVED)}
    for k, v in config.items():
        if k not in RESERVED:
            row[k] = tuple(v) if isinstance(v, list) else v
    for k, v in summary.items():
        k = SUMMARY_RENAME.get(k, k)
        if k not in RESERVED and (isinstance(v, (int, float, str, bool)) or v is None):
            row[k] = v
    row["history"] = history
    return row


def load_local(runs_dir: str, sweep: str | None = None) -> pd.DataFrame:
    """Readable runs as rows; `frame.attrs["unreadable"]` lists the others as (run dir, reason),
    so callers report them instead of silently showing one run fewer."""
    rows, unreadable = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torn trailing lines are skipped; the run is still shown
        for run in list_runs(runs_dir):
            try:
                config, summary = run.read_config(), run.read_summary()
                if sweep and config.get("sweep") != sweep and config.get("group") != sweep:
                    continue
                _check_types(config, summary)
                history = run.read_metrics()
            except (RecordError, OSError, UnicodeDecodeError, ValueError) as e:
                # one damaged folder is named, and the others are still analysed
                if sweep is None or run.path.parent.name == sweep:
                    reason = str(e).split(": ", 1)[-1] if isinstance(e, RecordError) else \
                        f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
                    unreadable.append((str(run.path), reason))
                continue
            rows.append(_row(run.id, "local", str(run.path), effective_status(summary, run.path), config,
                             summary, history))
    frame = pd.DataFrame(rows)
    frame.attrs["unreadable"] = unreadable
    return frame


def _check_types(config: dict, summary: dict) -> None:
    """What analysis computes with must be what run.py writes: a seed is an integer, times
    are numbers. Anything else is a damaged or hand-edited record (ValueError)."""
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"config.json: seed {seed!r} is not an integer")
    pid = summary.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
        raise ValueError(f"summary.json: pid {pid!r} is not a process id")
    for key in ("finished_at", "started_at", "updated_at"):
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"summary.json: {key} {value!r} is not a time")


def unreadable_note(frame: pd.DataFrame) -> str | None:
    """One line naming the runs that could not be read, or None."""
    bad = frame.attrs.get("unreadable") or []
    if not bad:
        return None
    shown = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    return f"{len(bad)} unreadable run(s) left out: {shown}{more}"


def load_wandb(path: str, sweep: str | None = None, api=None) -> pd.DataFrame:
    """Runs of ENTITY/PROJECT through wandb.Api(); `api` may be any object of that shape."""
    if path.count("/") != 1 or not all(path.split("/")):
        raise UsageError(f"--wandb {path!r}: give ENTITY/PROJECT, e.g. my-team/aebench")
    if api is None:
        api = _wandb_api(path)
    try:
        runs = _wandb_runs(api, path, sweep)
    except Exception as e:
        first = " ".join(str(e).split())[:160]
        raise UsageError(f"--wandb {path}: cannot list runs (unknown entity or project?) "
                         f"({type(e).__name__}: {first})") from None
    rows = []
    for r in runs:
        summary = dict(getattr(r.summary, "_json_dict", r.summary))
        summary = {k: v for k, v in summary.items() if not k.startswith("_")}
        for k in [k for k in summary if k.startswith("best/") and k != "best/epoch"]:
            summary.update(best_metric=k[5:], best_value=summary.pop(k))  # `best/val/loss` -> best_value
        if "best/epoch" in summary:
            summary["best_epoch"] = summary.pop("best/epoch")
        history = [dict(h) for h in r.scan_history()]
        history = [h for h in history if "epoch" in h]
        config = {k: v for k, v in dict(r.config).items() if not k.startswith("_")}
        # A run the sweep's early termination ended finished its process, and says so in its summary
        state = "stopped" if summary.get("state") == "stopped" and r.state == "finished" else r.state
        rows.append(_row(r.id, "wandb", getattr(r, "url", ""), state, config, summary, history))
    return pd.DataFrame(rows)


SWEEP_ID = re.compile(r"[a-z0-9]{8}")


def _wandb_runs(api, path: str, sweep: str | None) -> list:
    """Runs of the project, or of one sweep: by W&B sweep id through `api.sweep`, else by
    name (runs carry it as config `sweep`, local and agent runs alike, and as their group)."""
    if not sweep:
        return list(api.runs(path))
    if SWEEP_ID.fullmatch(sweep):
        try:
            return list(api.sweep(f"{path}/{sweep}").runs)
        except Exception:
            pass  # not an id after all: a sweep named like one
    return list(api.runs(path, filters={"$or": [{"config.sweep": sweep}, {"group": sweep}]}))


def _wandb_api(path: str):
    from bench.records.track import wandb_api

    return wandb_api(f"--wandb {path}", "without --wandb, analysis reads the local run store")


def load_runs(runs_dir: str = "runs", wandb_path: str | None = None, sweep: str | None = None,
              api=None) -> pd.DataFrame:
    frame = load_wandb(wandb_path, sweep, api) if wandb_path else load_local(runs_dir, sweep)
    return with_best_columns(frame)


def best_meanings(frame: pd.DataFrame) -> list[str]:
    """What `best_value` means in each run, "<metric> (<model>)", each once. The metric that
    chose best.pt is the family's own loss, so `val/loss` is an MSE for an AE and an ELBO in
    nats for a VAE: only runs of one model and one metric share a meaning."""
    if not {"best_metric", "best_value", "model"} <= set(frame.columns):
        return []
    rows = frame[frame["best_value"].notna() & frame["best_metric"].notna()]
    return sorted(set(meaning_labels(rows)))


def meaning_labels(frame: pd.DataFrame) -> pd.Series:
    """Each run's meaning of `best_value`: "<metric> (an MSE)" where the loss that chose best.pt
    is the run's own validation MSE (an AE's and a DAE's alike: one meaning), else
    "<metric> (<model>)" (a VAE's ELBO, a sparse AE's MSE plus its L1 penalty)."""
    def label(r) -> str:
        metric, mse = str(r["best_metric"]), r.get("val/mse")
        last = r.get(metric)
        plain = isinstance(mse, (int, float)) and isinstance(last, (int, float)) and \
            abs(float(last) - float(mse)) <= 1e-9 * max(1.0, abs(float(mse)))
        return f"{metric} (an MSE)" if plain else f"{metric} ({r['model']})"
    return frame.apply(label, axis=1) if len(frame) else pd.Series([], dtype=str)


def with_best_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs whose `best_value` means different things (an AE's MSE, a VAE's ELBO) also get a
    `best/<metric> (<model>)` column per meaning, so that no column mixes them."""
    meanings = best_meanings(frame)
    if len(meanings) < 2:
        return frame
    label = meaning_labels(frame)
    return frame.assign(**{f"best/{m}": frame["best_value"].where(label == m) for m in meanings})


def require_runs(frame: pd.DataFrame, runs_dir: str, sweep: str | None, wandb_path: str | None = None):
    """Exit-2 errors for an empty selection, naming what exists."""
    if len(frame):
        return frame
    where = f"W&B project {wandb_path}" if wandb_path else f"{runs_dir}/"
    if unreadable_note(frame):
        raise UsageError(f"no readable runs in {where}: {unreadable_note(frame)}")
    if sweep:
        everything = pd.DataFrame() if wandb_path else load_local(runs_dir)
        available = sorted(everything["sweep"].dropna().unique()) if "sweep" in everything else []
        raise UsageError(f"no runs of sweep {sweep!r} in {where}; sweeps there: {', '.join(available) or 'none'}")
    raise UsageError(f"no runs found in {where}; run `python run.py ...` or `python -m bench.sweep ...` first")


def varying_keys(frame: pd.DataFrame, exclude=("seed",)) -> list[str]:
    """What distinguishes configurations: model and dataset when they differ, plus config
    keys that take several values for the same model (a key that differs only because
    models have different defaults is implied by the model)."""
    keys = [k for k in ("model", "dataset") if k in frame and frame[k].nunique(dropna=False) > 1]
    for k in config_keys(frame):
        if k in BOOKKEEPING or k in exclude or k in keys or k not in frame:
            continue
        per_model = frame.groupby("model")[k].agg(lambda s: s.map(repr).nunique(dropna=False)) \
            if "model" in frame else pd.Series([frame[k].map(repr).nunique(dropna=False)])
        if (per_model > 1).any():
            keys.append(k)
    return _drop_implied(frame, keys) or ["model"]


def config_keys(frame: pd.DataFrame) -> list[str]:
    """The configuration keys of the runs in `frame`, in their records' order: what their
    config.json (or W&B config) holds. Read from the records, so analysis needs no catalogue
    of every model family's keys (that would import the families, and torch)."""
    if "config_keys" not in frame:
        return []
    return list(dict.fromkeys(k for keys in frame["config_keys"] for k in keys))


def _preferred(frame: pd.DataFrame) -> tuple:
    """model, dataset, then the shorthand keys a family declares (recorded by each run as
    `shorthand_keys`): a key that sets others (one list of hidden widths and latent size)
    speaks for them."""
    named = frame["shorthand_keys"].dropna() if "shorthand_keys" in frame else []
    return ("model", "dataset") + tuple(dict.fromkeys(k for text in named for k in str(text).split(",") if k))


def swept_keys(frame: pd.DataFrame) -> set[str]:
    """The keys a sweep varied in these runs (each run records its swept values, `sweep_params`)."""
    import json

    swept = set()
    for text in frame["sweep_params"].dropna() if "sweep_params" in frame else []:
        try:
            swept |= set(canonical(json.loads(text)))
        except (TypeError, ValueError, AttributeError):
            continue
    return swept


def _drop_implied(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """Drop keys whose value is fixed by a key already kept (a family's derived keys by
    its shorthand): they add columns, not configurations. model and dataset always stay."""
    preferred = _preferred(frame)
    ordered = [k for k in preferred if k in keys] + [k for k in keys if k not in preferred]
    as_text = {k: frame[k].map(repr) for k in ordered}
    swept = swept_keys(frame)  # a random search draws each run's lr and beta: one "fixes" the other
    kept = []
    for k in ordered:
        implied = any((as_text[k].groupby(as_text[j]).nunique() <= 1).all()
                      for j in kept if j not in ("model", "dataset"))
        if k in ("model", "dataset") or k in swept or not implied:
            kept.append(k)
    return [k for k in keys if k in kept]


def in_order(value) -> tuple:
    """A sort key that orders numbers, and tuples of numbers (hidden sizes 300,5), as numbers."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return (0, tuple(float(v) for v in items), "")
    return (1, (), repr(value))
