"""What a run logs as it trains, sent to the local run store (`bench.records.store`, the files)
and to W&B behind one small interface.

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

from bench.core.files import open_nofollow
from bench.records.store import RunDir


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class Tracker:
    def log_epoch(self, row: dict, media: dict | None = None) -> None: ...
    def log_images(self, images: dict[str, Path]) -> None: ...
    def log_table(self, name: str, columns: list[str], rows: list[list]) -> None: ...
    def log_summary(self, summary: dict) -> None: ...
    def log_checkpoints(self, run: RunDir, which: str) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...


# Summary keys that are bookkeeping of the local store (which process, when, how it was
# tracked): they stay in summary.json and never clutter the W&B summary.
BOOKKEEPING = {"pid", "pid_started", "host", "started_at", "updated_at", "finished_at", "heartbeat", "wandb_mode",
               "sweep_params", "sweep_fixed", "from_best", "run_id", "traceback", "status", "epoch", "wandb_run_id", "wandb_url",
               "wandb_offline_dirs"}
HIGHER_IS_BETTER = ("acc", "psnr", "ssim", "snr", "dice", "iou")
LOWER_IS_BETTER = ("mse", "mae")  # and every term named *loss


def direction(key: str) -> str | None:
    """The W&B summary of a validation metric: "max" for scores, "min" for losses and errors,
    None where neither extreme means better (a KL term, an L1 norm, a schedule's weight)."""
    term = key.split("/", 1)[1]
    if term in HIGHER_IS_BETTER:
        return "max"
    if term in LOWER_IS_BETTER or term.endswith("loss"):
        return "min"
    return None


def is_image(value) -> bool:
    """A table cell holding an image: a uint8 numpy array (H, W) or (H, W, C)."""
    import numpy as np
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3)


class LocalTracker(Tracker):
    def __init__(self, run: RunDir):
        self.run = run

    def log_epoch(self, row, media=None):
        self.run.append_metrics(row)

    def log_table(self, name, columns, rows):
        """A CSV beside the run's record; image columns stay in W&B (the figures hold them here)."""
        import csv
        keep = [i for i, _ in enumerate(columns) if not (rows and is_image(rows[0][i]))]
        with open_nofollow(self.run.path / f"{name.replace('/', '_')}.csv") as f:
            w = csv.writer(f)
            w.writerow([columns[i] for i in keep])
            w.writerows([[r[i] for i in keep] for r in rows])

    def log_summary(self, summary):
        self.run.update_summary(**summary)


