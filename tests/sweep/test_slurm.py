"""A sweep as a Slurm job array, against a real single-node Slurm (scripts/slurm_start.sh;
CI starts one). Tests marked `slurm` are skipped, with the reason, where none answers."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import hang_guard, refusal, run_cli, with_sigint_ignored


def _cluster() -> str | None:
    """None when a Slurm controller answers with an idle node, else why not. The controller's
    port is tried first: where none listens, `sinfo` would wait seconds to say so, in every
    process that collects this file."""
    import re
    import socket

    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (start a single-node Slurm with scripts/slurm_start.sh)"
    try:
        conf = open(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read()
    except OSError:
        return "no /etc/slurm/slurm.conf (start a single-node Slurm with scripts/slurm_start.sh)"
    host = (re.search(r"^\s*SlurmctldHost=([^\s(]+)", conf, re.M) or [None, "localhost"])[1]
    port = int((re.search(r"^\s*SlurmctldPort=(\d+)", conf, re.M) or [None, 6817])[1])
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        return f"no Slurm controller answers on {host}:{port} ({e.strerror or e}; scripts/slurm_start.sh starts one)"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo did not answer ({type(e).__name__})"
    return None if p.returncode == 0 and p.stdout.strip() else f"no Slurm node up ({p.stderr.strip()[:80]})"


WHY_NOT = _cluster()
needs_slurm = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))
GRID = """name: {name}
program: run.py
method: grid
metric: {{name: val/loss, goal: minimize}}
parameters:
  model: {{value: mlp_vae}}
  dataset: {{value: synthetic}}
  latent_dim: {{values: [2, 4, 8]}}
  seed: {{values: [0, 1]}}
  epochs: {{value: {epochs}}}
