"""Experiment tracking: the local run store and W&B behind one small interface.

`Tracking` fans every call out to its trackers. The W&B tracker imports wandb lazily,
logs per-epoch rows with `epoch` as the x axis, and never stops a run: if W&B cannot
start or upload, one warning says how to sync later and the local record carries on.
"""
from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Optional

from bench.store import RunDir


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class Tracker:
    def log_epoch(self, row: dict) -> None: ...
    def log_images(self, images: dict[str, Path]) -> None: ...
    def log_table(self, name: str, columns: list[str], rows: list[list]) -> None: ...
    def log_summary(self, summary: dict) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...


class LocalTracker(Tracker):
    def __init__(self, run: RunDir):
        self.run = run

    def log_epoch(self, row):
        self.run.append_metrics(row)

    def log_table(self, name, columns, rows):
        import csv
        with open(self.run.path / f"{name.replace('/', '_')}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows(rows)

    def log_summary(self, summary):
        self.run.update_summary(**summary)


def wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators(os.environ.get("WANDB_BASE_URL", "api.wandb.ai")
                                            .replace("https://", ""))
        return bool(auth and auth[2])
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: Optional[str]) -> str:
    if mode:
        return mode
    return "online" if wandb_logged_in() else "offline"


SYNC_HINT = "the local record is complete; re-run with --wandb offline to keep a W&B copy for `wandb sync`"


def server_reachable(timeout: float = 3.0) -> str | None:
    """None if the W&B server accepts a TCP connection within `timeout`, else the reason.

    wandb.init waits up to its init timeout (90 s) on a dead server; this costs at most
    a few seconds and lets the run go offline at once."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout):
            return None
    except OSError as e:
        return f"{url.hostname}:{port} unreachable ({e.strerror or type(e).__name__})"


class WandbTracker(Tracker):
    def __init__(self, cfg: dict, run: RunDir, mode: str):
        import wandb  # lazy: only tracking code imports wandb

        self.wandb = wandb
        self.mode = mode
        settings = wandb.Settings(init_timeout=float(os.environ.get("AEBENCH_WANDB_INIT_TIMEOUT", 90)),
                                  silent=True, console="off", x_disable_stats=True)
        self.run = wandb.init(project=cfg.get("project"), entity=cfg.get("entity"), group=cfg.get("group"),
                              tags=list(cfg.get("tags") or []) or None, name=cfg.get("name") or run.id,
                              id=run.id, resume="allow", config=cfg, mode=mode, settings=settings,
                              job_type=cfg.get("task") or "train")
        wandb.define_metric("epoch")
        for prefix in ("train/*", "val/*", "time/*"):
            wandb.define_metric(prefix, step_metric="epoch")
        self.failed = False

    def _safe(self, fn, *a, **kw):
        if self.failed:
            return
        try:
            fn(*a, **kw)
        except Exception as e:  # an upload fault must never end a run
            self.failed = True
            warn(f"W&B logging failed ({type(e).__name__}: {e}); {SYNC_HINT}")

    def log_epoch(self, row):
        self._safe(self.run.log, dict(row))

    def log_images(self, images):
        self._safe(self.run.log, {f"figures/{k}": self.wandb.Image(str(p)) for k, p in images.items()})

    def log_table(self, name, columns, rows):
        self._safe(self.run.log, {name: self.wandb.Table(columns=columns, data=rows)})

    def log_summary(self, summary):
        def put():
            for k, v in summary.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self.run.summary[k] = v
        self._safe(put)

    def finish(self, exit_code=0):
        self._safe(self.run.finish, exit_code=exit_code)

    @property
    def sync_dir(self) -> str:
        return str(Path(self.run.settings.sync_dir))


class Tracking(Tracker):
    """Every tracker of a run; W&B joins only if it starts."""

    def __init__(self, cfg: dict, run: RunDir):
        self.trackers: list[Tracker] = [LocalTracker(run)]
        self.wandb_mode = resolve_wandb_mode(cfg.get("wandb"))
        if self.wandb_mode == "disabled":
            return
        unreachable = server_reachable() if self.wandb_mode == "online" else None
        try:
            if unreachable:
                raise ConnectionError(unreachable)
            self.trackers.append(WandbTracker(cfg, run, self.wandb_mode))
            return
        except Exception as e:
            reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
        if self.wandb_mode == "online":
            try:  # keep a W&B record anyway, to upload when the server is back
                offline = WandbTracker(cfg, run, "offline")
                self.trackers.append(offline)
                warn(f"W&B could not start online ({reason}); logging offline instead: the local record is "
                     f"complete; upload later with `wandb sync {offline.sync_dir}`")
                self.wandb_mode = "offline"
                return
            except Exception:
                pass
        warn(f"W&B could not start in {self.wandb_mode} mode ({reason}); {SYNC_HINT}")
        self.wandb_mode = "failed"

    def offline_dir(self) -> str | None:
        """The W&B offline folder of this run, to `wandb sync` later, if it logged offline."""
        for t in self.trackers:
            if isinstance(t, WandbTracker) and t.mode == "offline":
                return t.sync_dir
        return None

    def log_epoch(self, row):
        for t in self.trackers:
            t.log_epoch(row)

    def log_images(self, images):
        for t in self.trackers:
            t.log_images(images)

    def log_table(self, name, columns, rows):
        for t in self.trackers:
            t.log_table(name, columns, rows)

    def log_summary(self, summary):
        for t in self.trackers:
            t.log_summary(summary)

    def finish(self, exit_code=0):
        for t in self.trackers:
            t.finish(exit_code)
