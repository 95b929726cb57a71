"""The blocks a report template is made of (`Table`, `Facts`, `Figure`, `Discuss` in
`Section`s of a `Template`), and the helpers that fill them from the recorded runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

TO_WRITE = "TO WRITE"


@dataclass(frozen=True)
class Table:
    """Mean ± 95% CI over seeds of `metrics` ("key" or "key=label"), one row per configuration."""
    caption: str
    metrics: tuple[str, ...]
    sweep: str | None = None          # None: every sweep of the template
    models: tuple[str, ...] = ()      # only these models (all when empty)
    group_by: tuple[str, ...] = ()    # default: what varies among the selected runs


@dataclass(frozen=True)
class Facts:
    """A sentence of recorded numbers, written by `fn(frame)`; "" when nothing is recorded."""
    fn: Callable[[pd.DataFrame], str]


@dataclass(frozen=True)
class Figure:
    """HTML only. kind: curves | side_by_side | denoise | run:<figure name> (that figure of
    each configuration's lowest finished seed)."""
    kind: str
    caption: str
    sweep: str | None = None
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Discuss:
    """Where the author writes; the prompt says what to discuss (from the assignment)."""
    prompt: str


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple = ()


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    assignment_file: str               # the assignment's text: ../shared/seeds/<assignment_file>_*.txt
    sweeps: tuple[str, ...]
    sections: tuple[Section, ...]
    assignment: str = ""               # its title, as it names itself (each ", "-part is in its text)
    max_chars: int | None = None       # the assignment's length cap on the markdown
    only_sections: bool = False        # markdown holds exactly these sections and no other header
    notes: tuple[str, ...] = field(default_factory=tuple)
    flags: tuple[tuple[str, str], ...] = ()  # (sweep, what its command needs beyond the file: --from-best ...)

    def command(self, sweep: str) -> str:
        """The command that runs one of the template's sweeps."""
        extra = dict(self.flags).get(sweep)
        return f"python -m bench.sweep sweeps/{sweep}.yaml" + (f" {extra}" if extra else "")


# ----------------------------------------------------------------------------- numbers


def select(frame: pd.DataFrame, sweep: str | None = None, models: tuple[str, ...] = ()) -> pd.DataFrame:
    """Finished runs of one sweep (by recorded sweep or group) and of the given models."""
    if not len(frame):
        return frame
    out = frame[frame["status"] == "finished"]
    if sweep:
        in_sweep = pd.Series(False, index=out.index)
        for col in ("sweep", "group"):
            if col in out:
                in_sweep |= out[col] == sweep
        out = out[in_sweep]
    if models and "model" in out:
        out = out[out["model"].isin(models)]
    return out


def mean_ci(frame: pd.DataFrame, metric: str) -> str | None:
    """'0.8123 ± 0.0100 (n=3)' over seeds (each seed once), or None when not recorded."""
    from analysis.tables import _fmt, ci95, one_per_seed

    if metric not in frame or not frame[metric].notna().any():
        return None
    g, _ = one_per_seed(frame[frame[metric].notna()])
    vals = pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
    ci = ci95(vals)
    return f"{_fmt(float(vals.mean()), ci if ci is not None else float('nan'))} (n={len(vals)})"


def per_model(frame, sweep, metric, models, label) -> str:
    parts = [f"{m} {v}" for m in models if (v := mean_ci(select(frame, sweep, (m,)), metric))]
    return f"{label}: " + "; ".join(parts) + "." if parts else ""


def budget_sentence(frame: pd.DataFrame) -> str:
    from analysis.tables import budget
    done = select(frame)
    return budget(done) if len(done) else ""


# ----------------------------------------------------------------------------- the CelebA assignment (CelebA)


def metric_spec(text: str) -> tuple[str, str]:
    key, _, label = text.partition("=")
    return key, label or key
