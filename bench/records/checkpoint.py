"""Checkpoints: everything needed to continue a run bit for bit (`bench.records.rebuild` rebuilds a
finished run's model from them).

`last.pt` holds model, optimiser, the epoch history and every RNG state at the end of
the last finished epoch; `best.pt` holds the weights of the best epoch. Both are
written to a temporary file and moved into place, so a kill never leaves a torn file;
during training they are written by a background thread (`Writer`).
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from bench.core.errors import UsageError


def save(path: Path, state: dict) -> None:
    """Serialise in memory, then write atomically through Python's file API: a full or
    read-only disk raises OSError (recorded as a storage fault), never a torn file."""
    from bench.core.files import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getbuffer())


def _copied(obj):
    """A checkpoint's contents as they are now: tensors cloned, containers copied, so that
    training on while it is written cannot change what is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _copied(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copied(v) for v in obj)
    return obj


class Writer:
    """Checkpoint writes off the training loop's path: `submit` copies the state (a memory copy,
    under a millisecond for a 650k-parameter model and its optimiser) and one background
    thread serialises and writes it, in submission order, each file atomically (`save`). The
    next epoch trains meanwhile. A kill mid-write leaves the previous file whole, so a resume
    starts from the epoch before and trains the same epoch again, bit for bit. `wait` returns
    when every write is on disk and raises the first one's OSError (a full disk): the caller
    waits before the files are read (test evaluation) and before the process ends."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending = []

    def submit(self, path: Path, state: dict, then=None) -> None:
        self._raise_failed()
        self._pending.append(self._pool.submit(self._write, Path(path), _copied(state), then))

    @staticmethod
    def _write(path, state, then):
        save(path, state)
        if then is not None:
            then()

    def _raise_failed(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()  # re-raises the write's exception here, in the training thread

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint's contents, restricted to tensors and plain data.

    `weights_only=True` makes the unpickler refuse every class outside torch's allow-list,
    so a crafted file (runs are shared as folders and W&B artifacts) cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} is missing")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        reason = " ".join(str(e).split())[:160] if "weights_only" in str(e) or "Unsupported" in str(e) else ""
        raise UsageError(f"cannot read checkpoint {path} ({type(e).__name__}"
                         f"{': refused, it holds more than tensors and plain data' if reason else ''})") from None
    missing = [k for k in ("model", "in_shape", "num_classes") if not isinstance(state, dict) or k not in state]
    if missing:
        raise UsageError(f"checkpoint {path} is not an aebench checkpoint (no {', '.join(missing)})")
    shape, classes = state["in_shape"], state["num_classes"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise UsageError(f"checkpoint {path}: in_shape {shape!r} is not (channels, height, width) of positive integers")
    if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 0):
        raise UsageError(f"checkpoint {path}: num_classes {classes!r} is not a count")
    return state


def load_weights(model, state: dict, path: Path) -> None:
    """Load a checkpoint's weights into `model`; a checkpoint of another architecture is bad input."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = " ".join(str(e).split())[:160]
        raise UsageError(f"checkpoint {path} does not fit this run's model ({first})") from None


def rng_state(shuffle: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
