"""What an epoch costs in a run against a bare loop doing the same work (`python -m bench.speed
--epoch`).

In each sitting, one after the other: `run.py` trains the MLP VAE 784-400-20 on Fashion-MNIST
(54,000 training images, 6,000 validated after each epoch, batch 128) for EPOCHS epochs, and
`bench/bare_epochs.py` does the same work as a bare preloaded loop. An epoch's cost, in both,
is the wall time from its start to the next epoch's start: for the run that holds training,
validation and all it does per epoch (best and last checkpoints, the snapshot, tracking, the
console line); the first epoch (warm-up) is not counted. A sitting's ratio is the run's median
epoch over the bare loop's; the benchmark reports the median over the sittings with their
spread, and the run's per-epoch work by kind (`time/epoch_work/*`).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ["--model", "mlp_vae", "--dataset", "fashion_mnist", "--hidden-dims", "400", "--latent-dim", "20",
       "--batch-size", "128", "--seed", "0"]


def _median_epoch(starts: list[float]) -> float:
    periods = [b - a for a, b in zip(starts[1:], starts[2:])] or [starts[1] - starts[0]]
    return statistics.median(periods)


def sitting(data_root: str, epochs: int, wandb: str, workdir: str, env: dict) -> dict:
    """One run and one bare loop, each a process of its own."""
    runs = Path(workdir) / "runs"
    subprocess.run([sys.executable, str(ROOT / "run.py"), *RUN, "--data-root", data_root, "--epochs", str(epochs),
                    "--runs-dir", str(runs), "--wandb", wandb], cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((last / "summary.json").read_text())
    bare = subprocess.run([sys.executable, str(ROOT / "bench" / "bare_epochs.py"), data_root, str(epochs)],
                          cwd=workdir, env=env, check=True, capture_output=True, text=True)
    starts = json.loads(bare.stdout.strip().splitlines()[-1])["epoch_starts"]
    return {"run_epoch_s": summary["time/epoch_period_seconds"], "bare_epoch_s": _median_epoch(starts),
            "work": {k.split("/", 2)[2]: v for k, v in summary.items() if k.startswith("time/epoch_work/")}}


def epoch(data_root: str, sittings: int = 5, epochs: int = 4, wandb: str = "offline") -> dict:
    """`sittings` paired sittings (run, bare, run, bare, ...) after one warm-up sitting."""
    with tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, WANDB_SILENT="true", PYTHONPATH=str(ROOT))
        sitting(data_root, 2, wandb, workdir, env)  # the decoded-data cache and the page cache warm
        rows = []
        for i in range(sittings):
            r = sitting(data_root, epochs, wandb, workdir, env)
            r["ratio"] = r["run_epoch_s"] / r["bare_epoch_s"]
            rows.append(r)
            print(f"  sitting {i + 1}/{sittings}: run {r['run_epoch_s']:.3f} s/epoch, bare loop "
                  f"{r['bare_epoch_s']:.3f} s/epoch, {r['ratio']:.3f}x", flush=True)
    ratios = [r["ratio"] for r in rows]
    work = {k: statistics.median(r["work"].get(k, 0.0) for r in rows) for k in rows[-1]["work"]}
    return {"sittings": rows, "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
            "max_ratio": max(ratios), "median_run_epoch_s": statistics.median(r["run_epoch_s"] for r in rows),
            "median_bare_epoch_s": statistics.median(r["bare_epoch_s"] for r in rows), "epoch_work_s": work,
            "wandb": wandb, "epochs": epochs}


def epoch_table(r: dict) -> str:
    lines = [f"marginal epoch, run / bare loop (MLP VAE 784-400-20, Fashion-MNIST 54,000 images, batch 128, "
             f"validation each epoch; W&B {r['wandb']}), median of {len(r['sittings'])} sittings: "
             f"{r['median_ratio']:.3f}x (spread {r['min_ratio']:.3f}-{r['max_ratio']:.3f}; run "
             f"{r['median_run_epoch_s']:.3f} s, bare {r['median_bare_epoch_s']:.3f} s)",
             "the run's work per epoch beside training and validation (seconds, median over sittings):"]
    lines += [f"  {k:<18}{v:8.4f}" for k, v in sorted(r["epoch_work_s"].items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
