"""The local run store, on disk: one directory per run, its files written safely and read safely
while runs are writing (what a run logs goes through `bench.records.track`, which writes here).

    runs/<run_id>/
      config.json     resolved config (written once, atomically)
      metrics.jsonl   one JSON row per finished epoch, appended and fsynced
      summary.json    status, test metrics, timings (rewritten atomically)
      heartbeat       touched while the process lives
      last.pt best.pt checkpoints (atomic replace)
      figures/*.png

A reader never sees a half-written row: whole-file writes go through a temporary file
and os.replace, and a metrics line without its newline is ignored with a warning.
A run whose summary says `running` but whose process is gone reads as `crashed`.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Optional

import psutil

from bench.core.errors import UsageError
from bench.core.files import (atomic_write_json, atomic_write_text, check_plain_name, jsonable, open_nofollow,
                              refuse_links, try_lock)

HEARTBEAT_SECONDS = 10
STALE_SECONDS = 120  # a remote run silent this long is considered crashed


class RecordError(UsageError):
    """A run's own record (config.json, summary.json) is unreadable or not what we wrote."""


# Bounds on what a run's JSON record may be, and the types of the fields read before use.
MAX_RECORD_BYTES = 8 << 20
_NUMBER = (int, float)
RECORD_TYPES = {"summary.json": {"pid": int, "pid_started": _NUMBER, "host": str, "status": str, "started_at": _NUMBER,
                                 "finished_at": _NUMBER, "updated_at": _NUMBER, "epoch": int, "best_epoch": int,
                                 "best_value": _NUMBER, "sweep_params": str, "sweep_fixed": str, "run_id": str},
                "config.json": {"model": str, "dataset": str, "epochs": int, "seed": int}}


_HELD_LOCKS: list[int] = []


def release_run_locks() -> None:
    """Drop the run locks this process holds (the kernel does it at exit; in-process callers need it)."""
    while _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(_HELD_LOCKS.pop())


def new_run_id(model: str, dataset: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model}-{dataset}-{secrets.token_hex(3)}"


