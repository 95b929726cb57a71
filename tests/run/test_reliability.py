"""Runs survive kills, signals, divergence, concurrency, torn files and W&B faults."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from conftest import ROOT, hang_guard, only_run, quick, run_cli, run_inproc

from bench.records.store import RunDir, effective_status, list_runs, read_jsonl


def _strip(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _spawn(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "run.py")] + [str(a) for a in args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(runs_dir, n, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < hang_guard(timeout):
        runs = list_runs(str(runs_dir))
        if runs and len(runs[0].read_metrics()) >= n:
            return runs[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("run did not reach the epoch in time")


ARGS = ["--model", "vae", "--dataset", "synthetic", "--epochs", 4, "--batch-size", 16, "--seed", 5,
        "--limit-train", 800, "--limit-test", 100]


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    assert run_cli(ARGS + ["--runs-dir", ref_dir / "runs", "--wandb", "disabled"], cwd=tmp_path).returncode == 0
    proc = _spawn(ARGS + ["--runs-dir", kill_dir / "runs", "--wandb", "offline"], cwd=tmp_path)
    run = _wait_rows(kill_dir / "runs", 2, proc)
    time.sleep(0.1)  # inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(run.read_metrics()) == 2  # killed mid-epoch, before epoch 3 was recorded
    assert effective_status(run.read_summary(), run.path) == "crashed"
    p = run_cli(["--resume", run.id, "--runs-dir", kill_dir / "runs", "--wandb", "offline"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ref = only_run(ref_dir)
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]  # no duplicates, no gaps
    assert all(r["time/epoch_wall_seconds"] > 0 for r in rows)  # epochs before the kill keep their cost
    assert _strip(rows) == _strip(ref.read_metrics())
    a, b = run.read_summary(), ref.read_summary()
    for k in ("test/mse", "test/psnr", "test/ssim", "test/snr", "test/mae"):
        assert a[k] == b[k], k
    assert a["status"] == "finished"
    # W&B: the resumed process continued the same run id.
    assert len(list((tmp_path / "wandb").glob(f"offline-run-*-{run.id}"))) == 2


@pytest.mark.slow(reason="a real run process signalled mid-epoch (SIGINT and SIGTERM)")
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_marks_interrupted_and_exits_nonzero(tmp_path, sig, code):
    proc = _spawn(ARGS + ["--runs-dir", tmp_path / "runs", "--wandb", "disabled"], cwd=tmp_path)
    run = _wait_rows(tmp_path / "runs", 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=hang_guard(120))
    assert proc.returncode == code, err
    s = run.read_summary()
    assert s["status"] == "interrupted" and s["epochs"] >= 1 and "received" in s["reason"]
    assert run.ckpt("last").exists()


def test_absurd_learning_rate_fails_the_run(tmp_path, capsys):
    assert run_inproc(quick(tmp_path, "--lr", 1e6, model="mlp_vae")) == 1
    s = only_run(tmp_path).read_summary()
    assert s["status"] == "failed" and "non-finite loss" in s["reason"]
    assert s["failed_epoch"] == 1 and "failed_step" in s


def test_divergence_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from bench.models.conv_ae import ConvAE

    calls = {"n": 0}
    original = ConvAE.forward

    def flaky(self, x, y=None):
        out = original(self, x, y)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 9:  # 400 images / 64 = 6 steps per epoch: breaks in epoch 2
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ConvAE, "forward", flaky)
    assert run_inproc(quick(tmp_path, epochs=3)) == 1
    run = only_run(tmp_path)
    s = run.read_summary()
    assert s["status"] == "failed" and s["failed_epoch"] == 2
    from bench.records import checkpoint
    ck = checkpoint.load(run.ckpt("last"))
    assert ck["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert [r["epoch"] for r in run.read_metrics()] == [1]


@pytest.mark.slow(reason="several run processes writing one store at once")
def test_concurrent_runs_share_a_store(tmp_path):
    from analysis.load import load_runs

    runs_dir = tmp_path / "runs"
    procs = [_spawn(quick(tmp_path, "--seed", i, "--num-threads", 1, model="linear_ae", epochs=3), cwd=tmp_path)
             for i in range(4)]
    seen_partial = 0
    while any(p.poll() is None for p in procs):
        frame = load_runs(str(runs_dir))  # reading while they write must never fail
        for rows in frame["history"] if len(frame) else []:
            assert all("val/loss" in r for r in rows)  # never a half-written row
            seen_partial += 1
        time.sleep(0.05)
    assert all(p.returncode == 0 for p in procs), [p.communicate() for p in procs]
    runs = list_runs(str(runs_dir))
    assert len(runs) == 4 and len({r.id for r in runs}) == 4
    for r in runs:
        assert len(r.read_metrics()) == 3 and r.read_summary()["status"] == "finished"


def test_truncated_metrics_file_reads_complete_rows(tmp_path):
    run = RunDir.create(str(tmp_path), "ae", "synthetic")
    for e in (1, 2, 3):
        run.append_metrics({"epoch": e, "val/loss": 1.0 / e})
    path = run.path / "metrics.jsonl"
    path.write_text(path.read_text()[:-12])  # the last line is cut
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_jsonl(path)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert any("incomplete" in str(w.message) for w in caught)


def test_dead_running_run_reads_as_crashed(tmp_path):
    from analysis.load import load_local

    run = RunDir.create(str(tmp_path), "ae", "synthetic")
    run.write_config({"model": "ae", "dataset": "synthetic", "seed": 0})
    run.update_summary(status="running", pid=2 ** 22 + 7, host=os.uname().nodename, pid_started=0.0)
    assert effective_status(run.read_summary(), run.path) == "crashed"
    assert list(load_local(str(tmp_path))["status"]) == ["crashed"]  # what analysis shows
    live = RunDir.create(str(tmp_path), "ae", "synthetic")
    live.write_config({"model": "ae", "dataset": "synthetic", "seed": 1})
    live.mark_running()  # this very process: alive
    assert effective_status(live.read_summary(), live.path) == "running"
    live.stop_heartbeat()


@pytest.mark.slow(reason="waits out an unreachable W&B server's probe")
def test_wandb_unreachable_run_goes_on(tmp_path):
    # No shortened init timeout here: the server is probed first, so the run never waits
    # on wandb's own 90 s timeout, and the hint names the offline folder it wrote.
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    p = run_cli(quick(tmp_path, "--wandb", "online", model="linear_ae", epochs=1),
                cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    warnings_ = [l for l in p.stderr.splitlines() if l.startswith("warning: W&B")]
    assert len(warnings_) == 1 and "unreachable" in warnings_[0], p.stderr
    folder = warnings_[0].split("`wandb sync ")[1].split("`")[0]
    assert (tmp_path / folder).is_dir() and list((tmp_path / folder).glob("*.wandb"))
    s = only_run(tmp_path).read_summary()
    assert s["status"] == "finished" and "test/psnr" in s


@pytest.fixture(params=["silent", "api"])
def hung_server(request):
    """A W&B address that hangs: `silent` accepts connections and never answers; `api`
    answers a health check, then never answers the API (a server that half works)."""
    import socket
    import threading

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    held = []

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            if request.param == "api" and b"/healthz" in c.recv(65536).split(b"\r\n")[0]:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                c.close()
            else:
                held.append(c)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def test_a_hung_server_is_found_within_the_deadline(hung_server, monkeypatch, request):
    from bench.records.track import server_reachable

    monkeypatch.setenv("WANDB_BASE_URL", hung_server)
    reason = server_reachable(timeout=0.5)
    if request.node.callspec.params["hung_server"] == "api":
        assert reason is None  # its health check answers: wandb.init's own 10 s deadline applies (slow test below)
    else:
        assert "did not answer within 0.5 s" in reason


@pytest.mark.slow(reason="waits out a W&B server that never answers")
def test_a_hung_wandb_server_costs_seconds_and_the_run_logs_offline(tmp_path, hung_server):
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": hung_server}
    t0 = time.time()
    p = run_cli(quick(tmp_path, "--wandb", "online", model="linear_ae", epochs=1), cwd=tmp_path, env=env, timeout=120)
    wall = time.time() - t0
    assert p.returncode == 0, p.stderr
    warnings_ = [l for l in p.stderr.splitlines() if l.startswith("warning: W&B")]
    assert len(warnings_) == 1 and "logging offline instead" in warnings_[0] and "wandb sync" in warnings_[0], p.stderr
    folder = warnings_[0].split("`wandb sync ")[1].split("`")[0]
    assert list((tmp_path / folder).glob("*.wandb"))  # an offline copy to upload later
    s = only_run(tmp_path).read_summary()
    assert s["status"] == "finished" and s["wandb_mode"] == "offline"
    assert s["time/phase/wandb_init"] < 15 and wall - sum(v for k, v in s.items() if k.startswith("time/phase/")) < 10


# -- a resume ends with the summary the uninterrupted run has
STALE = ["--model", "vae", "--dataset", "synthetic", "--epochs", 3, "--limit-train", 768, "--limit-test", 64,
         "--batch-size", 64, "--kl-warmup-epochs", 2, "--seed", 5, "--wandb", "disabled"]
VOLATILE = ("time/", "pid", "host", "started_at", "updated_at", "finished_at", "run_id", "train_seconds",
            "images_per_sec", "compile_seconds", "reason")


def _numbers(summary):
    return {k: v for k, v in summary.items() if not k.startswith(VOLATILE)}


def _whole(folder):
    assert run_cli(STALE + ["--runs-dir", folder / "runs"], cwd=folder).returncode == 0


KILL_SLOW = "a real run killed between two writes of an epoch, resumed, and set against an uninterrupted one"


@pytest.mark.parametrize("point", ["checkpointed@3", "logged@3", pytest.param("checkpointed@2", marks=pytest.mark.slow(reason=KILL_SLOW)),
                                   pytest.param("logged@2", marks=pytest.mark.slow(reason=KILL_SLOW))])
def test_a_kill_between_an_epochs_row_and_its_summary_resumes_to_the_same_summary(tmp_path, point):
    from conftest import built_once

    whole = built_once("stale-summary-whole", _whole) / "runs"  # the uninterrupted run, read only
    killed = tmp_path / "killed"
    p = run_cli(STALE + ["--runs-dir", killed], cwd=tmp_path, env={"AEBENCH_FAULT": f"{point}:SIGKILL"})
    assert p.returncode == -signal.SIGKILL
    run = list_runs(str(killed))[0]
    epoch = int(point.split("@")[1])
    # checkpointed@N: last.pt of epoch N on disk, written beside training, so its summary may or
    # may not be written yet; logged@N: epoch N's row appended, its last.pt perhaps not yet on disk
    assert run.read_summary().get("epoch") in ((epoch - 1, epoch) if point.startswith("checkpointed") else (epoch - 1,))
    r = run_cli(["--resume", run.id, "--runs-dir", killed, "--wandb", "disabled"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    expected = _numbers(list_runs(str(whole))[0].read_summary())
    assert _numbers(run.read_summary()) == expected
    assert expected["epoch"] == 3 and expected["best_epoch"] is not None
    assert _strip(run.read_metrics()) == _strip(list_runs(str(whole))[0].read_metrics())
