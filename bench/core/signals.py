"""SIGINT and SIGTERM, handled in one place: by a run's phases, the training loop and the
sweep runner alike."""
from __future__ import annotations

import contextlib
import signal


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; `where` names the phase (`epoch 3`, `test evaluation`, ...).

    A BaseException, like KeyboardInterrupt, so library code that catches Exception
    (W&B start-up, evaluation tools) cannot swallow a stop."""

    def __init__(self, signum, where):
        name = signal.Signals(signum).name
        super().__init__(f"{name} received during {where}")
        self.signum, self.where = signum, where


class StopSignals:
    """Catches SIGINT and SIGTERM while active (in the main thread; elsewhere it is inert)
    and restores the previous handlers after. The signal is always remembered in `signum`,
    so a library that swallows the exception cannot turn a stop into a finish; with
    `raising`, the handler also raises `Interrupted(signum, where())` at once (for code
    that never checks a flag), otherwise the code checks between steps."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, raising: bool = False, where=lambda: "start-up"):
        self.signum, self.raising, self.where, self._old = None, raising, where, {}

    def __enter__(self) -> "StopSignals":
        for s in self.SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if self.raising:
            raise Interrupted(signum, self.where())

    def check(self, where: str | None = None) -> None:
        """Raise `Interrupted` if a signal has arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum, where or self.where())

    @contextlib.contextmanager
    def recording_only(self):
        """While a final status is written: a signal is remembered, never raised."""
        raising, self.raising = self.raising, False
        try:
            yield self
        finally:
            self.raising = raising


def same_command() -> str:
    """This process's command line as the user can type it again (said on a stop: the same
    command resumes a sweep or a suite)."""
    import shlex
    import sys
    from pathlib import Path

    module = getattr(sys.modules.get("__main__"), "__spec__", None)
    if module is not None and module.name:  # python -m bench.sweep ...
        head = ["python", "-m", module.name.removesuffix(".__main__")]
    elif sys.argv[0].endswith(".py"):
        head = ["python", sys.argv[0]]
    else:  # a console script (aebench-sweep)
        head = [Path(sys.argv[0]).name]
    return shlex.join(head + sys.argv[1:])
