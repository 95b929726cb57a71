"""Decoded datasets cached as uint8 tensors on disk.

Decoding a dataset with torchvision's classes costs seconds (and importing torchvision
itself imports torch's compiler stack); the tensors it yields are the same every time.
The first run decodes and stores them under the user cache folder (`data/decoded/`); a
later run whose files are unchanged loads them in a fraction of a second. Entries are
keyed by the dataset, its folder and the size and modification time of every file in it,
and checked by byte size and SHA-256 before use: a torn or altered entry is decoded anew.
Entries hold tensors and strings only and are read weights-only: nothing in them runs.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import torch

from bench.data import Source, Split

_SPLITS = ("train", "test", "labelled")
_MAX_LISTED = 2000  # a folder with more entries (CelebA's images) is signed by its count and mtime


def _signature(folder: Path) -> list:
    """(relative path, size, mtime) of each file under `folder`, recursively; [] if absent."""
    out = []
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        if len(filenames) > _MAX_LISTED:
            st = os.stat(dirpath)
            out.append([os.path.relpath(dirpath, folder), len(filenames), st.st_mtime_ns])
            continue
        for f in sorted(filenames):
            st = os.stat(os.path.join(dirpath, f))
            out.append([os.path.relpath(os.path.join(dirpath, f), folder), st.st_size, st.st_mtime_ns])
    return out


def _entry(name: str, folder: Path, variant: str) -> Path:
    from bench.core.cache import cache_root

    key = json.dumps([name, str(folder.resolve()), variant, _signature(folder)])
    return cache_root() / "data" / "decoded" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def _pack(src: Source) -> dict:
    out = {"classes": [str(c) for c in src.classes], "attr_names": [str(a) for a in src.attr_names]}
    for s in _SPLITS:
        split = getattr(src, s)
        if split is not None:
            out.update({f"{s}/{k}": getattr(split, k) for k in ("x", "y", "attrs") if getattr(split, k) is not None})
    return out


def _unpack(d: dict) -> Source:
    splits = {s: Split(d[f"{s}/x"], d.get(f"{s}/y"), d.get(f"{s}/attrs")) if f"{s}/x" in d else None
              for s in _SPLITS}
    return Source(splits["train"], splits["test"], list(d["classes"]), list(d["attr_names"]), splits["labelled"])


def _read(path: Path) -> Source | None:
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes()
        if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            return None
        return _unpack(torch.load(io.BytesIO(data), weights_only=True))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError):
        return None


def _write(path: Path, src: Source) -> None:
    from bench.core.files import atomic_write_bytes, atomic_write_text

    buf = io.BytesIO()
    torch.save(_pack(src), buf)
    data = buf.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        atomic_write_text(path.with_suffix(".json"), json.dumps(
            {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    except OSError:
        pass  # an unwritable cache costs a decode next time, nothing else


def decoded(name: str, folder: Path, variant: str, decode: Callable[[], Source]) -> Source:
    """`decode()`'s Source for the files in `folder`, from the cache when they are unchanged.
    `variant` names whatever else changes the result (a split choice)."""
    from bench.core.files import locked

    path = _entry(name, Path(folder), variant)
    src = _read(path)
    if src is not None:
        return src
    with locked(path, f"the decoded copy of {name}"):
        src = _read(path)  # another process may have written it while this one waited
        if src is None:
            from bench.core.progress import one_off
            with one_off():
                src = decode()
                _write(path, src)
    return src
