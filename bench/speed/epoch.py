"""What an epoch costs in a run against a bare loop doing the same work (`python -m bench.speed
--epoch`).

In each sitting, side by side, one thread each: `run.py` trains the MLP VAE 784-400-20 on
Fashion-MNIST (54,000 training images, 6,000 validated after each epoch, batch 128) for EPOCHS
epochs, and `bench/speed/bare/loop.py` does the same work as a bare preloaded loop, two epochs more
(it starts training a few seconds earlier and must outlast the run). Running the two at once
on two cores exposes both to the same machine at the same moment: run one after the other, a
sitting's ratio moved by +-30% on a shared virtual machine whose speed drifts; side by side,
by a few per cent. A sitting is two such rounds, each process held on one core and the cores
swapped for the second round, and its ratio is the geometric mean of the two rounds' (so a
core faster than the other favours neither). An epoch's cost, in both, is the wall time from
its start to the next epoch's start (for the run that holds training, validation and all it
does per epoch: best and last checkpoints, the snapshot, tracking, the console line, and its
background threads). Counted are the epochs of each that lie where both train: after both
first epochs (warm-up) and before the run's last epoch starts (both record their epoch starts
on the system's monotonic clock). A round's ratio is the run's median epoch over the bare
loop's; the benchmark reports the median over the sittings with their spread, and the run's
per-epoch work by kind (`time/epoch_work/*`, the median of its steady epochs).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--model", "mlp_vae", "--dataset", "fashion_mnist", "--hidden-dims", "400", "--latent-dim", "20",
       "--batch-size", "128", "--seed", "0", "--num-threads", "1"]


def _inside(starts: list[float], lo: float, hi: float) -> list[float]:
    """The periods between consecutive `starts` (one epoch's start to the next's) that lie
    within [lo, hi]."""
    return [b - a for a, b in zip(starts, starts[1:]) if a >= lo and b <= hi]


def _pinned(cpu):
    """A Popen preexec_fn that keeps the child on one core (None: anywhere)."""
    return None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))


class NoOverlap(RuntimeError):
    """The bare loop ended before the run's steady epochs began (a start-up slowed by a busy machine)."""


def overlapping(data_root: str, epochs: int, extra: int, limit: int, wandb: str, workdir: str, env: dict,
                cores=(None, None), tries: int = 4) -> dict:
    """`side_by_side`, the bare loop given twice the extra epochs each time the run's start-up
    outlasted it (a busy machine slows a start-up more than a loop already running)."""
    for attempt in range(tries):
        try:
            return side_by_side(data_root, epochs, extra * 2 ** attempt, limit, wandb, workdir, env, cores)
        except NoOverlap:
            if attempt == tries - 1:
                raise


def side_by_side(data_root: str, epochs: int, extra: int, limit: int, wandb: str, workdir: str, env: dict,
                 cores=(None, None)) -> dict:
    """One run of `epochs` and one bare loop of `epochs + extra`, each a process of its own, at
    the same time (on `cores`), on the first `limit` training images (0: all)."""
    runs, run_err = Path(workdir) / "runs", Path(workdir) / "run.stderr"
    with open(run_err, "w") as err:  # a file, not a pipe: nothing reads it until the run ends
        run = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *RUN, "--data-root", data_root, "--epochs",
                                str(epochs), "--runs-dir", str(runs), "--wandb", wandb,
                                *(["--limit-train", str(limit)] if limit else [])], cwd=workdir, env=env,
                               stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_pinned(cores[0]))
        bare = subprocess.run([sys.executable, str(ROOT / "bench" / "speed" / "bare" / "loop.py"), data_root,
                               str(epochs + extra), str(limit)], cwd=workdir, env=env, capture_output=True,
                              text=True, preexec_fn=_pinned(cores[1]))
        run.wait()
    # as the other benchmarks say it: which process failed, and the last line it wrote
    for name, code, stderr in (("run.py", run.returncode, run_err.read_text()),
                               ("bench/speed/bare/loop.py", bare.returncode, bare.stderr)):
        if code != 0:
            raise SystemExit(f"python -m bench.speed --epoch: {name} exited {code}: "
                             f"{(stderr.strip().splitlines() or ['?'])[-1]}")
    last = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((last / "summary.json").read_text())
    run_starts = summary["time/epoch_starts_monotonic"]
    bare_starts = json.loads(bare.stdout.strip().splitlines()[-1])["epoch_starts"]
    # Only epochs while the other is training: after both first epochs (warm-up), before the
    # run's last epoch starts (its end, the test evaluation and figures, come after that).
    lo, hi = max(run_starts[1], bare_starts[1]), min(run_starts[-1], bare_starts[-1])
    run_p, bare_p = _inside(run_starts, lo, hi), _inside(bare_starts, lo, hi)
    if not run_p or not bare_p:
        raise NoOverlap(f"the run's and the bare loop's epochs did not overlap in {epochs} epochs: give more")
    # how many epochs the bare loop needs beyond the run's to outlast it: its head start, and two
    lead = math.ceil(max(0.0, run_starts[0] - bare_starts[0]) / statistics.median(bare_p)) + 2
    return {"run_epoch_s": statistics.median(run_p), "bare_epoch_s": statistics.median(bare_p), "lead": lead,
            "epochs_counted": [len(run_p), len(bare_p)], "cores": list(cores),
            "work": {k.split("/", 2)[2]: v for k, v in summary.items() if k.startswith("time/epoch_work/")}}


