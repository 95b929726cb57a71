"""Evaluation tools, found like models: each module of this package is one tool.

A tool registers itself with `@register_tool(needs=..., rank=...)`: what it needs of the
model and the data ("labels", "autoencoder", "decoder"), and where it runs in `--eval
all` (cheap and numeric first, figures after). `--eval` checks those needs against the
model's declared capabilities before training starts. A tool is
`tool(model, data, spec, run, device) -> {"numbers", "figures", "tables"}`; its numbers
land in summary.json under `<tool>/<name>` keys (a test-set measure under `test/<name>`). A tool
whose conditions go beyond those needs registers `check(model, data, spec) -> reason or None`,
asked before training as well. A new tool is one new file here: it is
listed in `--help`, runs in `--eval all`, and gets a generated test.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.core.errors import UsageError


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable
    needs: frozenset[str]
    rank: int
    check: Callable | None = None  # (model, data, spec) -> why the tool cannot run here, or None


_TOOLS: dict[str, Tool] = {}
_discovered = False


def register_tool(*, needs=(), rank: int = 100, check: Callable | None = None):
    def deco(fn):
        if fn.__name__ in _TOOLS:
            raise ValueError(f"evaluation tool {fn.__name__!r} registered twice")
        _TOOLS[fn.__name__] = Tool(fn.__name__, fn, frozenset(needs), rank, check)
        return fn
    return deco


def names() -> list[str]:
    """The tools' names, from the package's files alone (nothing imported: `run.py --help`)."""
    from bench.config.run_keys import tool_names

    return tool_names()


def tools() -> dict[str, Tool]:
    """Every tool in `--eval all` order; the tool modules are imported on first use."""
    global _discovered
    if not _discovered:
        import importlib
        for name in names():
            importlib.import_module(f"{__name__}.{name}")
        _discovered = True
    return dict(sorted(_TOOLS.items(), key=lambda kv: (kv[1].rank, kv[0])))


def tool(name: str) -> Tool:
    """One tool, its module imported alone (a run's closing hint asks three; none draws)."""
    if name not in _TOOLS:
        import importlib
        importlib.import_module(f"{__name__}.{name}")
    return _TOOLS[name]


def missing_needs(name: str, model, data_kind: str) -> list[str]:
    from bench.config.tasks import TASKS

    is_ae = TASKS[model.task].autoencoder
    has = {"labels"} if data_kind == "labels" else set()
    if is_ae:
        has |= {"autoencoder"} | ({"decoder"} if model.can_decode else set())
    return sorted(tool(name).needs - has)


def refusal(name: str, model, data, spec) -> str | None:
    """Why a tool's own check refuses this model, data and config (None: it can run, or it has no
    check). With `data` None (a plan made before any data is read) only the model is checked."""
    check = tool(name).check
    return None if check is None else check(model, data, spec)


def applicable(chosen_names, model, data_kind: str, data=None, spec=None) -> list[str]:
    """The tools to run. A tool named explicitly that cannot work on this model or data is bad
    input, refused before training; `all` means every tool that applies."""
    chosen = expand(chosen_names)
    if "all" in [n.strip() for n in chosen_names]:
        return [n for n in chosen if not missing_needs(n, model, data_kind) and not refusal(n, model, data, spec)]
    for n in chosen:
        lack = missing_needs(n, model, data_kind)
        if lack:
            ok = [t for t in tools() if not missing_needs(t, model, data_kind)]
            raise UsageError(f"--eval {n}: needs {' and '.join(lack)}, which {type(model).__name__} on "
                             f"{data_kind} data lacks; valid here: {', '.join(ok) or 'none'}")
        why = refusal(n, model, data, spec)
        if why:
            raise UsageError(f"--eval {n}: {why}")
    return chosen


def expand(chosen_names) -> list[str]:
    """Tool names in run order; unknown names are bad input."""
    chosen = [n.strip() for n in chosen_names if n and n.strip()]
    known = tools()
    for n in chosen:
        if n not in known and n != "all":
            import difflib

            close = difflib.get_close_matches(n, [*known, "all"], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown evaluation {n!r}{hint}; valid: {', '.join(known)}, all")
    if "all" in chosen:
        return list(known)
    return list(dict.fromkeys(chosen))
