"""What a sweep hands one of its runs, besides the run's flags: one typed, versioned record.

The sweep runner (`bench.sweep.agent`) writes it as JSON beside the run's log and starts the
run with `--handoff FILE`; the run reads it once, before anything else, and carries it in its
`RunSpec` (`spec.handoff`) to what needs it: the record of which sweep values it stands for
(summary.json's `sweep_params`, `sweep_fixed`, `from_best`), the sweep's early-termination
rule (`bench.run.stopping`), and the figures' titles, which name the values the sweep varies.
A run started by hand or by `wandb agent` has no hand-off (`spec.handoff` is None).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core.errors import UsageError

VERSION = 1
FLAG = "--handoff"


@dataclass(frozen=True)
class Handoff:
    params: dict  # the swept values of this run ({"latent_dim": 16, "seed": 0})
    fixed: str  # the runner's flags that change results, as the sweep keys them (JSON text)
    varied: tuple = ()  # the keys the sweep varies: a figure's title names their values
    from_best: str | None = None  # where values carried from an earlier sweep's best run came from
    early_terminate: dict | None = field(default=None)  # the sweep's method, metric and early_terminate
    version: int = VERSION

    def write(self, path: Path) -> Path:
        from bench.core.files import atomic_write_text

        atomic_write_text(path, json.dumps(dict(asdict(self), varied=list(self.varied)), sort_keys=True))
        return path

    def shown_settings(self) -> dict:
        """The swept values a figure's title names: those the sweep varies, less what the
        title says anyway (model, dataset, seed)."""
        return {k: v for k, v in self.params.items() if k in self.varied and k not in ("model", "dataset", "seed")}


def read(path: str) -> Handoff:
    """The record at `path`; a missing, damaged or newer one is bad input, in one line."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{FLAG} {path}: cannot read the sweep's hand-off ({e})") from None
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise UsageError(f"{FLAG} {path}: a hand-off of version {raw.get('version') if isinstance(raw, dict) else '?'}"
                         f"; this aebench reads version {VERSION}")
    try:
        return Handoff(**dict(raw, varied=tuple(raw.get("varied") or ())))
    except TypeError as e:
        raise UsageError(f"{FLAG} {path}: not a sweep hand-off ({e})") from None


def take(argv: list[str]) -> tuple[list[str], Handoff | None]:
    """(run.py's other flags, the hand-off named by `--handoff FILE` or `--handoff=FILE`, else None)."""
    rest, path = [], None
    it = iter(argv)
    for a in it:
        if a == FLAG:
            path = next(it, None)
            if path is None:
                raise UsageError(f"{FLAG}: give the file the sweep runner wrote")
        elif a.startswith(FLAG + "="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
    return rest, (read(path) if path else None)
