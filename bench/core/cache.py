"""The user cache folder: what is costly to make and the same for every run.

`$AEBENCH_CACHE`, else `$XDG_CACHE_HOME/aebench`, else `~/.cache/aebench`. It holds the
sample-quality feature networks (`fd_features/`), decoded datasets (`data/`) and numba's
compiled UMAP code (`numba/`). Deleting it only costs the time to make them again.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("AEBENCH_CACHE"):
        return Path(os.environ["AEBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aebench"


def import_umap(compile: bool = True):
    """`umap`, with its numba functions compiled once and cached on disk.

    UMAP compiles about 20 s of numba code on its first fit in every process, and most of
    its functions are declared without `cache=True`, so numba's own cache never holds them.
    While umap and pynndescent are imported their decorators get `cache=True`, and
    `NUMBA_CACHE_DIR` points into the user cache folder, so only the first process ever
    pays the compilation (later ones load machine code in a fraction of a second).
    `compile=False` only imports: a process that will fork must not run UMAP's parallel code
    first (GNU OpenMP aborts a forked child that uses it again)."""
    if "umap" in sys.modules and not compile:
        return sys.modules["umap"]
    folder = cache_root() / "numba"
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))
    import numba
    from numba.core import config

    if not config.CACHE_DIR:  # numba was imported before the variable was set
        config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    real = numba.njit, numba.jit

    def cached(decorator):
        def wrapped(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)
        return wrapped

    if "umap" not in sys.modules:
        numba.njit, numba.jit = cached(real[0]), cached(real[1])
        try:
            import umap  # noqa: F401
        finally:
            numba.njit, numba.jit = real
    umap = sys.modules["umap"]
    if compile:
        _compile_once(umap, folder)
    return umap


def _compile_once(umap, folder) -> None:
    """The first process compiles UMAP's code (a tiny fit in 2-D and 3-D) and writes it to the
    cache while later ones wait on a lock, then load it: processes that start together (a
    sweep's workers) compile it once, not each."""
    import numpy as np

    from bench.core.files import locked

    marker = folder / f"compiled-umap-{umap.__version__}-numba-{__import__('numba').__version__}"
    if marker.exists():
        return
    with locked(marker, "UMAP's compiled code"):
        if marker.exists():
            return
        from bench.core.progress import one_off, progress
        progress("embed: compiling UMAP's numba code once for this machine (about 20 s on 2 cores; later runs load it)")
        z = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
        with one_off():
            for dims in (2, 3):
                umap.UMAP(n_components=dims, n_neighbors=10, random_state=0, n_jobs=1).fit_transform(z)
        try:
            marker.touch()
        except OSError:
            pass
