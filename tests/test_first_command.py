"""The README's first command, as written, on a fresh copy of the project with no network."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, hang_guard


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", setup, re.S).group(1).strip()


def scratch_venv(path: Path) -> Path:
    """A venv of its own for the command to install into, seeing this environment's packages
    read-only (a path line in a .pth file), so the pinned requirements are already satisfied and
    nothing of this environment changes: pip installs only the scratch copy (`-e .`) there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=hang_guard(120))
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    theirs = next(path.glob("lib/python*/site-packages"))
    (theirs / "aebench_parent_env.pth").write_text("\n".join(ours) + "\n")
    pip = path / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec "{path / "bin" / "python"}" -m pip "$@"\n')
    pip.chmod(0o755)
    return path


def test_readme_first_command_runs_offline_in_a_scratch_copy(tmp_path):
    command = readme_first_command()
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt "
                              "&& python run.py")
    work = tmp_path / "aebench"
    top_level = {".git", ".venv", "runs", "wandb", "data", "reports"}  # what a fresh clone lacks
    shutil.copytree(ROOT, work, ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                                         or n.endswith(".egg-info")
                                                         or (d == str(ROOT) and n in top_level)])
    # The command's own `python3 -m venv .venv` re-initialises this scratch venv in place (its
    # site-packages, and so the path line to this environment's packages, stay).
    venv = scratch_venv(work / ".venv")
    (tmp_path / "short.yaml").write_text("epochs: 1\nlimit_train: 3000\nlimit_test: 1000\n")
    cache = tmp_path / "cache"  # a user's first command: an empty cache
    env = dict(os.environ, AEBENCH_CONFIG=str(tmp_path / "short.yaml"), AEBENCH_OFFLINE="1", AEBENCH_CACHE=str(cache),
               # no other copy of Fashion-MNIST: the shipped files must serve
               AEBENCH_DEBIAN_FASHION_DIR=str(tmp_path / "no-debian"), HOME=str(tmp_path),
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", WANDB_MODE="offline",
               PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=str(venv),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
               # installing the project itself (`-e .`) builds with the setuptools already installed
               PIP_NO_BUILD_ISOLATION="0")
    env.pop("PYTHONPATH", None)
    user_pip = Path(os.path.expanduser("~/.config/pip"))
    if user_pip.is_dir():  # the package registry this machine is configured with stays reachable
        shutil.copytree(user_pip, tmp_path / ".config" / "pip")
    before = _installed()
    p = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=hang_guard(900))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "status finished" in p.stdout and "next:" in p.stdout and "wandb sync" in p.stdout
    # one unpacked copy in the cache serves every working folder: none in ./data
    assert (cache / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert f"unpacked into {cache / 'data' / 'FashionMNIST' / 'raw'}" in p.stdout and not (work / "data").exists()
    assert re.search(r"summary test/mse \d\.\d+", p.stdout)
    # The README's second command after the first, in the same copy: the dataset tests (the
    # ones a filled ./data could mislead; the whole suite would run itself inside itself) pass
    # beside the ./data the main job just filled.
    env.pop("AEBENCH_CONFIG")
    t = subprocess.run(["bash", "-c", ". .venv/bin/activate && python -m pytest -q -n 0 tests/data/test_data.py -k 'not smoke'"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=hang_guard(600))
    assert t.returncode == 0 and " passed" in t.stdout, t.stdout[-3000:] + t.stderr[-1000:]
    assert _installed() == before  # this environment is as it was


def _installed() -> dict:
    from importlib.metadata import distributions
    return {d.metadata["Name"]: (d.version, str(getattr(d, "_path", ""))) for d in distributions()}
