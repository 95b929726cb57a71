"""Files written safely: atomically (readers never see a torn file), never through a planted
symbolic link, and under locks that a crashed holder cannot keep."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from pathlib import Path

from bench.core.errors import UsageError

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def find_link(folder: Path) -> Path | None:
    """The first symbolic link at or below `folder` (not followed), or None. A run or sweep
    folder holds only its own files: a planted link would send a write or a read elsewhere."""
    folder = Path(folder)
    if folder.is_symlink():
        return folder
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(parent, name)):
                return Path(parent, name)
    return None


def refuse_links(what: str, folder: Path) -> None:
    """One line naming the link when `folder` holds one (see `find_link`)."""
    link = find_link(folder)
    if link is not None:
        where = link.relative_to(folder) if link != Path(folder) else link
        raise UsageError(f"{what}: {where} is a symbolic link (to {os.readlink(link)}); a run folder holds only "
                         f"its own files, so nothing is written through it: remove the link and try again")


def open_nofollow(path: Path, mode: str = "w"):
    """open() for writing that refuses a symbolic link at `path` (O_NOFOLLOW) instead of
    writing to wherever it points."""
    return open(path, mode, newline="", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW, 0o644))


def atomic_write_bytes(path: Path, data) -> None:
    """Write through a temporary file and os.replace: readers see the old or the new file,
    never a torn one, and a full disk or a kill mid-write leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def try_lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created if needed): its fd, or None if another process holds it.

    The lock lives as long as the open file description, so a child process that inherits
    the fd keeps it after its parent dies, and the kernel drops it when the holder exits."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def locked(path: Path, what: str | None = None):
    """Hold an exclusive lock on `<path>.lock` (filelock's FileLock) while a cache entry is
    made once by whichever process gets there first; the others say that they wait, wait,
    then read it. An unwritable folder means no lock, and at worst the entry is made twice."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path) + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            from bench.core.progress import one_off, progress
            progress(f"waiting for another process that is making {what or path.name}")
            with one_off():
                lock.acquire()
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=jsonable))


def jsonable(v):
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)


def check_plain_name(what: str, name: str) -> str:
    """Sweep names and run ids become folder names: letters, digits, `.`, `_`, `-` only."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name) or ".." in name:
        raise UsageError(f"{what} {name!r} is not a plain name; use letters, digits, '.', '_' and '-' "
                         f"(no '/', no '..', at most 200 characters)")
    return name


def last_line(path, tail: int = 4096) -> str:
    """The last non-empty line of a text file (a failed run's log: its error), or ''."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