class RunDir:
    RECON_ARRAYS = "recon_fixed.npz"  # the same first test images and their reconstructions, as uint8 arrays

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name
        self._beat: Optional[threading.Thread] = None
        self._stop_beat = threading.Event()
        self._lock_fd: Optional[int] = None

    # -- creation
    @classmethod
    def create(cls, runs_dir: str, model: str, dataset: str) -> "RunDir":
        root = Path(runs_dir)
        for _ in range(100):
            path = root / new_run_id(model, dataset)
            try:
                root.mkdir(parents=True, exist_ok=True)
                path.mkdir()  # atomic: two processes can never own the same id
                (path / "figures").mkdir()
                run = cls(path)
                run.lock()
                return run
            except FileExistsError:
                if not root.is_dir():
                    raise UsageError(f"--runs-dir {runs_dir}: not a directory") from None
                continue
            except OSError as e:
                raise UsageError(f"--runs-dir {runs_dir}: cannot create a run there "
                                 f"({e.strerror or type(e).__name__})") from None
        raise UsageError(f"--runs-dir {runs_dir}: could not allocate a run id")

    def lock(self) -> None:
        """Hold this run for the life of the process: a second `--resume` of it is refused.
        A folder with a symbolic link in it is refused before anything is written."""
        refuse_links(f"run {self.id}", self.path)
        try:
            fd = try_lock(self.path / ".lock")
        except OSError as e:
            raise UsageError(f"run {self.id}: cannot lock {self.path} ({e.strerror or type(e).__name__})") from None
        if fd is None:
            raise UsageError(f"run {self.id} is in use by another process (a run or a resume); "
                             f"wait for it to stop")
        self._lock_fd = fd
        _HELD_LOCKS.append(fd)

    def unlock(self) -> None:
        """Let go of this run (a lock taken by `lock()` in this process)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError, ValueError):
                _HELD_LOCKS.remove(self._lock_fd)
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- files
    @property
    def figures(self) -> Path:
        (self.path / "figures").mkdir(exist_ok=True)
        return self.path / "figures"

    def ckpt(self, which: str) -> Path:
        return self.path / f"{which}.pt"

    def write_config(self, record: dict) -> None:
        atomic_write_json(self.path / "config.json", record)

    def _read_record(self, name: str, missing_ok: bool) -> dict:
        p = self.path / name
        if p.is_symlink():
            raise RecordError(f"run {self.id}: {name} is a symbolic link (to {os.readlink(p)}); "
                              f"a run's record is read only from its own files")
        try:
            if p.stat().st_size > MAX_RECORD_BYTES:
                raise RecordError(f"run {self.id}: {name} is {p.stat().st_size:,} bytes, over the "
                                  f"{MAX_RECORD_BYTES:,} a run's record can be")
            data = json.loads(p.read_text())
        except FileNotFoundError:
            if missing_ok:
                return {}
            raise RecordError(f"run {self.id}: {name} is missing") from None
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) else f"not valid JSON: {str(e)[:80]}"
            raise RecordError(f"run {self.id}: {name} is unreadable ({reason})") from None
        except RecursionError:
            raise RecordError(f"run {self.id}: {name} is nested too deeply to be a run's record") from None
        if not isinstance(data, dict):
            raise RecordError(f"run {self.id}: {name} holds {type(data).__name__}, not a JSON object")
        for key, kinds in (RECORD_TYPES.get(name) or {}).items():
            value = data.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise RecordError(f"run {self.id}: {name} has {key} {str(value)[:40]!r} "
                                  f"({type(value).__name__}); expected {_kind_names(kinds)}")
        return data

    def read_config(self) -> dict:
        record = self._read_record("config.json", missing_ok=False)
        for key in ("model", "dataset"):
            if not isinstance(record.get(key), str):
                raise RecordError(f"run {self.id}: config.json has no {key} name")
        return record

    def append_metrics(self, row: dict) -> None:
        line = json.dumps(row, sort_keys=True, default=jsonable) + "\n"
        with open_nofollow(self.path / "metrics.jsonl", "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rewrite_metrics(self, rows: list[dict]) -> None:
        atomic_write_text(self.path / "metrics.jsonl",
                          "".join(json.dumps(r, sort_keys=True, default=jsonable) + "\n" for r in rows))

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.path / "metrics.jsonl")

    def read_summary(self) -> dict:
        return self._read_record("summary.json", missing_ok=True)

    def update_summary(self, forget: tuple = (), **fields) -> dict:
        """Merge `fields` into summary.json (atomically); `forget` names keys to drop."""
        summary = self.read_summary()
        for key in forget:
            summary.pop(key, None)
        summary.update(fields)
        summary["updated_at"] = time.time()
        atomic_write_json(self.path / "summary.json", summary)
        return summary

    # -- liveness
    def mark_running(self) -> None:
        proc = psutil.Process()
        self.update_summary(status="running", pid=os.getpid(), host=socket.gethostname(),
                            pid_started=proc.create_time(), started_at=time.time())
        self._touch()
        self._stop_beat.clear()
        self._beat = threading.Thread(target=self._beat_loop, daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop_beat.set()

    def _touch(self):
        with open_nofollow(self.path / "heartbeat") as f:
            f.write(f"{time.time()}\n")

    def _beat_loop(self):
        while not self._stop_beat.wait(HEARTBEAT_SECONDS):
            try:
                self._touch()
            except OSError:
                pass


def _kind_names(kinds) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "text"}[k] for k in
                       (kinds if isinstance(kinds, tuple) else (kinds,)))


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a last line cut short is skipped with a warning."""
    if not path.exists():
        return []
    if path.stat().st_size > MAX_RECORD_BYTES * 16:
        raise RecordError(f"{path} is {path.stat().st_size:,} bytes, over the {MAX_RECORD_BYTES * 16:,} a run's "
                          f"per-epoch record can be")
    text = path.read_text()
    rows, lines = [], text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            warnings.warn(f"{path}: skipping unreadable line {i + 1}")
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            warnings.warn(f"{path}: skipping line {i + 1}: {type(row).__name__}, not a JSON object")
    if tail.strip():
        warnings.warn(f"{path}: last line is incomplete (truncated write); read {len(rows)} complete rows")
    return rows


