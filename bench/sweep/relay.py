"""The sweep runner's console shows its runs' long one-off work as it happens, and leaves it
out of its estimate of the time left.

A run of a sweep writes to its own log. Its progress lines (`bench.core.progress`: a feature
network being trained with its time left, UMAP compiling, a wait on another process's
cache lock) would leave the sweep's console silent for minutes on a cold cache, so the
runner reads the new lines of each running run's log while it waits and writes those
progress lines above its bar, each named by the run's configuration.
"""
from __future__ import annotations

import re
import sys
import time

from bench.config.keys import own_keys
from bench.core.progress import is_progress

STEP = re.compile(r"\(step \d+ of \d+")  # `bench.core.progress.Steps`: every run's, not one-off work
_read: dict[str, int] = {}   # log path -> bytes already read
_next = [0.0]                # when the logs are read next (once a second)


def wait(running: dict, seconds: float = 0.2) -> None:
    """Sleep a poll interval of the runner; once a second relay the new progress lines of the
    running runs' logs (`running`: pid -> (params, process, log file, start, slot))."""
    time.sleep(seconds)
    if time.time() < _next[0]:
        return
    _next[0] = time.time() + 1.0
    for params, _proc, log, _t0, _slot in running.values():
        for line in new_lines(log.name):
            if is_progress(line) and not STEP.search(line):  # a tool's steps stay in the run's own log
                say(f"  [{_name(params)}] {line.strip()}")


def new_lines(path: str) -> list[str]:
    """Whole lines added to `path` since the last call (a partial last line waits)."""
    try:
        with open(path, "rb") as f:
            f.seek(_read.get(path, 0))
            chunk = f.read()
    except OSError:
        return []
    end = chunk.rfind(b"\n") + 1
    _read[path] = _read.get(path, 0) + end
    return chunk[:end].decode("utf-8", "replace").splitlines()


def say(line: str) -> None:
    from tqdm import tqdm
    tqdm.write(line, file=sys.stdout)  # above the bar, never on its line
    sys.stdout.flush()


def _name(params: dict) -> str:
    shown = {k: v for k, v in own_keys(params).items() if k not in ("dataset", "eval")}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def one_off_since(folder, since: float) -> float:
    """Seconds that the runs of a sweep folder finished since `since` spent on one-off work
    (`time/one_off_seconds`: feature networks, UMAP's compile, a wait for another process
    making one). The first run on a cold cache pays all of it, so an estimate from that run's
    wall time alone said "~834 min left" for a suite that took 39."""
    from bench.records.store import RecordError, list_runs

    total = 0.0
    for run in list_runs(str(folder)):
        try:
            s = run.read_summary()
        except RecordError:
            continue
        done, spent = s.get("finished_at"), s.get("time/one_off_seconds")
        if isinstance(done, (int, float)) and done >= since and isinstance(spent, (int, float)):
            total += spent
    return total
