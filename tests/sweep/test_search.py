"""Sweeps that search: W&B's early termination (hyperband) and Bayesian proposals, in the local runner."""
import json
import math
import os
import random
import shutil
import warnings

import numpy as np
import pytest
from conftest import ROOT, built_once, run_cli

from bench.records.store import RunDir
from bench.run import stopping
from bench.sweep.file import load_sweep
from bench.sweep.plan import propose

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from sweeps import RunState, SweepRun, stop_runs

# The acceptance sweep: 8 tiny random runs over lr, 6 epochs, hyperband from epoch 1, halving.
SEARCH = """name: search
program: run.py
method: random
metric: {name: val/loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 1, eta: 2}
parameters:
  model: {value: mlp_vae}
  dataset: {value: synthetic}
  lr: {distribution: log_uniform_values, min: 1.0e-6, max: 1.0e-2}
  epochs: {value: 6}
  seed: {value: 0}
command: ["${env}", "${interpreter}", "${program}", "${args}"]
"""
# One worker and a seeded search: the draws, and so hyperband's decisions, are the same on every machine
FLAGS = ["--count", 8, "--workers", 1, "--search-seed", 0, "--runs-dir", "runs", "--wandb", "disabled",
         "--limit-train", 512, "--limit-test", 128]


def _search(folder):
    (folder / "search.yaml").write_text(SEARCH)
    p = run_cli([folder / "search.yaml", *FLAGS], cwd=folder, script="bench.sweep")
    assert p.returncode == 0, p.stdout + p.stderr
    (folder / "first.out").write_text(p.stdout)


@pytest.fixture(scope="session")
def searched():
    """A finished hyperband search (read only): its folder, with the runner's console in first.out."""
    return built_once("hyperband-search", _search)


def summaries(folder):
    return [json.loads(p.read_text()) for p in sorted((folder / "runs" / "search").glob("*/summary.json"))]


def test_hyperband_stops_runs_that_are_behind(searched):
    runs = summaries(searched)
    assert len(runs) == 8 and {r["status"] for r in runs} <= {"finished", "stopped"}
    stopped = [r for r in runs if r["status"] == "stopped"]
    assert stopped, "hyperband stopped no run of 8"
    for r in stopped:  # ended at an epoch boundary before the last, with test numbers of its best.pt
        assert r["epochs"] == r["stopped_epoch"] < 6 and r["stop_reason"].startswith("hyperband: best val/loss so far")
        assert math.isfinite(r["test/mse"]) and r["test/from_checkpoint"].startswith("best.pt")
        history = (searched / "runs" / "search" / r["run_id"] / "metrics.jsonl").read_text().splitlines()
        assert len(history) == r["stopped_epoch"]
    best = min(runs, key=lambda r: r["best_value"])
    assert best["status"] == "finished" and best["epochs"] == 6
    out = (searched / "first.out").read_text()
    assert "stopped" in out and f"{len(stopped)} stopped early by hyperband" in out
    assert f"{len(runs) - len(stopped)} finished" in out.splitlines()[-1]