def wandb_logged_in() -> bool:
    """Whether W&B has credentials for its server, asked the way wandb itself looks them up
    (WANDB_API_KEY, an identity-token file, this session's login, the .netrc entry of
    WANDB_BASE_URL's host, honouring NETRC); the plain .netrc read is the fallback for
    wandb versions without that API."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    # wandb's own lookup, from its module that loads in milliseconds: the public route
    # (`wandb.Api().api_key`) imports all of wandb first, about 1 s on every run's start-up.
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth, session_credentials
    except ImportError:
        read_netrc_auth = session_credentials = None
    if read_netrc_auth is not None:
        try:
            return bool(session_credentials(host=host) or read_netrc_auth(host=host))
        except Exception:  # a malformed key or file: not logged in
            return False
    try:
        auth = netrc.netrc().authenticators(host.replace("https://", "").replace("http://", ""))
        return bool(auth and auth[2])
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: Optional[str]) -> str:
    if mode:
        return mode
    return "online" if wandb_logged_in() else "offline"


SYNC_HINT = "the local record is complete; re-run with --wandb offline to keep a W&B copy for `wandb sync`"


def server_reachable(timeout: float = 4.0) -> str | None:
    """None if the W&B server answers an HTTP request within `timeout` seconds, else the reason.

    wandb.init waits up to its init timeout on a server that is down or hangs (accepts the
    connection, never answers); this costs at most a few seconds and lets the run go
    offline at once. Any HTTP answer, an error status included, means the server is up."""
    import socket
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")
    host = urlparse(base).hostname or base
    try:
        with urllib.request.urlopen(urllib.request.Request(base + "/healthz", method="GET"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"unreachable ({host} did not answer within {timeout:g} s)"
        return f"unreachable ({host}: {getattr(reason, 'strerror', None) or reason})"


def wandb_api(what: str, instead: str):
    """wandb.Api(), or one line saying why it cannot be had (no login, no server) within
    seconds: `what` begins the line (a flag or a reference), `instead` says what works without W&B."""
    from bench.core.errors import UsageError

    if not wandb_logged_in():
        raise UsageError(f"{what}: not logged in to W&B (run `wandb login` or set WANDB_API_KEY); {instead}")
    unreachable = server_reachable()
    if unreachable:
        raise UsageError(f"{what}: the W&B server is {unreachable}; {instead}")
    import wandb

    try:
        return wandb.Api(timeout=30)
    except Exception as e:
        raise UsageError(f"{what}: W&B refused ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None


def log_tables(tables: dict, *, group: str, name: str, job_type: str, mode: Optional[str]) -> str:
    """Tables ({key: (columns, rows)}) logged as `wandb.Table`s in one run of `group`
    (the leaderboard of a suite); one line says where they went."""
    import wandb

    mode = resolve_wandb_mode(mode)
    if mode == "online" and server_reachable():
        mode = "offline"
    run = wandb.init(project="aebench", group=group, job_type=job_type, mode=mode, name=name,
                     settings=wandb.Settings(silent=True),
                     dir=wandb_dir())  # ./wandb of now, not of the process's first W&B run
    for key, (columns, rows) in tables.items():
        run.log({key: wandb.Table(columns=columns, data=rows)})
    run.finish()
    return f"W&B ({mode}): group {group}, run {run.id}"


def wandb_dir() -> str:
    """Where W&B writes its folder: $WANDB_DIR where the user set it (W&B's own variable), else
    the working folder of now (wandb keeps the process's first run's folder otherwise)."""
    return os.environ.get("WANDB_DIR") or os.getcwd()


def agent_sweep() -> str | None:
    """The W&B sweep id when this process was started by `wandb agent`, else None."""
    return os.environ.get("WANDB_SWEEP_ID") or None


class WandbTracker(Tracker):
    """One W&B run per local run (same id): per-epoch rows against `epoch`, every val metric
    with its summary direction, the selection metric as `best/...`, reconstructions of fixed
    test images per snapshot epoch, tables with images, checkpoints as a `model` artifact."""

    def __init__(self, record: dict, run: RunDir, mode: str):
        import wandb  # lazy: only tracking code imports wandb

        self.wandb = wandb
        self.mode = mode
        quiet = not record.get("wandb_system", True)
        # W&B's own banner and footer only with --verbose: our lines say where the run is
        settings = wandb.Settings(init_timeout=float(os.environ.get("AEBENCH_WANDB_INIT_TIMEOUT", 10)),
                                  console="off" if quiet else "auto", x_disable_stats=quiet,
                                  silent=quiet or not record.get("verbose", False))
        config = {k: v for k, v in record.items() if k not in ("wandb_system", "verbose")}
        if agent_sweep():
            config["sweep_id"] = agent_sweep()
        self.run = wandb.init(project=record.get("project"), entity=record.get("entity"), group=record.get("group"),
                              tags=list(record.get("tags") or []) or None, name=record.get("name") or run.id,
                              id=run.id, resume="allow", config=config, mode=mode, settings=settings,
                              dir=wandb_dir(),  # ./wandb of now: wandb keeps the first run's folder otherwise
                              job_type=record.get("task") or "train")
        self.run.define_metric("epoch")
        for prefix in ("train/*", "time/*", "media/*", "test/*"):
            self.run.define_metric(prefix, step_metric="epoch")
        self.defined: set[str] = set()
        self.failed = False
        # W&B's step is the epoch: a run resumed in a fresh (offline) W&B folder goes on from
        # the epochs already logged instead of restarting at 0, so `wandb sync` of both folders
        # keeps every row; end-of-run figures and tables share the last epoch's step.
        self.step = max([int(r.get("epoch", 0)) for r in run.read_metrics() if isinstance(r.get("epoch"), int)],
                        default=0)
        where = self.run.url if mode == "online" else f"offline: {self.sync_dir}"
        print(f"W&B run {self.run.id}: {where}", flush=True)

    def _safe(self, fn, *a, **kw):
        if self.failed:
            return
        try:
            fn(*a, **kw)
        except Exception as e:  # an upload fault must never end a run
            self.failed = True
            warn(f"W&B logging failed ({type(e).__name__}: {e}); {SYNC_HINT}")

    def _define(self, row):
        """Each val metric once, with the summary W&B keeps for it: its best extreme, or the
        last value where neither extreme means better (the KL term, an L1 norm)."""
        for k in row:
            if k.startswith("val/") and k not in self.defined:
                self.run.define_metric(k, step_metric="epoch", summary=direction(k) or "last")
                self.defined.add(k)

    def log_epoch(self, row, media=None):
        def put():
            self._define(row)
            out = dict(row)
            for name, (images, caption) in (media or {}).items():
                out[name] = self.wandb.Image(images, caption=caption)
            self.step = max(self.step, int(row.get("epoch", self.step)))
            self.run.log(out, step=self.step)
        self._safe(put)

    def log_images(self, images):
        self._safe(lambda: self.run.log({f"figures/{k}": self.wandb.Image(str(p)) for k, p in images.items()},
                                        step=self.step))

    def log_table(self, name, columns, rows):
        def put():
            data = [[self.wandb.Image(v) if is_image(v) else v for v in r] for r in rows]
            self.run.log({name: self.wandb.Table(columns=columns, data=data)}, step=self.step)
        self._safe(put)

    def log_summary(self, summary):
        def put():
            for k, v in summary.items():
                if k in BOOKKEEPING:
                    continue
                if k == "best_value" and summary.get("best_metric"):
                    self.run.summary[f"best/{summary['best_metric']}"] = v
                elif k == "best_epoch":
                    self.run.summary["best/epoch"] = v
                elif v is None:  # a cleared flag (a tool that failed before and now ran): no null key
                    if k in self.run.summary.keys():
                        del self.run.summary[k]
                elif isinstance(v, (int, float, str, bool)):
                    self.run.summary[k] = v
            if summary.get("status") == "stopped":  # early-terminated: as W&B's sweeps show it, a state and a tag
                self.run.summary["state"] = "stopped"
                self.run.tags = tuple(t for t in (self.run.tags or ()) if t != "stopped") + ("stopped",)
        self._safe(put)

    def log_checkpoints(self, run, which):
        """best.pt (and last.pt for `all`) with the run's config and history, as one `model`
        artifact aliased best and latest: `wandb:ENTITY/PROJECT/model-RUNID:best` finds it."""
        if which == "none":
            return

        def put():
            summary = run.read_summary()  # the selection metric and its value, as Lightning's logger records
            metadata = {"run_id": run.id, "model": run.read_config().get("model"),
                        "best_metric": summary.get("best_metric"), "best_value": summary.get("best_value"),
                        "best_epoch": summary.get("best_epoch")}
            art = self.wandb.Artifact(f"model-{run.id}", type="model",
                                      metadata={k: v for k, v in metadata.items() if v is not None})
            names = ["best.pt", "config.json", "summary.json", "metrics.jsonl"] + (["last.pt"] if which == "all" else [])
            for n in names:
                if (run.path / n).is_file():
                    art.add_file(str(run.path / n), name=n)
            self.run.log_artifact(art, aliases=["best", "latest"])
        self._safe(put)

    def finish(self, exit_code=0):
        self._safe(self.run.finish, exit_code=exit_code)

    @property
    def sync_dir(self) -> str:
        return str(Path(self.run.settings.sync_dir))


class Tracking(Tracker):
    """Every tracker of a run; W&B joins only if it starts."""

    def __init__(self, record: dict, run: RunDir):
        self.trackers: list[Tracker] = [LocalTracker(run)]
        self.wandb_mode = resolve_wandb_mode(record.get("wandb"))
        if self.wandb_mode == "disabled":
            return
        # W&B gets the runs, not wandb's own error reports (WANDB_ERROR_REPORTING=true keeps
        # them): on a server that hangs, their upload alone holds the process ~10 s at exit.
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        unreachable = server_reachable() if self.wandb_mode == "online" else None
        try:
            if unreachable:
                raise ConnectionError(unreachable)
            self.trackers.append(WandbTracker(record, run, self.wandb_mode))
            self._note(run)
            return
        except Exception as e:
            reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
        if self.wandb_mode == "online":
            try:  # keep a W&B record anyway, to upload when the server is back
                import wandb
                wandb.teardown()  # a failed online start still holds the run id in wandb's service
                offline = WandbTracker(record, run, "offline")
                self.trackers.append(offline)
                self.wandb_mode = "offline"
                self._note(run)
                warn(f"W&B could not start online ({reason}); logging offline instead: the local record is "
                     f"complete; upload later with `wandb sync {offline.sync_dir}`")
                self.wandb_mode = "offline"
                return
            except Exception:
                pass
        warn(f"W&B could not start in {self.wandb_mode} mode ({reason}); {SYNC_HINT}")
        self.wandb_mode = "failed"

    def _note(self, run):
        """The W&B run's id and page in the local record (an agent's run has its own id)."""
        w = self.trackers[-1].run
        online = self.wandb_mode == "online"  # an offline run has no page (asking W&B warns)
        extra = {}
        if not online:  # a resumed run logs into a second offline folder: `wandb sync` needs them all
            extra["wandb_offline_dirs"] = list(dict.fromkeys(_offline_dirs(run) + [self.trackers[-1].sync_dir]))
        run.update_summary(wandb_run_id=w.id, wandb_url=(getattr(w, "url", None) or None) if online else None,
                           **extra)

    def offline_dirs(self, run) -> list[str]:
        """The W&B offline folders of this run (one per start of a resumed run), to `wandb
        sync` later, if it logged offline this time."""
        if not any(isinstance(t, WandbTracker) and t.mode == "offline" for t in self.trackers):
            return []
        return _offline_dirs(run)

    def log_epoch(self, row, media=None):
        for t in self.trackers:
            t.log_epoch(row, media)

    def log_images(self, images):
        for t in self.trackers:
            t.log_images(images)

    def log_table(self, name, columns, rows):
        for t in self.trackers:
            t.log_table(name, columns, rows)

    def log_summary(self, summary, local: bool = True):
        """Summary keys to every tracker: the local store's summary.json has this one writer
        once a run is set up; `local=False` sends what the store already holds to W&B only."""
        for t in self.trackers:
            if local or not isinstance(t, LocalTracker):
                t.log_summary(summary)

    def log_checkpoints(self, run, which):
        for t in self.trackers:
            t.log_checkpoints(run, which)

    def finish(self, exit_code=0):
        for t in self.trackers:
            t.finish(exit_code)


def _offline_dirs(run) -> list[str]:
    """The W&B offline folders a run's summary records (`wandb_offline_dirs`), oldest first."""
    return [f for f in run.read_summary().get("wandb_offline_dirs") or [] if isinstance(f, str)]


def sync_hint(folders: list[str]) -> str:
    """The command that uploads offline folders, with what it needs first where W&B has no login."""
    import shlex

    command = "wandb sync " + " ".join(shlex.quote(f) for f in folders)
    if wandb_logged_in():
        return f"  {command}   # upload this run to W&B"
    return f"  wandb login && {command}   # upload this run to W&B (needs an account: no login here yet)"
