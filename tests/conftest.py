"""Shared test helpers: run the CLI in-process or as a subprocess, on a temporary store."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"
SEEDS = ROOT.parent / "shared" / "seeds"  # the course assignments the templates follow
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# One thread per process: the suite runs in parallel processes (xdist workers, sweeps, CLI
# subprocesses), as the sweep runner packs runs (workers x threads = cores); tiny models on
# several OpenMP threads each only spin-wait for one another (the suite takes twice the CPU).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Tests never reach the network and never wait on W&B servers.
os.environ.setdefault("AEBENCH_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# One cache folder for the whole session (decoded data, feature networks, compiled UMAP
# code), out of the user's: made by the first process (xdist's workers inherit it), removed
# by that process at the end.
# A user's own $AEBENCH_CACHE is never written: the first process makes the session's folder
# and names it in AEBENCH_TEST_CACHE, which its workers inherit.
_OWN_CACHE = None
if "AEBENCH_TEST_CACHE" not in os.environ:
    _OWN_CACHE = os.environ["AEBENCH_TEST_CACHE"] = tempfile.mkdtemp(prefix="aebench-cache-")
os.environ["AEBENCH_CACHE"] = os.environ["AEBENCH_TEST_CACHE"]
# Read-only fixtures built once for the session by whichever worker asks first (`built_once`).
_OWN_SHARED = None
if "AEBENCH_TEST_SHARED" not in os.environ:
    _OWN_SHARED = os.environ["AEBENCH_TEST_SHARED"] = tempfile.mkdtemp(prefix="aebench-tests-")


# Timeouts guard against a hang, not against a busy machine: each is scaled by how many times
# over its cores the machine was loaded when the session started (said once in the header).
if "AEBENCH_TEST_LOAD" not in os.environ:
    os.environ["AEBENCH_TEST_LOAD"] = f"{max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)):.2f}"
LOAD_SCALE = float(os.environ["AEBENCH_TEST_LOAD"])


def hang_guard(seconds: float) -> float:
    """A timeout of `seconds` on an idle machine, scaled by the session's load."""
    return seconds * LOAD_SCALE


def pytest_report_header(config):
    if LOAD_SCALE > 1:
        return f"machine loaded {LOAD_SCALE:.1f}x its cores at the start: every timeout is {LOAD_SCALE:.1f}x longer"


def pytest_collection_modifyitems(session, config, items):
    """Every test's hang guard scaled by the load (see `hang_guard`). And UMAP's numba code
    takes about half a minute of one core to compile, once per cache: when the session will
    embed, a background process compiles it into the session's cache from the start, beside
    the first tests, rather than in front of the first embed (whose test, and every other one
    that embeds meanwhile, would wait on it)."""
    base = float(config.getini("timeout") or 0)
    for item in items if base and LOAD_SCALE > 1 else []:
        marker = item.get_closest_marker("timeout")
        item.add_marker(pytest.mark.timeout(hang_guard(marker.args[0] if marker and marker.args else base)))
    if not _own_session() or not any(item.get_closest_marker("embeds") for item in items):
        return
    try:
        (Path(os.environ["AEBENCH_TEST_SHARED"]) / "umap-primer").mkdir()  # the first worker only
    except FileExistsError:
        return
    primer = subprocess.Popen([sys.executable, "-c", "from bench.core.cache import import_umap; import_umap()"],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    (Path(os.environ["AEBENCH_TEST_SHARED"]) / "umap-primer" / "pid").write_text(str(primer.pid))


def _own_session() -> bool:
    """This session made its cache folder (a cache the user points at is left alone)."""
    return os.environ.get("AEBENCH_CACHE", "").startswith(tempfile.gettempdir()) and \
        Path(os.environ["AEBENCH_CACHE"]).name.startswith("aebench-cache-")


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        import shutil
        import signal

        pid = Path(os.environ["AEBENCH_TEST_SHARED"]) / "umap-primer" / "pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text()), signal.SIGKILL)  # done long ago, or no longer needed
            except (OSError, ValueError):
                pass
            pid.unlink()  # a later session on the same folders (CI's second command) never kills that number again
        for own in (_OWN_CACHE, _OWN_SHARED):
            if own:
                shutil.rmtree(own, ignore_errors=True)


def built_once(name: str, build) -> Path:
    """A folder made once for the whole session: the first worker to ask runs `build(folder)`
    while the others wait on a lock, then all read it. What a session-scoped fixture is
    when every xdist worker would otherwise build its own copy. Readers never change it
    (a test that does copies it first)."""
    import fcntl
    import shutil

    root = Path(os.environ["AEBENCH_TEST_SHARED"])
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
sys.path.insert(0, str(ROOT))


def tiny_datasets() -> Path:
    """Every dataset as tiny learnable files in its real on-disk format (MNIST's and
    Fashion-MNIST's idx files too: the real ones serve the real-data tests of test_data and
    test_families), written once for the session: the sweeps and suites only read them, and
    their decoded copies in the session's cache serve every worker. Readers set
    AEBENCH_TRUST_DATA_ROOT to it (torchvision's md5 sums name the real files)."""
    from formats import write_brain_tumor, write_celeba, write_cifar10, write_mnist, write_stl10

    def build(root):
        for folder in ("MNIST", "FashionMNIST"):
            write_mnist(root, folder, n_train=600, n_test=200)
        write_cifar10(root, n_per_batch=100)
        write_stl10(root, n_train=100, n_test=60, n_unlabeled=200)
        write_celeba(root, n=60)
        write_brain_tumor(root, n=25, size=240)

    return built_once("acceptance_data", build)


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
def mnist_root():
    """A data root holding the real MNIST idx files (`../shared/datasets`), or skip."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not present under {SHARED_DATA}/MNIST")
    return str(SHARED_DATA)


@pytest.fixture
def fashion_root(tmp_path):
    root = needs_fashion()
    if root is None:  # Debian's files are unpacked into this (existing) folder on first use
        (tmp_path / "data").mkdir(exist_ok=True)
    return root or str(tmp_path / "data")


def run_cli(args, cwd, timeout=600, env=None, script="run.py"):
    """Run a CLI as a real process; returns CompletedProcess with text output. `timeout`: on an
    idle machine (scaled by the load, see `hang_guard`)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, str(ROOT / script)] if script.endswith(".py") else [sys.executable, "-m", script]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=hang_guard(timeout))