def sitting(data_root: str, epochs: int, extra: int, limit: int, wandb: str, workdir: str, env: dict) -> dict:
    """Two rounds side by side, the cores swapped between them (the two cores of a virtual
    machine need not be equally fast); the sitting's ratio is the geometric mean of the two."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pairs = [(cpus[0], cpus[1]), (cpus[1], cpus[0])] if len(cpus) >= 2 else [(None, None)] * 2
    a, b = (overlapping(data_root, epochs, extra, limit, wandb, workdir, env, cores) for cores in pairs)
    return {"run_epoch_s": (a["run_epoch_s"] + b["run_epoch_s"]) / 2,
            "bare_epoch_s": (a["bare_epoch_s"] + b["bare_epoch_s"]) / 2,
            "ratio": math.sqrt(a["run_epoch_s"] / a["bare_epoch_s"] * b["run_epoch_s"] / b["bare_epoch_s"]),
            "rounds": [a, b], "epochs_counted": a["epochs_counted"] + b["epochs_counted"],
            "work": {k: (v + b["work"].get(k, v)) / 2 for k, v in a["work"].items()}}


def epoch(data_root: str, sittings: int = 5, epochs: int = 6, wandb: str = "offline", limit: int = 0) -> dict:
    """`sittings` sittings after one warm-up round (the decoded-data cache and the page cache,
    and how many epochs the bare loop needs to outlast the run), on the first `limit` training
    images (0: all)."""
    if epochs < 4:
        raise ValueError(f"epochs: {epochs}; give at least 4 (the first warms up, the last ends the run)")
    with tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, WANDB_SILENT="true", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        # the warm-up round's bare loop outlasts the run's start-up (a few seconds) however short
        # its epochs: 2 more of the whole set's (4 s each), more the fewer the images
        warm_extra = 2 if not limit else 4 + 60000 // limit
        extra = overlapping(data_root, 4, warm_extra, limit, wandb, workdir, env)["lead"]
        rows = []
        for i in range(sittings):
            r = sitting(data_root, epochs, extra, limit, wandb, workdir, env)
            rows.append(r)
            print(f"  sitting {i + 1}/{sittings}: run {r['run_epoch_s']:.3f} s/epoch, bare loop "
                  f"{r['bare_epoch_s']:.3f} s/epoch, {r['ratio']:.3f}x (rounds "
                  + ", ".join(f"{x['run_epoch_s'] / x['bare_epoch_s']:.3f}x" for x in r["rounds"]) + ")", flush=True)
    ratios = [r["ratio"] for r in rows]
    work = {k: statistics.median(r["work"].get(k, 0.0) for r in rows) for k in rows[-1]["work"]}
    return {"sittings": rows, "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
            "max_ratio": max(ratios), "median_run_epoch_s": statistics.median(r["run_epoch_s"] for r in rows),
            "median_bare_epoch_s": statistics.median(r["bare_epoch_s"] for r in rows), "epoch_work_s": work,
            "wandb": wandb, "epochs": epochs, "limit_train": limit or None}


def epoch_table(r: dict) -> str:
    images = f"{r['limit_train']:,} (90% trained)" if r["limit_train"] else "54,000"
    lines = [f"marginal epoch, run / bare loop side by side, one thread each (MLP VAE 784-400-20, Fashion-MNIST "
             f"{images} images, batch 128, validation each epoch; W&B {r['wandb']}; {r['epochs']} epochs), median of "
             f"{len(r['sittings'])} sittings: {r['median_ratio']:.3f}x (spread {r['min_ratio']:.3f}-"
             f"{r['max_ratio']:.3f}; run {r['median_run_epoch_s']:.3f} s, bare {r['median_bare_epoch_s']:.3f} s)",
             "the run's work per epoch beside training and validation (seconds, median over sittings):"]
    lines += [f"  {k:<18}{v:8.4f}" for k, v in sorted(r["epoch_work_s"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
