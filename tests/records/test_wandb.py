"""W&B-native runs, read back from the offline `.wandb` file with wandb's own Record proto:
agent runs carry their sweep, metric definitions, media per epoch, tables with images, the
model artifact, and a clean summary. Nothing here needs a W&B server."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import FakeApi, ROOT, built_once, hang_guard, only_run, quick, run_cli
from wandb_records import OfflineRun, offline_run

pytestmark = pytest.mark.embeds  # UMAP: see conftest.pytest_collection_modifyitems


@pytest.fixture(scope="module")
def agent_run():
    """A denoiser started the way `wandb agent` starts a run of a shipped sweep: the agent's
    environment (sweep id), the YAML's literal --sweep, then the sweep's arguments (made
    once for the session, read only)."""
    def build(d):
        env = dict(os.environ, WANDB_SWEEP_ID="ab12cd34", WANDB_DIR=str(d), WANDB_MODE="offline",
                   WANDB_SILENT="true", PYTHONPATH=str(ROOT))
        env.pop("WANDB_API_KEY", None)
        p = subprocess.run([sys.executable, str(ROOT / "run.py"), "--sweep=mysweep", "--model=dae",
                            "--dataset=synthetic", "--epochs=3", "--limit-train=300", "--limit-test=120",
                            "--noise-std=0.2", "--eval=embed", "--embed-points=50", "--wandb=offline"],
                           cwd=d, env=env, capture_output=True, text=True, timeout=hang_guard(600))
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        (d / "stdout.txt").write_text(p.stdout)

    from bench.records.store import list_runs
    d = built_once("agent_run", build)
    runs = list_runs(str(d / "runs"))
    assert len(runs) == 1
    return d, runs[0], (d / "stdout.txt").read_text()


def test_agent_run_joins_its_sweep(agent_run):
    d, run, _ = agent_run
    assert run.path.parent == d / "runs" / "mysweep"  # filed under the sweep's name, like the local runner
    summary = run.read_summary()
    rec = offline_run(d / "wandb", summary["wandb_run_id"])
    assert rec.run.run_group == "mysweep" and rec.run.sweep_id == "ab12cd34"
    assert rec.config["sweep"] == "mysweep" and rec.config["sweep_id"] == "ab12cd34"


def test_metrics_are_defined_with_their_direction_and_best(agent_run):
    d, run, _ = agent_run
    summary = run.read_summary()
    rec = offline_run(d / "wandb", summary["wandb_run_id"])
    from bench.records.track import direction

    for name in ("val/loss", "val/mse"):
        assert rec.metrics[name].step_metric == "epoch" and rec.metrics[name].summary.min, name
    defined = [n for n in rec.metrics if n.startswith("val/")]
    assert "val/kl" in defined or "val/l1" in defined, defined  # the agent run's model has a term of no direction
    for name in defined:  # a direction where an extreme means better, the last value elsewhere
        m = rec.metrics[name].summary
        assert bool(m.min or m.max) == (direction(name) is not None), name
        assert m.last == (direction(name) is None), name
    assert not [k for k, v in rec.summary.items() if v is None]  # no null keys
    assert rec.summary[f"best/{summary['best_metric']}"] == pytest.approx(summary["best_value"])
    assert rec.summary["best/epoch"] == summary["best_epoch"]
    assert rec.summary["test/from_checkpoint"] == f"best.pt (epoch {summary['best_epoch']})"
    for bookkeeping in ("pid", "host", "started_at", "sweep_params", "wandb_mode", "finished_at"):
        assert bookkeeping not in rec.summary, bookkeeping
    assert summary["pid"] and summary["host"]  # ... which the local store keeps


def test_media_per_epoch_tables_with_images_and_model_artifact(agent_run):
    from bench.run.train import snapshot_epochs

    d, run, _ = agent_run
    summary = run.read_summary()
    rec = offline_run(d / "wandb", summary["wandb_run_id"])
    media_epochs = [h["epoch"] for h in rec.history if "media/reconstructions/_type" in h]
    assert media_epochs == sorted(snapshot_epochs(3)) and len(media_epochs) >= 2  # the slider has steps
    tables = {k.split("/")[0] for h in rec.history for k in h if k.endswith("/_type") and h[k] == "table-file"}
    assert {"test_images", "embeddings"} <= tables
    arts = {a.name: a for a in rec.artifacts}
    model = arts[f"model-{run.id}"]
    assert model.type == "model" and {"best", "latest"} <= set(model.aliases)
    files = {e.path for e in model.manifest.contents}
    assert {"best.pt", "config.json"} <= files and "last.pt" not in files
    meta = json.loads(model.metadata)  # the selection metric and its value travel with the weights
    assert meta["best_metric"] == summary["best_metric"] and meta["best_value"] == pytest.approx(summary["best_value"])
    # the local copy of the image table: the whole test set ranked, its worst and best images kept
    import csv
    rows = list(csv.DictReader((run.path / "test_images.csv").open()))
    assert list(rows[0]) == ["rank", "index", "mse", "psnr", "ssim"] and len(rows) == 32
    worst = [float(r["mse"]) for r in rows if r["rank"].startswith("worst")]
    best = [float(r["mse"]) for r in rows if r["rank"].startswith("best")]
    assert worst == sorted(worst, reverse=True) and best == sorted(best) and min(worst) >= max(best)
    assert max(int(r["index"]) for r in rows) >= 32  # chosen from the whole test set (120 images)


def test_run_url_or_offline_folder_is_printed(agent_run):
    d, run, out = agent_run
    assert f"W&B run {run.read_summary()['wandb_run_id']}: offline: " in out


class FakeArtifact:
    def __init__(self, files, run_id):
        self.files, self.metadata = files, {"run_id": run_id}

    def download(self, root):
        for f in self.files:
            if f.is_dir():
                shutil.copytree(f, os.path.join(root, f.name))
            else:
                shutil.copy(f, root)
        return root


def test_model_artifact_reference_becomes_a_local_run(tmp_path, finished_run_template):
    from bench.records.artifacts import fetch_model_artifact
    from bench.records.rebuild import load_run_model
    from bench.records.store import RunDir

    src = RunDir(finished_run_template)
    files = [src.path / n for n in ("best.pt", "config.json", "summary.json")]
    api = FakeApi(artifact=FakeArtifact(files + [src.path.parent], src.id))  # a folder in it is ignored
    dest = fetch_model_artifact(f"wandb:team/proj/model-{src.id}", str(tmp_path / "runs"), api=api)
    assert api.asked == [(f"team/proj/model-{src.id}:best", "model")]
    assert dest == tmp_path / "runs" / src.id and sorted(p.name for p in dest.iterdir()) == \
        ["best.pt", "config.json", "summary.json"]
    a, _ = load_run_model(str(src.path))
    b, _ = load_run_model(str(dest))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # an artifact that holds no aebench run is refused in one line
    from bench.core.errors import UsageError
    with pytest.raises(UsageError, match="holds no aebench run"):
        fetch_model_artifact("wandb:team/proj/model-other:v1", str(tmp_path / "runs"),
                             api=FakeApi(artifact=FakeArtifact([src.path / "summary.json"], "other")))
    assert not (tmp_path / "runs" / "other").exists()


@pytest.mark.parametrize("ref,needle", [
    ("wandb:team/proj/model-x:best", "unreachable"),
    ("wandb:not-a-reference", "give wandb:ENTITY/PROJECT/NAME"),
])
def test_wandb_reference_without_a_server_is_one_line_exit_2(tmp_path, monkeypatch, capsys, ref, needle):
    from conftest import run_inproc

    from bench.evaluate import main as evaluate_main

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    for args in (["--model", "linear_probe", "--dataset", "synthetic", "--probe-from", ref],
                 ["--resume", ref]):
        code, err = run_inproc(args), capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    with pytest.raises(SystemExit) as e:
        evaluate_main([ref])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err, err


def test_login_is_detected_the_way_wandb_reads_it(tmp_path, monkeypatch):
    from bench.records.track import wandb_logged_in

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert not wandb_logged_in()
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    assert wandb_logged_in()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")  # a key for another server is not a login
    assert not wandb_logged_in()


def test_the_package_imports_from_anywhere(tmp_path, finished_run_template):
    """`pip install -r requirements.txt` installs the project itself: a notebook anywhere
    loads a run's model in two lines."""
    from bench.records.store import RunDir

    run = RunDir(finished_run_template)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("from bench.records.rebuild import load_run_model\n"
            f"model, cfg = load_run_model({str(run.path)!r})\n"
            "print(cfg['model'], type(model).__name__, sum(p.numel() for p in model.parameters()))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=hang_guard(300))
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[0] == "ae" and int(p.stdout.split()[2]) == run.read_summary()["params"]
    assert json.loads((run.path / "config.json").read_text())["model"] == "ae"


def test_a_resumed_offline_run_goes_on_from_its_last_step(tmp_path):
    """A run stopped after epoch 1 and resumed logs into a second offline folder (same run
    id); its rows go on at step 2, 3 (W&B's step is the epoch), so `wandb sync` of both
    folders keeps every row instead of overwriting steps 0, 1."""
    args = quick(tmp_path, "--wandb", "offline", model="linear_ae", epochs=3)
    wandb_dir = {"WANDB_DIR": str(tmp_path / "elsewhere")}  # W&B's own variable, honoured
    first = run_cli(args, cwd=tmp_path, env={"AEBENCH_FAULT": "checkpoint:SIGTERM", **wandb_dir})
    assert first.returncode == 143 and "interrupted" in first.stdout, first.stderr
    run = only_run(tmp_path)
    resumed = run_cli(["--resume", run.id, "--runs-dir", tmp_path / "runs", "--wandb", "offline"], cwd=tmp_path,
                      env={"WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc"), **wandb_dir})
    assert resumed.returncode == 0 and not (tmp_path / "wandb").exists()
    folders = sorted((tmp_path / "elsewhere" / "wandb").glob(f"offline-run-*-{run.id}/run-{run.id}.wandb"))
    steps = [[(h.get("_step"), h.get("epoch")) for h in OfflineRun(f).history] for f in folders]
    assert steps == [[(1, 1)], [(2, 2), (3, 3)]], steps
    # The closing hint uploads both folders, after the login this machine has not done
    hint = next(line for line in resumed.stdout.splitlines() if "wandb sync" in line)
    assert all(f.parent.name in hint for f in folders) and "wandb login &&" in hint, hint


def test_the_sync_hint_asks_for_a_login_only_where_there_is_none(monkeypatch, tmp_path):
    from bench.records.track import sync_hint

    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    assert sync_hint(["wandb/a", "wandb/b"]).split("#")[0].split() == \
        ["wandb", "login", "&&", "wandb", "sync", "wandb/a", "wandb/b"]
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert sync_hint(["wandb/a"]).split("#")[0].split() == ["wandb", "sync", "wandb/a"]

