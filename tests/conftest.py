"""Shared test helpers: run the CLI in-process or as a subprocess, on a temporary store."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# Tests never reach the network and never wait on W&B servers.
os.environ.setdefault("AEBENCH_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# Shared caches (sample-quality feature networks) stay out of the user's home during tests.
os.environ.setdefault("AEBENCH_CACHE", tempfile.mkdtemp(prefix="aebench-cache-"))
sys.path.insert(0, str(ROOT))


def real_fashion_root():
    """A data root holding real Fashion-MNIST, or None (with the reason checked by callers)."""
    if (SHARED_DATA / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists():
        return str(SHARED_DATA)
    return None


def needs_fashion():
    root = real_fashion_root()
    if root is None and not DEBIAN_FASHION.exists():
        pytest.skip(f"real Fashion-MNIST not present: neither {SHARED_DATA}/FashionMNIST nor {DEBIAN_FASHION}")
    return root


@pytest.fixture
def fashion_root(tmp_path):
    root = needs_fashion()
    return root or str(tmp_path / "data")  # Debian files are unpacked there on first use


def run_cli(args, cwd, timeout=600, env=None, script="run.py"):
    """Run a CLI as a real process; returns CompletedProcess with text output."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    cmd = [sys.executable, str(ROOT / script)] if script.endswith(".py") else [sys.executable, "-m", script]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def run_inproc(args, capsys=None):
    """Run run.py's main in this process; returns the exit code (SystemExit is caught)."""
    from bench.runner import main

    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def quick(tmp_path, *extra, model="ae", dataset="synthetic", epochs=2):
    return ["--model", model, "--dataset", dataset, "--epochs", epochs, "--runs-dir", tmp_path / "runs",
            "--wandb", "disabled", "--limit-train", 400, "--limit-test", 100, "--batch-size", 64, *extra]


def only_run(tmp_path):
    from bench.store import list_runs

    runs = list_runs(str(tmp_path / "runs"))
    assert len(runs) == 1, runs
    return runs[0]
