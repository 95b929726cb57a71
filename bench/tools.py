"""Evaluation tools are registered like models: each declares what it needs of the model and
the data ("labels", "autoencoder", "decoder"), and `--eval` checks those needs against the
model's declared capabilities before training starts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable
    needs: frozenset[str]
    rank: int  # where it runs in `--eval all` (cheap and numeric first, figures after)


_TOOLS: dict[str, Tool] = {}


def register_tool(*, needs=(), rank: int = 100):
    def deco(fn):
        if fn.__name__ in _TOOLS:
            raise ValueError(f"evaluation tool {fn.__name__!r} registered twice")
        _TOOLS[fn.__name__] = Tool(fn.__name__, fn, frozenset(needs), rank)
        return fn
    return deco


def tools() -> dict[str, Tool]:
    """Every registered tool in `--eval all` order (the tool modules are imported first)."""
    import bench.latent  # noqa: F401  (registration; it imports bench.latent_gen)
    return dict(sorted(_TOOLS.items(), key=lambda kv: (kv[1].rank, kv[0])))