def run_main(args, cwd, script, env=None):
    """`python -m SCRIPT ARGS` run as the command's `main` in this process, for the commands
    that only read files and write files (the analysis scripts): a CompletedProcess as
    `run_cli` returns, without the seconds a fresh interpreter spends on its imports."""
    import contextlib
    import importlib
    import io
    from unittest import mock

    argv, out, err, here = [str(a) for a in args], io.StringIO(), io.StringIO(), os.getcwd()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.chdir(cwd)
        try:
            code = importlib.import_module(script).main(argv)
        except SystemExit as e:
            code = e.code
        finally:
            os.chdir(here)
    if isinstance(code, str):  # SystemExit("message"): the interpreter prints it and exits 1
        err.write(code + "\n")
        code = 1
    return subprocess.CompletedProcess(argv, code or 0, out.getvalue(), err.getvalue())


def with_sigint_ignored(cmd: list) -> list:
    """`cmd` as a script's background job starts it: with SIGINT ignored (bash does that when
    job control is off), which the command's own handlers must override: a `kill -INT`, or
    Ctrl-C, still stops it as it stops a command in the foreground."""
    return [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.argv[1], sys.argv[1:])", *map(str, cmd)]


def refusal(main, argv, capsys) -> tuple[int, list[str]]:
    """A command's `main` run in this process on argv that it must refuse (no run starts, so no
    process of its own is needed): (exit code, its stderr lines)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


def run_inproc(args, capsys=None):
    """Run run.py's main in this process; returns the exit code (SystemExit is caught)."""
    from bench.run.runner import main

    try:
        return main([str(a) for a in args])
    except SystemExit as e:
        return e.code


def quick(tmp_path, *extra, model="ae", dataset="synthetic", epochs=2):
    return ["--model", model, "--dataset", dataset, "--epochs", epochs, "--runs-dir", tmp_path / "runs",
            "--wandb", "disabled", "--limit-train", 400, "--limit-test", 100, "--batch-size", 64, *extra]


def only_run(tmp_path):
    from bench.records.store import list_runs

    runs = list_runs(str(tmp_path / "runs"))
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: nothing reads or writes the checkout's
    ./data, ./runs, ./reports or ./wandb (a user's main job may have filled them)."""
    monkeypatch.chdir(tmp_path)


# -- one finished run, made once per session and copied into each test that changes it

@pytest.fixture(scope="session")
def finished_run_template():
    """A tiny finished `ae` run (1 epoch on synthetic data), trained once for the session."""
    def build(folder):
        assert run_inproc(["--model", "ae", "--dataset", "synthetic", "--epochs", 1, "--runs-dir", folder / "runs",
                           "--wandb", "disabled", "--limit-train", 200, "--limit-test", 50]) == 0

    from bench.records.store import list_runs
    return list_runs(str(built_once("finished_run", build) / "runs"))[0].path


@pytest.fixture
def finished_run(tmp_path, finished_run_template):
    """This test's own copy of the session's finished run, in `tmp_path/runs` (free to damage)."""
    import shutil

    from bench.records.store import RunDir

    dst = tmp_path / "runs" / finished_run_template.name
    shutil.copytree(finished_run_template, dst, symlinks=True)
    return RunDir(dst)


def fake_runs(root, rows, **defaults):
    """Recorded runs without training: (config, summary) pairs, finished, under `root`."""
    from bench.records.store import RunDir

    defaults = dict({"dataset": "synthetic", "seed": 0, "epochs": 1}, **defaults)
    for cfg, summary in rows:
        cfg = dict(defaults, **cfg)
        run = RunDir.create(str(root), cfg["model"], cfg["dataset"])
        run.write_config(cfg)
        run.update_summary(status="finished", **summary)


class FakeApi:
    """The part of `wandb.Api` the project calls: runs of a project, sweeps, artifacts."""

    def __init__(self, runs=(), artifact=None):
        self._runs, self.art, self.asked = list(runs), artifact, []

    def runs(self, path, filters=None):
        assert path == "ent/proj"
        if not filters:
            return list(self._runs)
        assert set(filters) == {"$or"}  # by the sweep's name in config, or by group
        wanted = {(k, v) for f in filters["$or"] for k, v in f.items()}
        return [r for r in self._runs if ("config.sweep", r.config.get("sweep")) in wanted
                or ("group", r.config.get("group")) in wanted]

    def sweep(self, path):
        sweep_id = path.split("/")[-1]

        class Sweep:
            runs = [r for r in self._runs if r.config.get("sweep_id") == sweep_id]
        if not Sweep.runs:
            raise ValueError(f"no sweep {path}")
        return Sweep

    def artifact(self, path, type=None):
        self.asked.append((path, type))
        if self.art is None:
            raise ValueError("artifact not found")
        return self.art


def chromium():
    """A headless-capable Chromium on PATH, or skip (CI installs Debian's chromium)."""
    import shutil

    path = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if path is None:
        pytest.skip("Chromium is not installed (CI installs Debian's chromium)")
    return path