def test_a_stopped_run_is_done(searched, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(searched, folder)
    p = run_cli([folder / "search.yaml", *FLAGS], cwd=folder, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    assert "8 finished already" in p.stdout and "[" not in p.stdout  # no run started, none reported
    assert len(summaries(folder)) == 8
    stopped = next(r for r in summaries(folder) if r["status"] == "stopped")
    p = run_cli(["--resume", stopped["run_id"], "--runs-dir", "runs/search"], cwd=folder)
    assert p.returncode == 2 and "stopped early by its sweep's early termination" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_tables_show_stopped_runs_apart(searched):
    p = run_cli(["--runs", "runs", "--sweep", "search", "--format", "csv"], cwd=searched, script="analysis.tables")
    assert p.returncode == 0, p.stderr
    n = sum(r["status"] == "stopped" for r in summaries(searched))
    assert f"{n} run(s) were stopped early" in p.stderr
    from io import StringIO

    import pandas as pd

    table = pd.read_csv(StringIO(p.stdout))
    assert table["stopped"].sum() == n
    alone = table[table["runs"] == 0]  # configurations only stopped runs tried: shown, never averaged
    assert len(alone) and alone["test/mse"].isna().all()


HISTORIES = {  # run -> (state, val/loss per epoch): a recorded set, stopped by hand and by the runner
    "a": ("finished", [10, 9, 8, 7, 6, 5]), "b": ("running", [10, 10, 10]), "c": ("running", [11, 8, 7, 7]),
    "d": ("running", [9, 7]), "e": ("stopped", [12]), "f": ("running", [12.5]), "g": ("running", [9.5, 9.4, 9.3]),
}


def _record(folder, name, state, losses, fixed):
    run = RunDir(folder / name)
    run.path.mkdir(parents=True)
    run.write_config({"model": "mlp_vae", "dataset": "synthetic"})
    for i, v in enumerate(losses, 1):
        run.append_metrics({"epoch": i, "val/loss": v, "train/loss": v + 1})
    run.update_summary(status=state, sweep_params=json.dumps({"lr": len(losses)}), sweep_fixed=fixed, run_id=name)
    if state == "running":  # this process stands in for the run's own
        import socket

        import psutil

        run.update_summary(pid=os.getpid(), pid_started=psutil.Process().create_time(), host=socket.gethostname())


@pytest.mark.parametrize("et", [{"type": "hyperband", "min_iter": 1, "eta": 2},
                                {"type": "hyperband", "min_iter": 2, "eta": 2, "strict": True},
                                {"type": "hyperband", "max_iter": 8, "s": 2, "eta": 2}], ids=["min1", "strict", "max8"])
def test_local_decisions_equal_wandbs(tmp_path, et):
    cfg = {"method": "random", "metric": {"name": "val/loss", "goal": "minimize"}, "early_terminate": et}
    for name, (state, losses) in HISTORIES.items():
        _record(tmp_path, name, state, losses, '{"epochs": 6}')
    _record(tmp_path, "other-flags", "finished", [1, 1, 1, 1], '{"epochs": 4}')  # not this sweep's settings
    local = stopping.decide(cfg, stopping.sweep_runs(tmp_path, '{"epochs": 6}'))
    state = {"finished": RunState.finished, "running": RunState.running, "stopped": RunState.killed}
    direct = stop_runs(cfg, [SweepRun(name=n, state=state[s], history=[{"val/loss": v} for v in h])
                             for n, (s, h) in HISTORIES.items()])
    assert set(local) == {r.name for r in direct}
    assert local and set(local) < {n for n, (s, _) in HISTORIES.items() if s == "running"}  # some, not all
    assert all(r.startswith("hyperband: ") and "val/loss" in r and "threshold" in r for r in local.values())


def _best_distance(method: str, seed: int, runs: int = 14) -> float:
    """How far (decades of lr) the best of `runs` proposals lies from the optimum of a cheap
    objective with a known optimum: a validation loss that is smallest at lr = 1e-3."""
    cfg = {"method": method, "metric": {"name": "val/loss", "goal": "minimize"},
           "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-1}}}

    def loss(lr):
        return (math.log10(lr) + 3.0) ** 2

    random.seed(seed)  # the engine's random search draws from `random`, its bayes search from numpy
    np.random.seed(seed)
    done = []
    for _ in range(runs):
        params = propose(cfg, done, runs)
        done.append((params, loss(params["lr"])))
    return min(abs(math.log10(p["lr"]) + 3.0) for p, _ in done)


def test_bayes_finds_a_known_optimum_closer_than_random():
    seeds = range(4)
    bayes = [_best_distance("bayes", s) for s in seeds]
    rand = [_best_distance("random", s) for s in seeds]
    assert np.mean(bayes) < 0.5 * np.mean(rand), (bayes, rand)


def test_bayes_dry_run_says_it_has_no_plan(tmp_path):
    y = tmp_path / "b.yaml"
    y.write_text(SEARCH.replace("method: random", "method: bayes"))
    p = run_cli([y, "--dry-run", "--count", 8], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    assert "chooses each run from the finished runs' val/loss, one at a time" in p.stdout
    assert "run.py" not in p.stdout and "early_terminate hyperband: runs behind at epochs 1, 2, 4" in p.stdout


def test_the_shipped_search_is_valid():
    cfg = load_sweep(str(ROOT / "sweeps" / "fashion_vae_search.yaml"))
    assert cfg["early_terminate"]["type"] == "hyperband" and cfg["method"] in ("random", "bayes")
    assert {"lr", "beta"} <= set(cfg["parameters"])


def test_a_seeded_search_proposes_the_same_runs(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text(SEARCH)
    plans = [run_cli([y, "--dry-run", "--count", 5, "--search-seed", seed], cwd=tmp_path, script="bench.sweep").stdout
             for seed in (3, 3, 4)]
    assert "--lr=" in plans[0] and plans[0] == plans[1] != plans[2]


def test_figures_over_a_search_draw_only_configurations_with_numbers(searched, tmp_path):
    """Configurations that only stopped runs tried are table rows without numbers: the
    metric-vs-lr figure leaves them out instead of breaking its line at them."""
    p = run_cli(["--runs", searched / "runs", "--sweep", "search", "--out", tmp_path / "figs"], cwd=tmp_path,
                script="analysis.plots")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "figs" / "test_mse_vs_lr.png").is_file()