command: ["${{env}}", "${{interpreter}}", "${{program}}", "${{args}}"]
"""
FLAGS = ["--wandb", "disabled", "--limit-train", 256, "--limit-test", 64]


def _grid(tmp_path, name, epochs=2):
    y = tmp_path / f"{name}.yaml"
    y.write_text(GRID.format(name=name, epochs=epochs))
    return y


def _runs(tmp_path, name):
    folder = tmp_path / "runs" / name
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/summary.json"))]


def _configs(runs):
    return sorted(r["sweep_params"] for r in runs)


def _queue_empty(job, timeout=180):
    t0 = time.time()
    while time.time() - t0 < hang_guard(timeout):
        out = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(1)
    raise AssertionError(f"job {job} still queued after {timeout} s")


@pytest.mark.slurm
@needs_slurm
def test_a_grid_as_an_array_runs_each_configuration_once(tmp_path):
    y = _grid(tmp_path, "arr")
    p = run_cli([y, "--slurm", 3, "--wait", "--runs-dir", "runs", *FLAGS], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stdout + p.stderr
    runs = _runs(tmp_path, "arr")
    assert len(runs) == 6 and all(r["status"] == "finished" for r in runs)
    assert len(set(_configs(runs))) == 6  # each configuration exactly once across the tasks
    job = p.stdout.split("submitted Slurm job ")[1].split(":")[0]
    assert f"scancel {job}" in p.stdout and "python -m analysis.tables" in p.stdout
    assert p.stdout.count("finished  val/loss=") == 6 and "sweep arr: 6 finished" in p.stdout
    logs = sorted((tmp_path / "runs" / "arr" / "slurm").glob(f"{job}_*.log"))
    assert len(logs) == 3 and (tmp_path / "runs" / "arr" / "slurm" / "arr.sbatch").is_file()
    assert not subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip()


@pytest.mark.slow(reason="a Slurm array cancelled while it trains, then submitted again")
@pytest.mark.slurm
@needs_slurm
def test_a_cancelled_array_resubmitted_completes_without_training_twice(tmp_path):
    y = _grid(tmp_path, "cut", epochs=60)
    args = [y, "--slurm", 2, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 1024, "--limit-test", 64]
    p = run_cli(args, cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    job = p.stdout.split("submitted Slurm job ")[1].split(":")[0]
    t0 = time.time()
    while not any((r.get("epoch") or 0) >= 2 for r in _runs(tmp_path, "cut")):  # a run is under way
        assert time.time() - t0 < hang_guard(120), "no run started"
        time.sleep(0.5)
    subprocess.run(["scancel", job], check=True)
    _queue_empty(job)
    left = _runs(tmp_path, "cut")
    assert left and not all(r["status"] == "finished" for r in left)
    cut = {r["run_id"]: r.get("epoch", 0) for r in left if r["status"] in ("interrupted", "crashed")}
    p = run_cli(args + ["--wait"], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stdout + p.stderr
    runs = _runs(tmp_path, "cut")
    assert len(runs) == 6 and all(r["status"] == "finished" for r in runs), [r["status"] for r in runs]
    assert len(set(_configs(runs))) == 6  # no configuration trained in two run folders
    for r in runs:  # every epoch once: an interrupted run continued from its checkpoint
        rows = (tmp_path / "runs" / "cut" / r["run_id"] / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["epoch"] for x in rows] == list(range(1, 61))
    assert all(r["run_id"] in {x["run_id"] for x in runs} for r in left)
    assert cut, "the cancel left no run to resume"


@pytest.mark.slow(reason="a Slurm array task killed by its time limit, then resubmitted")
@pytest.mark.slurm
@needs_slurm
def test_a_task_killed_by_its_time_limit_is_resumed(tmp_path):
    y = _grid(tmp_path, "late", epochs=4000)
    args = [y, "--slurm", 1, "--time", 1, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 256,
            "--limit-test", 64, "--wait"]
    p = run_cli(args, cwd=tmp_path, script="bench.sweep", timeout=400)
    assert p.returncode == 1, p.stdout + p.stderr  # the time limit left runs unfinished: listed with their logs
    left = _runs(tmp_path, "late")
    assert left and all(r["status"] in ("interrupted", "crashed") for r in left), [r["status"] for r in left]
    assert "interrupted" in p.stdout or "crashed" in p.stdout
    assert "log: " in p.stdout


def test_without_sbatch_the_sweep_is_refused_with_the_local_command(tmp_path):
    y = _grid(tmp_path, "no")
    env = {"PATH": os.path.dirname(sys.executable)}
    p = run_cli([y, "--slurm", 2, "--runs-dir", "runs"], cwd=tmp_path, script="bench.sweep", env=env)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "no `sbatch` on PATH" in lines[0], p.stderr
    assert "--workers auto" in lines[0] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("extra,needle", [(["--slurm", 0], "--slurm 0: give a number of array tasks >= 1"),
                                          (["--slurm", 2, "--wandb-agent", "x/y"], "give ENTITY/PROJECT/SWEEP_ID"),
                                          (["--slurm", 2, "--time", 0], "--time 0: out of range")])
def test_bad_slurm_flags_are_one_line(tmp_path, capsys, extra, needle):
    from bench.sweep.command import main

    code, lines = refusal(main, [_grid(tmp_path, "bad"), *extra, "--runs-dir", tmp_path / "runs"], capsys)
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.slurm
@needs_slurm
def test_an_unknown_partition_is_refused_before_submitting(tmp_path):
    p = run_cli([_grid(tmp_path, "part"), "--slurm", 2, "--partition", "nope", "--runs-dir", "runs"], cwd=tmp_path,
                script="bench.sweep")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "--partition nope: no such partition; valid:" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path):
    y = _grid(tmp_path, "dry")
    p = run_cli([y, "--slurm", 4, "--dry-run", "--cpus-per-task", 2, "--gpus-per-task", 1, "--mem", "8G",
                 "--time", 30, "--partition", "gpu", "--requeue", "--workers", "auto", "--runs-dir", "runs", *FLAGS],
                cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    text = p.stdout
    for line in ("#SBATCH --array=0-3", "#SBATCH --cpus-per-task=2", "#SBATCH --gpus-per-task=1", "#SBATCH --mem=8G",
                 "#SBATCH --time=30", "#SBATCH --partition=gpu", "#SBATCH --requeue"):
        assert line in text.splitlines(), line
    run = next(line for line in text.splitlines() if line.startswith("exec "))
    assert "-m bench.sweep" in run and "--workers auto" in run and "--limit-train 256" in run
    assert str(tmp_path / "runs") in run and not (tmp_path / "runs").exists()  # absolute paths; nothing written
    p = run_cli([y, "--slurm", 2, "--dry-run", "--wandb-agent", "me/aebench/abc123", "--runs-dir", "runs"],
                cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0 and "exec wandb agent me/aebench/abc123" in p.stdout.splitlines()


@pytest.mark.slurm
@needs_slurm
def test_ctrl_c_while_waiting_cancels_the_array_in_one_line(tmp_path):
    import signal

    from conftest import ROOT

    y = _grid(tmp_path, "intr", epochs=400)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(with_sigint_ignored([sys.executable, "-m", "bench.sweep", y, "--slurm", 2, "--wait",
                                                 "--runs-dir", "runs", *FLAGS]), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list((tmp_path / "runs" / "intr").glob("*/summary.json")):  # the array has started a run
        assert proc.poll() is None and time.time() - t0 < hang_guard(120), proc.communicate()
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=hang_guard(60))
    assert proc.returncode == 130, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cancelled Slurm job "), err
    _queue_empty(lines[0].split()[3].rstrip(":"))


def _suite_args(runs="runs"):
    from conftest import ROOT

    return ["standard", "--scale", "tiny", "--families", "ae,linear_ae", "--datasets", "mnist,fashion_mnist",
            "--data-root", str(ROOT.parent / "shared" / "datasets"), "--runs-dir", runs, "--wandb", "disabled"]


def test_the_suite_as_an_array_is_a_script_whose_tasks_run_the_suite(tmp_path):
    """`bench.suite --slurm N --dry-run`: each task runs the suite itself (its datasets, families,
    backbone and flags, without --slurm) on one absolute runs folder; nothing is written."""
    p = run_cli([*_suite_args(), "--slurm", 3, "--gpus-per-task", 1, "--time", 240, "--dry-run"], cwd=tmp_path,
                script="bench.suite")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "#SBATCH --array=0-2" in lines and "#SBATCH --gpus-per-task=1" in lines and "#SBATCH --time=240" in lines
    run = next(line for line in lines if line.startswith("exec "))
    assert "-m bench.suite standard --scale tiny --datasets mnist,fashion_mnist --backbone shared" in run
    assert "--families ae,linear_ae" in run and f"--runs-dir {tmp_path / 'runs'}" in run and "--slurm" not in run
    assert not (tmp_path / "runs").exists()
    env = {"PATH": os.path.dirname(sys.executable)}
    p = run_cli([*_suite_args(), "--slurm", 2], cwd=tmp_path, script="bench.suite", env=env)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "python -m bench.suite standard --scale tiny" in lines[0], p.stderr


@pytest.mark.slow(reason="the tiny suite as a Slurm job array: every family, seed and dataset")
@pytest.mark.slurm
@needs_slurm
def test_the_suite_as_an_array_runs_every_family_seed_and_dataset_once(tmp_path):
    """Two tasks share the suite's runs: every (dataset, family, seed) trained exactly once, on
    the suite's budget and shared backbone, and the leaderboard reads them."""
    from bench.records.store import list_runs

    p = run_cli([*_suite_args(), "--slurm", 2, "--wait"], cwd=tmp_path, script="bench.suite", timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "python -m analysis.leaderboard standard --scale tiny --runs runs" in p.stdout
    runs = list(list_runs(str(tmp_path / "runs" / "suite_standard_tiny")))
    configs = [(r.read_config()["dataset"], r.read_config()["model"], r.read_config()["seed"]) for r in runs]
    assert len(configs) == 12 and len(set(configs)) == 12, configs  # 2 datasets x 2 families x 3 seeds, once each
    assert all(r.read_summary()["status"] == "finished" for r in runs)
    ae = [r.read_config() for r in runs if r.read_config()["model"] == "ae"]
    assert all(c["channels"] == [32, 64, 128] and c["latent_dim"] == 16 and c["epochs"] == 1 for c in ae)
    job = p.stdout.split("submitted Slurm job ")[1].split(":")[0]
    assert len(list((tmp_path / "runs" / "suite_standard_tiny" / "slurm").glob(f"{job}_*.log"))) == 2
    board = run_cli(["standard", "--scale", "tiny", "--runs", "runs", "--out", "board"], cwd=tmp_path,
                    script="analysis.leaderboard")
    assert board.returncode == 0, board.stderr
    assert {r.split(",")[1] for r in (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()[1:]} == \
        {"ae", "linear_ae"}
