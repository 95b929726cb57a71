"""Sweep YAMLs are valid W&B configs run.py accepts; the local runner runs, resumes, refuses."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.config import parse_args, resolve
from bench.sweep import command_for, load_sweep, plan
from conftest import ROOT, run_cli

YAMLS = sorted((ROOT / "sweeps").glob("*.yaml"))
EXPECTED_RUNS = {"fashion_vae_dims": 6, "fashion_vae_depth": 12, "cifar10_dae_noise": 12, "cifar10_models": 12,
                 "cifar10_mcae_mask": 9, "celeba_sparse_lambda": 9, "celeba_models": 12,
                 "mnist_linear_vs_conv": 12, "colored_mnist_denoise": 18, "stl10_ssl": 3, "latent_dims": 18,
                 "cifar10_cnn": 3, "stl10_supervised": 3, "stl10_resnet_probe": 3, "brain_tumor_seg": 6}


def test_every_required_sweep_exists():
    assert set(EXPECTED_RUNS) <= {p.stem for p in YAMLS}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_is_a_valid_wandb_sweep(path):
    cfg = load_sweep(str(path))  # W&B's schema plus run.py's keys, types and ranges
    assert cfg["program"] == "run.py"
    # `wandb agent` runs the command: the literal --sweep puts its runs in the sweep's group and folder
    assert cfg["command"] == ["${env}", "${interpreter}", "${program}", f"--sweep={cfg['name']}", "${args}"]
    assert cfg["metric"]["name"].startswith("val/") and cfg["metric"]["goal"] in ("minimize", "maximize")
    runs = plan(cfg, None if cfg["method"] == "grid" else 5)
    if path.stem in EXPECTED_RUNS:
        assert len(runs) == EXPECTED_RUNS[path.stem]
    if path.stem != "fashion_vae_dims" and cfg["method"] == "grid" and "seed" in cfg["parameters"]:
        assert len(cfg["parameters"]["seed"]["values"]) >= 3
    for params in runs:  # the exact argv an agent would pass, through run.py's parser
        argv = command_for(params, [], "x", "runs")[2:]
        cfg_run = resolve(parse_args(argv)[0])
        for k, v in params.items():
            if k != "mlp_dims":
                assert getattr(cfg_run, k) == (list(v) if isinstance(v, list) else v)


def test_fashion_pairs_stay_pairs():
    runs = plan(load_sweep(str(ROOT / "sweeps" / "fashion_vae_dims.yaml")), None)
    pairs = [tuple(r["mlp_dims"]) for r in runs]
    assert pairs == [(400, 50), (400, 10), (400, 30), (300, 35), (300, 5), (300, 40)]
    cfg = resolve(parse_args(command_for(runs[3], [], "x", "runs")[2:])[0])
    assert cfg.hidden_dims == [300] and cfg.latent_dim == 35


def test_dry_run_prints_count(tmp_path):
    p = run_cli([ROOT / "sweeps" / "fashion_vae_dims.yaml", "--dry-run", "--seed", 1], cwd=tmp_path,
                script="bench.sweep")
    assert p.returncode == 0 and p.stdout.strip().endswith("6 runs")
    assert "--seed=1" in p.stdout and "--seed=0" not in p.stdout


SWEEP4 = """name: s4
program: run.py
method: grid
metric: {name: val/loss, goal: minimize}
parameters:
  model: {value: linear_ae}
  dataset: {value: synthetic}
  latent_dim: {values: [4, 8]}
  seed: {values: [0, 1]}
  epochs: {value: %d}
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args}
"""


def _finished(runs_dir):
    from analysis.load import load_local
    f = load_local(str(runs_dir))
    return sorted(f[f["status"] == "finished"]["run_id"]) if len(f) else []


@pytest.mark.slow
def test_four_run_sweep_with_two_workers_and_restart(tmp_path):
    y = tmp_path / "s4.yaml"
    y.write_text(SWEEP4 % 6)
    args = [sys.executable, "-m", "bench.sweep", str(y), "--workers", "2", "--runs-dir", "runs",
            "--wandb", "disabled", "--limit-train", "1500", "--batch-size", "16"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    t0 = time.time()
    while len(_finished(tmp_path / "runs")) < 2:
        assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its runs die together
    proc.wait()
    first = _finished(tmp_path / "runs")
    assert 2 <= len(first) < 4
    p = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    launched = [l for l in p.stdout.splitlines() if l.startswith("[")]
    assert len(launched) == 4 - len(first)  # only the remaining runs ran
    final = _finished(tmp_path / "runs")
    assert len(final) == 4 and set(first) <= set(final)


def test_failing_run_is_recorded_and_sweep_goes_on(tmp_path):
    y = tmp_path / "lr.yaml"
    y.write_text(SWEEP4.replace("latent_dim: {values: [4, 8]}", "lr: {values: [1.0e6, 1.0e-3]}")
                 .replace("seed: {values: [0, 1]}", "seed: {value: 0}").replace("linear_ae", "mlp_vae") % 1)
    p = run_cli([y, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 300], cwd=tmp_path,
                script="bench.sweep")
    assert p.returncode == 1
    assert "failed" in p.stdout and "finished" in p.stdout
    from analysis.load import load_local
    f = load_local(str(tmp_path / "runs"))
    assert sorted(f["status"]) == ["failed", "finished"]


@pytest.mark.parametrize("text,needle", [
    ("method: grid\nparameters: [", "not valid YAML"),
    ("program: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\n"
     "parameters:\n  nois_std: {values: [0.1]}\n", "unknown parameter 'nois_std'"),
    ("program: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\n"
     "parameters:\n  latent_dim: {values: []}\n", "invalid sweep config"),
    ("program: run.py\nmethod: grid\nparameters: {}\n", "invalid sweep config"),
    ("program: run.py\nmethod: grid\nparameters:\n  noise_std: {values: [0.1, 7.0]}\n", "out of range"),
    ("program: run.py\nmethod: random\nparameters:\n  lr: {values: [0.1]}\n", "--count"),
])
def test_bad_sweeps_exit_2_with_one_line(tmp_path, text, needle):
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    p = run_cli([y, "--dry-run"], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
