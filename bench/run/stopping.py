"""A sweep's `early_terminate`, decided by W&B's own rule (`sweeps.stop_runs`, hyperband).

W&B's server applies the rule to the runs of a sweep and stops those it names. The local
runner does the same in each run: at every epoch boundary a run of a sweep with
`early_terminate` reads the per-epoch records (`metrics.jsonl`) of every run in its sweep
folder made with the same runner flags, gives their histories of the sweep metric to
`sweeps.stop_runs`, and, if it is named, ends there: checkpoint, test evaluation of its
best.pt, status `stopped`. Deciding inside the run, at its own boundary, means the
decision is taken on exactly the epochs it has trained, and works the same when the runs
of one sweep folder come from several runners or Slurm array tasks.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from bench.core.errors import UsageError

TYPES = ("hyperband",)  # what `sweeps.stop_runs` implements
# A run's recorded status -> the state W&B's engine knows (stopped runs are `killed` there)
STATES = {"running": "running", "finished": "finished", "stopped": "killed", "failed": "failed",
          "crashed": "crashed", "interrupted": "preempted"}


def check_rule(sweep_config: dict, where: str) -> None:
    """Refuse an `early_terminate` the local runner cannot honour, in one line: a type other
    than hyperband, no metric, a metric not logged every epoch, or bands that come out empty."""
    et = sweep_config.get("early_terminate")
    if et is None:
        return
    kind = et.get("type") if isinstance(et, dict) else None
    if kind not in TYPES:
        raise UsageError(f"{where}: early_terminate type {kind!r} is not implemented by the local runner; "
                         f"valid: {', '.join(TYPES)} (or remove early_terminate)")
    metric = sweep_config.get("metric") if isinstance(sweep_config.get("metric"), dict) else {}
    name = str(metric.get("name") or "")
    if not name:
        raise UsageError(f"{where}: early_terminate needs a metric to compare runs by, "
                         f"e.g. metric: {{name: val/loss, goal: minimize}}")
    if not name.startswith(("val/", "train/")):
        raise UsageError(f"{where}: early_terminate compares runs epoch by epoch, so its metric must be logged "
                         f"every epoch (val/<term> or train/<term>); {name!r} is not")
    if "min_iter" not in et and not {"max_iter", "s"} <= set(et):
        raise UsageError(f"{where}: early_terminate hyperband needs min_iter (the first epoch at which runs are "
                         f"compared), or max_iter and s (the last epoch, and how many bands before it)")
    from jsonschema.exceptions import ValidationError

    try:
        bands(sweep_config)
    except ValidationError as e:  # the `sweeps` schema's own words, e.g. "0 is less than the minimum of 1"
        field = "/".join(map(str, e.path)) or "early_terminate"
        raise UsageError(f"{where}: early_terminate {field}: {' '.join(e.message.split())[:160]}") from None
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{where}: early_terminate: {' '.join(str(e).split())[:160]}") from None


def bands(sweep_config: dict) -> list[int]:
    """The epochs at which hyperband compares runs, as `sweeps` computes them: its rule is asked
    about one run that has trained nothing, and reports the bands it would compare at."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps import RunState, SweepRun, stop_runs
        probe = SweepRun(name="bands", state=RunState.running, history=[])
        try:
            stop_runs(sweep_config, [probe])
        except ValueError as e:
            if str(e).startswith("Bands must"):  # sweeps: "Bands must be an array of length at least 1"
                raise ValueError("no band is at least one epoch: raise max_iter, or lower eta or s") from None
            raise
    return list(probe.early_terminate_info["bands"])


def sweep_runs(folder: Path, fixed: str) -> list:
    """`sweeps.SweepRun`s of the runs in a sweep folder made with the runner flags `fixed`,
    each with its per-epoch rows as history (unreadable records are left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps import RunState, SweepRun
    from bench.records.store import RecordError, effective_status, list_runs

    out = []
    for run in list_runs(str(folder)):
        try:
            summary = run.read_summary()
            if (summary.get("sweep_fixed") or "{}") != fixed or not isinstance(summary.get("sweep_params"), str):
                continue
            state = STATES.get(effective_status(summary, run.path))
            history = run.read_metrics() if state else []
        except (RecordError, OSError, ValueError):
            continue
        if state:
            out.append(SweepRun(name=run.id, state=RunState(state), history=history,
                                config={k: {"value": v} for k, v in json.loads(summary["sweep_params"]).items()}))
    return out


def decide(sweep_config: dict, runs: list) -> dict[str, str]:
    """Run name -> why the rule stops it, for the running runs that `sweeps.stop_runs` names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps import stop_runs
        stopped = stop_runs(sweep_config, runs)
    return {r.name: reason(sweep_config, r) for r in stopped}


def reason(sweep_config: dict, run) -> str:
    """The rule's decision as one sentence: the band, the run's value and the threshold."""
    info = getattr(run, "early_terminate_info", None) or {}
    metric = sweep_config["metric"]["name"]
    sign = -1.0 if sweep_config["metric"].get("goal") == "maximize" else 1.0
    history = [sign * v for v in run.metric_history(metric, filter_invalid=True)]
    reached = [(b, t) for b, t in zip(info.get("bands", []), info.get("thresholds", [])) if b <= len(history)]
    if not reached:
        return f"hyperband: {metric} behind the other runs"
    band, threshold = reached[-1]
    strict = bool((sweep_config.get("early_terminate") or {}).get("strict"))
    value = history[band - 1] if strict else min(history)
    which = f"{metric} at epoch {band}" if strict else f"best {metric} so far"
    return (f"hyperband: {which}, {sign * value:.6g}, is {'above' if sign > 0 else 'below'} the threshold "
            f"{sign * threshold:.6g} that the top 1/{(sweep_config.get('early_terminate') or {}).get('eta', 3):g} of runs "
            f"reached at epoch {band}")


class EarlyStop:
    """The rule, asked by a run of a sweep at each epoch boundary: `()` -> a reason, or None."""

    def __init__(self, sweep_config: dict, folder: Path, run_id: str, fixed: str):
        self.sweep_config, self.folder, self.run_id, self.fixed = sweep_config, folder, run_id, fixed

    @classmethod
    def of(cls, handoff, run) -> EarlyStop | None:
        """The rule for a run the sweep runner handed early termination (`bench.config.handoff`), else None."""
        if handoff is None or not handoff.early_terminate:
            return None
        return cls(handoff.early_terminate, run.path.parent, run.id, handoff.fixed or "{}")

    def __call__(self) -> str | None:
        return decide(self.sweep_config, sweep_runs(self.folder, self.fixed)).get(self.run_id)
