"""Progress lines of long one-off work (an evaluation tool's steps), with a time estimate, and the
bar of a training epoch."""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time

PREFIX, SUFFIX = "  ", " ..."  # how a progress line looks, so a sweep can find it in a run's log


def progress(what: str) -> None:
    """One line of long one-off work (a feature network, a UMAP compile, a wait on a cache
    lock), best with a time estimate: on the run's console, and relayed by the sweep runner
    from the run's log to the sweep's console."""
    print(f"{PREFIX}{what}{SUFFIX}", flush=True)


ONE_OFF = [0.0]  # seconds this process spent making (or waiting for) what the cache keeps


@contextlib.contextmanager
def one_off():
    """Time spent on work made once per machine (a feature network, UMAP's compiled code, a
    decoded dataset, a wait for another process making one): recorded by the run as
    `time/one_off_seconds`, so a sweep's time estimate leaves it out of what later runs cost."""
    t = time.perf_counter()
    try:
        yield
    finally:
        ONE_OFF[0] += time.perf_counter() - t


def is_progress(line: str) -> bool:
    line = line.rstrip("\n")
    return line.startswith(PREFIX) and not line.startswith(PREFIX + " ") and line.endswith(SUFFIX)


class Steps:
    """A tool's progress lines with an estimate of the time left: each step has a rough
    relative cost (a PCA is nearly free, a t-SNE or UMAP fit is not), and the seconds per
    unit of cost are measured on the steps already done. Kept beside tqdm (the training bar):
    a tool has a handful of steps of very unequal cost, where tqdm's estimate assumes equal ones."""

    def __init__(self, tool: str, costs: dict[str, float]):
        self.tool, self.costs = tool, costs
        self.order = list(costs)
        self.done = 0.0
        self.current: str | None = None
        self.t0 = time.perf_counter()

    def __call__(self, step: str, what: str = "") -> None:
        if self.current is not None:
            self.done += self.costs[self.current]
        self.current = step
        elapsed = time.perf_counter() - self.t0
        left = sum(self.costs.values()) - self.done
        eta = f", about {elapsed / self.done * left:.0f} s left" if self.done > 0 and elapsed > 1 else ""
        progress(f"{self.tool}: {what or step} (step {self.order.index(step) + 1} of {len(self.order)}{eta})")


_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Lines:
    """A stream for tqdm where each redraw ends its line: a log file or a pipe keeps every
    progress line instead of one line rewritten with carriage returns."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = _ESCAPES.sub("", text.replace("\r", "")).strip()  # a bar closing writes cursor moves (ESC[A)
        if text:
            self.stream.write("  " + text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def epoch_bar(n, batch_size, desc):
    """tqdm's bar (steps, images/s, ETA): live in a terminal; elsewhere the same line
    printed every $AEBENCH_PROGRESS_SECONDS seconds (default 10)."""
    from tqdm import tqdm

    steps = math.ceil(n / batch_size)
    if sys.stderr.isatty():
        return tqdm(total=steps, desc=desc, leave=False, unit="batch")
    every = float(os.environ.get("AEBENCH_PROGRESS_SECONDS", 10))
    return tqdm(total=steps, desc=desc, unit="batch", file=Lines(sys.stdout), mininterval=every,
                maxinterval=every, ascii=True, leave=False, delay=every)
