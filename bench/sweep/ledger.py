"""What a sweep folder holds, as the sweep runner sees it: one `Record` per run it started
(its swept values, its result-changing flags, its status and metric), and which configurations
are done. A `Ledger` keeps the folder's records in memory and reads each run's summary.json
again only when the file changed, so a runner claiming and finishing hundreds of runs does not
re-read every folder at each step; `sweep_records` and `existing` read a folder once.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from bench.records.store import RecordError, effective_status, list_runs

class Record(NamedTuple):
    key: str              # the run's swept values (`sweep_params`, canonical JSON)
    fixed: str            # the runner's result-changing flags (`sweep_fixed`)
    status: str
    value: float | None   # the metric asked for; None when not recorded (or NaN)
    run_id: str
    model: str | None
    epochs: int = 0       # epochs trained


def sweep_records(folder: Path, metric: str | None):
    """A `Record` of each run of a sweep folder that the runner started; an unreadable
    record is left out (it counts as not finished)."""
    return Ledger(folder, metric).records()


# A run in one of these states is done: a later invocation never starts its configuration again
# (`stopped`: ended by the sweep's early termination, with its test numbers).
DONE = ("finished", "stopped")
RESUMABLE = ("interrupted", "crashed")  # continued by the next invocation from their last.pt


def existing(folder: Path, metric: str | None) -> dict[str, tuple[str, float | None, str]]:
    """run key (the swept values and the runner's result-changing flags, one per line) ->
    (status, metric value, run id) of the runs already in a sweep folder. A finished (or
    stopped) run wins over failed attempts of the same configuration."""
    return _existing(sweep_records(folder, metric))


def _existing(records) -> dict[str, tuple[str, float | None, str]]:
    out = {}
    for r in records:
        full = f"{r.key}\n{r.fixed}"
        if full not in out or r.status in DONE:
            out[full] = (r.status, r.value, r.run_id)
    return out


class Ledger:
    """The runs of one sweep folder, each summary.json read once per change (its size and
    modification time tell); a run's status is worked out afresh each time (a `running` run
    whose process died is `crashed`, which no file says)."""

    def __init__(self, folder: Path, metric: str | None):
        self.folder, self.metric = Path(folder), metric
        self._held: dict[Path, tuple] = {}  # run folder -> (stamp of summary.json, its summary or None)

    def summaries(self):
        """(run, summary) of each readable run of the folder, oldest first."""
        for run in list_runs(str(self.folder)):
            summary = self._read(run)
            if summary is not None:
                yield run, summary

    def _read(self, run) -> dict | None:
        """The run's summary, read again only when its size or modification time changed."""
        try:
            st = (run.path / "summary.json").stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        held = self._held.get(run.path)
        if held is None or held[0] != stamp or stamp is None:
            try:
                held = self._held[run.path] = (stamp, run.read_summary())
            except RecordError:
                held = self._held[run.path] = (stamp, None)
        return held[1]

    def summary(self, run_id: str | None) -> dict:
        """One run's summary as last read ({} for an unknown or unreadable run): its own folder
        only, not a scan of the sweep's."""
        from bench.records.store import RunDir

        if not run_id or "/" in run_id or run_id.startswith("."):  # "?": a run that never made a folder
            return {}
        path = self.folder / run_id
        if not (path / "config.json").is_file():
            return {}
        return self._read(RunDir(path)) or {}

    def records(self):
        return (r for r in (_record(run, s, self.metric) for run, s in self.summaries()) if r is not None)

    def existing(self) -> dict[str, tuple[str, float | None, str]]:
        return _existing(self.records())


def _record(run, summary: dict, metric: str | None) -> Record | None:
    key = summary.get("sweep_params")
    if not isinstance(key, str):
        return None
    value = summary.get(metric) if metric else None
    value = float(value) if isinstance(value, (int, float)) and value == value else None
    epochs = summary.get("epochs")
    return Record(key, summary.get("sweep_fixed") or "{}", effective_status(summary, run.path), value, run.id,
                  summary.get("model"), epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 0)