def effective_status(summary: dict, run_path: Path) -> str:
    """The recorded status, except that a `running` run whose process is gone is `crashed`."""
    status = summary.get("status", "unknown")
    if status != "running":
        return status
    if summary.get("host") == socket.gethostname():
        try:
            proc = psutil.Process(summary.get("pid", -1))
            if abs(proc.create_time() - summary.get("pid_started", 0)) < 1.0:
                return "running"
        except (psutil.Error, ValueError):
            pass
        return "crashed"
    beat = run_path / "heartbeat"
    age = time.time() - (beat.stat().st_mtime if beat.exists() else 0)
    return "running" if age < STALE_SECONDS else "crashed"


def find_local_run(ref: str, runs_dir: str = "runs") -> RunDir:
    """A run by directory path or by id inside runs_dir (`bench.records.artifacts.find_run` also
    takes W&B references)."""
    if not ref:
        raise UsageError(f"no run given: name a run directory or an id in {runs_dir}/")
    if (Path(ref) / "config.json").exists():
        return RunDir(Path(ref))
    if Path(ref).is_file():  # e.g. runs/ID/summary.json
        raise UsageError(f"{ref} is a file; give its run folder ({Path(ref).parent}) or the run id")
    if Path(ref).is_dir():
        raise UsageError(f"{ref} is not a run folder: it has no config.json (a run folder holds config.json, "
                         f"summary.json and checkpoints)")
    if "/" in ref or ref in (".", ".."):  # a path (runs/<id>, as every `next:` line writes it) that is not there
        raise UsageError(f"no run at {ref}" + _closest(Path(ref).name, Path(ref).parent))
    check_plain_name("run id", ref)
    if (Path(runs_dir) / ref / "config.json").exists():
        return RunDir(Path(runs_dir) / ref)
    matches = sorted(Path(runs_dir).glob(f"*{ref}*")) if Path(runs_dir).is_dir() and ref else []
    matches = [m for m in matches if (m / "config.json").exists()]
    if len(matches) == 1:
        return RunDir(matches[0])
    named = _named(ref, Path(runs_dir))
    if len(named) == 1:
        return RunDir(named[0])
    if len(named) > 1:
        raise UsageError(f"{len(named)} runs in {runs_dir}/ are named {ref!r} ({', '.join(p.name for p in named[:4])}"
                         f"{', ...' if len(named) > 4 else ''}); give the run's id")
    raise UsageError(f"no run {ref!r}: not a run directory and not an id in {runs_dir}/ "
                     f"({len(matches)} partial matches)" + _closest(ref, Path(runs_dir)))


def _named(name: str, folder: Path) -> list[Path]:
    """The run folders in `folder` whose run was given `--name NAME` (the folder keeps its id)."""
    found = []
    for config in sorted(folder.glob("*/config.json")) if folder.is_dir() else []:
        try:
            if json.loads(config.read_text()).get("name") == name:
                found.append(config.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return found


def _closest(name: str, folder: Path) -> str:
    """'; closest: ...' naming the run ids in `folder` nearest to `name`, or ''."""
    import difflib

    ids = [p.parent.name for p in folder.glob("*/config.json")] if folder.is_dir() else []
    near = difflib.get_close_matches(name, ids, n=3, cutoff=0.4)
    return f"; closest in {folder}/: {', '.join(near)}" if near else (f"; {folder}/ holds no run" if not ids else "")


def list_runs(runs_dir: str) -> list[RunDir]:
    """Every run directory under runs_dir (sweep folders included), oldest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [RunDir(p.parent) for p in sorted(root.rglob("config.json"))]
