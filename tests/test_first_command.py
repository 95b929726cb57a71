"""The README's first command, as written, on a fresh copy of the project with no network."""
import os
import re
import shutil
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import ROOT


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", setup, re.S).group(1).strip()


@pytest.mark.slow
def test_readme_first_command_runs_offline_in_a_scratch_copy(tmp_path):
    command = readme_first_command()
    assert command.startswith("pip install -r requirements.txt && python run.py")
    work = tmp_path / "aebench"
    top_level = {".git", ".venv", "runs", "wandb", "data", "reports"}  # what a fresh clone lacks
    shutil.copytree(ROOT, work, ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                                         or (d == str(ROOT) and n in top_level)])
    (tmp_path / "short.yaml").write_text("epochs: 1\nlimit_train: 3000\nlimit_test: 1000\n")
    env = dict(os.environ, AEBENCH_CONFIG=str(tmp_path / "short.yaml"), AEBENCH_OFFLINE="1",
               # no other copy of Fashion-MNIST: the shipped files must serve
               AEBENCH_DEBIAN_FASHION_DIR=str(tmp_path / "no-debian"), HOME=str(tmp_path),
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", WANDB_MODE="offline",
               PIP_DISABLE_PIP_VERSION_CHECK="1",
               # installing the project itself (`-e .`) builds with the setuptools already installed
               PIP_NO_BUILD_ISOLATION="0")
    env.pop("PYTHONPATH", None)
    user_pip = Path(os.path.expanduser("~/.config/pip"))
    if user_pip.is_dir():  # the package registry this machine is configured with stays reachable
        shutil.copytree(user_pip, tmp_path / ".config" / "pip")
    try:
        p = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    finally:  # the command installed the scratch copy (`-e .`); point the environment back at this one
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "-e", str(ROOT)],
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "status finished" in p.stdout and "next:" in p.stdout and "wandb sync" in p.stdout
    assert (work / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert re.search(r"summary test/mse \d\.\d+", p.stdout)
