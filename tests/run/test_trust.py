"""Fault injection: crafted run folders, stops at every phase, concurrent runners and
resumes, torn records, full and unwritable storage. Nothing runs foreign code, nothing is
lost, nothing runs twice."""
import base64
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, hang_guard, only_run, quick, run_cli, run_inproc

from bench.records.store import list_runs


class _Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload(marker), "in_shape": [1, 28, 28], "num_classes": 10}, f)


def _files(run):
    return {p.name: p.read_bytes() for p in sorted(run.path.iterdir()) if p.is_file() and p.name != "heartbeat"}


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- nothing loaded from a run folder executes code

@pytest.mark.parametrize("entry", ["evaluate", "probe_from", "resume"])
def test_crafted_checkpoint_never_runs_code(tmp_path, finished_run, capsys, entry):
    from bench.evaluate import main as evaluate_main

    marker = tmp_path / "pwned"
    for which in ("best", "last"):
        _plant(finished_run.ckpt(which), marker)
    runs = str(tmp_path / "runs")
    capsys.readouterr()
    if entry == "evaluate":
        with pytest.raises(SystemExit) as e:
            evaluate_main([str(finished_run.path), "--what", "collapse", "--runs-dir", runs])
        code = e.value.code
    elif entry == "probe_from":
        code = run_inproc(quick(tmp_path, "--probe-from", finished_run.id, model="linear_probe", epochs=1))
    else:
        finished_run.update_summary(status="interrupted")
        code = run_inproc(["--resume", finished_run.id, "--runs-dir", runs, "--wandb", "disabled"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "refused" in line, line
    assert not marker.exists()


def test_foreign_checkpoint_is_one_line(tmp_path, finished_run, capsys):
    from bench.evaluate import main as evaluate_main
    from bench.records import checkpoint

    state = checkpoint.load(finished_run.ckpt("best"))
    name, weight = next(iter(state["model"].items()))
    state["model"] = {name: weight[:1]}  # another architecture's weights
    checkpoint.save(finished_run.ckpt("best"), state)
    os.remove(finished_run.ckpt("last"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        evaluate_main([str(finished_run.path), "--what", "collapse"])
    assert e.value.code == 2 and "does not fit" in _one_line(capsys.readouterr().err)


def test_refused_resume_leaves_the_run_exactly_as_it_was(tmp_path, finished_run, capsys):
    finished_run.update_summary(status="interrupted")
    finished_run.ckpt("last").write_bytes(finished_run.ckpt("last").read_bytes()[:500])  # torn
    before = _files(finished_run)
    capsys.readouterr()
    code = run_inproc(["--resume", finished_run.id, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    assert code == 2 and "cannot read checkpoint" in _one_line(capsys.readouterr().err)
    assert _files(finished_run) == before


@pytest.mark.parametrize("record", ["summary.json", "config.json"])
def test_torn_record_is_reported_not_skipped(tmp_path, finished_run, capsys, record):
    from analysis.tables import main as tables_main

    assert run_inproc(quick(tmp_path, "--seed", 1, epochs=1)) == 0
    path = finished_run.path / record
    path.write_text(path.read_text()[:40])
    capsys.readouterr()
    code = run_inproc(["--resume", finished_run.id, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    assert code == 2 and record in _one_line(capsys.readouterr().err)
    assert tables_main(["--runs", str(tmp_path / "runs"), "--metrics", "mse"]) == 0
    out = capsys.readouterr()
    assert "1 unreadable run(s)" in out.err and finished_run.id in out.err and record in out.err
    assert "| 1 |" in out.out  # the readable run is still in the table
    other = [r for r in list_runs(str(tmp_path / "runs")) if r.id != finished_run.id][0]
    import shutil
    shutil.rmtree(other.path)
    with pytest.raises(SystemExit) as e:
        tables_main(["--runs", str(tmp_path / "runs")])
    assert e.value.code == 2 and "unreadable" in _one_line(capsys.readouterr().err)


def test_report_embeds_only_the_runs_own_figures(tmp_path, finished_run):
    from analysis.report import main as report_main

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"TOP-SECRET" * 50)
    (finished_run.path / "figures" / "zz_link.png").symlink_to(secret)
    outside = tmp_path / "elsewhere" / "figures"
    outside.mkdir(parents=True)
    (outside / "x.png").write_bytes(secret.read_bytes())
    finished_run.update_summary(path=str(outside.parent))  # a crafted record
    cfg = finished_run.read_config()
    cfg["dataset"] = "synthetic<script>alert(1)</script>|x\ny"
    (finished_run.path / "config.json").write_text(json.dumps(cfg))
    assert report_main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert base64.b64encode(secret.read_bytes()).decode()[:40] not in page
    assert "data:image/png;base64," in page  # the run's own figures are there
    assert "<script>alert" not in page
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<script>" not in md
    for table in md.split("\n\n"):
        rows = [l for l in table.splitlines() if l.startswith("|")]
        widths = {l.replace("\\|", "").count("|") for l in rows}
        assert len(widths) <= 1, rows  # every row of a table has as many cells as its header


# -- every stop is recorded

PHASES = [("wandb_init", "SIGINT", "0.2", 130), ("wandb_init", "SIGTERM", "", 143),
          ("checkpoint", "SIGTERM", "", 143), ("test_evaluation", "SIGINT", "", 130),
          ("test_evaluation", "SIGTERM", "", 143), ("eval:embed", "SIGINT", "0.5", 130),
          ("eval:probe", "SIGTERM", "", 143)]


@pytest.mark.slow(reason="a real run signalled at each of its phases, each resumed (one case per phase)")
@pytest.mark.parametrize("phase,sig,delay,code", PHASES, ids=[f"{p[0]}-{p[1]}" for p in PHASES])
def test_a_stop_at_any_phase_is_recorded_and_resumable(tmp_path, phase, sig, delay, code):
    fault = f"{phase}:{sig}" + (f":{delay}" if delay else "")
    args = quick(tmp_path, "--eval", "probe,embed", "--wandb", "offline", epochs=1)
    p = run_cli(args, cwd=tmp_path, env={"AEBENCH_FAULT": fault})
    assert p.returncode == code, p.stderr
    run = only_run(tmp_path)
    s = run.read_summary()
    # The training loop stops between steps, after the checkpoint it was writing is complete.
    where = "epoch 1" if phase == "checkpoint" else phase
    assert s["status"] == "interrupted" and where in s["reason"], s.get("reason")
    assert f"--resume {run.id}" in p.stderr
    if phase.startswith(("test_", "eval:")):
        assert "test/mse" in s or phase == "test_evaluation"  # recorded before the tools ran
    if phase in ("checkpoint", "eval:probe"):
        r = run_cli(["--resume", run.id, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        s = run.read_summary()
        assert s["status"] == "finished" and "test/mse" in s and "probe/linear_acc" in s
        assert [row["epoch"] for row in run.read_metrics()] == [1]


def test_a_failing_tool_keeps_the_runs_results(tmp_path, monkeypatch, capsys):
    import dataclasses

    from bench import tools

    def broken(*a, **k):
        raise IndexError("index 2 is out of bounds for dimension 0 with size 2")

    monkeypatch.setitem(tools._TOOLS, "interp", dataclasses.replace(tools.tools()["interp"], fn=broken))
    assert run_inproc(quick(tmp_path, "--eval", "interp,collapse", epochs=1)) == 0
    s = only_run(tmp_path).read_summary()
    assert s["status"] == "finished" and "test/psnr" in s
    assert s["interp/failed"].startswith("IndexError")
    assert not s.get("collapse/failed") and any(k.startswith("collapse/") for k in s)  # the next tool ran
    assert "bench.evaluate" in capsys.readouterr().err
    from analysis.report import main as report_main
    assert report_main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "evaluation tools that failed" in md and "interp (IndexError" in md


# -- exactly once

GRID3 = """name: g3
program: run.py
method: grid
metric: {name: val/loss, goal: minimize}
parameters:
  model: {value: linear_ae}
  dataset: {value: synthetic}
  latent_dim: {values: [4, 8, 16]}
  epochs: {value: %d}
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args}
"""


def _sweep(tmp_path, yaml_path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "bench.sweep", str(yaml_path), "--runs-dir", "runs",
                             "--wandb", "disabled", "--limit-train", "600", "--num-threads", "1", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sweep_runs(tmp_path, name):
    return [(r.read_summary().get("sweep_params"), r.read_summary().get("status"))
            for r in list_runs(str(tmp_path / "runs" / name))]


def test_two_runners_on_one_sweep_run_each_configuration_once(tmp_path):
    y = tmp_path / "g3.yaml"
    y.write_text(GRID3 % 1)
    a, b = _sweep(tmp_path, y), _sweep(tmp_path, y)
    outs = [p.communicate(timeout=hang_guard(600)) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    runs = _sweep_runs(tmp_path, "g3")
    assert len(runs) == 3 and len({k for k, _ in runs}) == 3, runs
    assert all(s == "finished" for _, s in runs)


@pytest.mark.slow(reason="a sweep runner killed while its runs go on, then restarted")
def test_a_restarted_runner_never_relaunches_a_configuration_still_running(tmp_path):
    y = tmp_path / "g1.yaml"
    y.write_text((GRID3 % 5000).replace("[4, 8, 16]", "[4]").replace("g3", "g1"))  # still running when checked
    first = _sweep(tmp_path, y, "--limit-train", "3000")
    t0 = time.time()
    while not any(s == "running" for _, s in _sweep_runs(tmp_path, "g1")):
        assert first.poll() is None and time.time() - t0 < hang_guard(120), first.communicate()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # the runner dies; its child goes on
    first.wait()
    second = _sweep(tmp_path, y, "--limit-train", "3000")
    out, err = second.communicate(timeout=hang_guard(600))
    assert second.returncode == 0, err
    assert "running under another runner" in out
    assert len(_sweep_runs(tmp_path, "g1")) == 1
    run = list_runs(str(tmp_path / "runs" / "g1"))[0]
    os.kill(run.read_summary()["pid"], signal.SIGTERM)  # stop the orphan; it records itself
    t0 = time.time()
    while run.read_summary().get("status") == "running" and time.time() - t0 < hang_guard(60):
        time.sleep(0.1)
    assert run.read_summary()["status"] == "interrupted"


@pytest.mark.slow(reason="two processes racing to resume one run")
def test_two_resumes_of_one_run_never_both_train(tmp_path):
    args = quick(tmp_path, epochs=3)
    assert run_inproc(args[:5] + ["1"] + args[6:]) == 0  # one epoch of a three-epoch config
    run = only_run(tmp_path)
    cfg = run.read_config()
    cfg["epochs"] = 3
    (run.path / "config.json").write_text(json.dumps(cfg))
    run.update_summary(status="interrupted")
    resume = ["--resume", run.id, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run.py")] + [str(a) for a in resume], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=hang_guard(600)) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] == 2, outs
    refused = [err for p, (_, err) in zip(procs, outs) if p.returncode == 2][0]
    assert "in use" in refused or "still running" in refused or "already finished" in refused, refused
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3]


def test_a_repeated_seed_is_counted_once(tmp_path):
    from types import SimpleNamespace

    from analysis.tables import build_table

    for seed, mse, t in ((0, 0.010, 1.0), (0, 0.050, 2.0), (1, 0.020, 3.0)):
        from bench.records.store import RunDir
        run = RunDir.create(str(tmp_path / "runs"), "ae", "synthetic")
        run.write_config({"model": "ae", "dataset": "synthetic", "seed": seed})
        run.update_summary(status="finished", finished_at=t, **{"test/mse": mse})
    args = SimpleNamespace(runs=str(tmp_path / "runs"), wandb=None, sweep=None, group_by="model", metrics="mse")
    summary, _, _ = build_table(args)
    row = summary.iloc[0]
    assert row["runs"] == 2 and row["duplicates"] == 1 and row["seeds"] == "0,1"
    assert row["test/mse"] == pytest.approx((0.050 + 0.020) / 2)  # the latest run of seed 0


# -- storage faults

def test_full_disk_is_one_line_and_recorded(tmp_path):
    def small_files():  # every file write past 60 kB fails with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT / "run.py")] + [str(a) for a in quick(tmp_path, epochs=1)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=small_files)
    assert p.returncode == 2 and "storage error" in _one_line(p.stderr)
    run = only_run(tmp_path)
    assert run.read_summary()["status"] == "failed"
    assert not [f for f in os.listdir(run.path) if f.endswith(".tmp")]


def test_unusable_runs_dir_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    # Root ignores permissions; /proc refuses new directories to everyone.
    unwritable = "/proc/aebench-runs" if os.geteuid() == 0 else read_only / "runs"
    for runs_dir, needle in ((a_file, "not a directory"), (unwritable, "cannot create a run")):
        code = run_inproc(quick(tmp_path, epochs=1)[:-10] + ["--runs-dir", runs_dir, "--limit-train", 300])
        assert code == 2 and needle in _one_line(capsys.readouterr().err)


def test_evaluating_a_run_in_use_is_refused(tmp_path, capsys, finished_run):
    """`bench.evaluate` takes the run's lock: while another process holds the run (a resume
    that trains), it is refused in one line and writes nothing."""
    import subprocess
    import sys

    from bench.evaluate import main as evaluate_main

    before = (finished_run.path / "summary.json").read_text()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bench.records.store import RunDir; "
                               f"RunDir({str(finished_run.path)!r}).lock(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as e:
            evaluate_main([str(finished_run.path), "--what", "collapse"])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and "in use by another process" in err[0], err
        assert (finished_run.path / "summary.json").read_text() == before
    finally:
        holder.kill()
        holder.wait()
    assert evaluate_main([str(finished_run.path), "--what", "collapse"]) == 0  # free again: evaluated


# -- nothing written or read through a link planted in a run or sweep folder

LINKS = [("resume", "heartbeat"), ("resume", "test_images.csv"), ("resume", "figures/reconstructions.png"),
         ("resume", ".lock"), ("resume", "figures"), ("evaluate", "figures"), ("evaluate", "denoise_matrix.csv"),
         ("evaluate", "config.json"), ("evaluate", "summary.json")]


@pytest.mark.parametrize("entry,planted", LINKS, ids=[f"{e}-{p}" for e, p in LINKS])
def test_a_planted_link_is_refused_and_its_target_untouched(tmp_path, finished_run, capsys, entry, planted):
    from bench.evaluate import main as evaluate_main

    link = finished_run.path / planted
    victim = tmp_path / ("victim_dir" if planted == "figures" else "victim.json")
    if planted == "figures":
        victim.mkdir()
        (victim / "keep.txt").write_text("victim")
        before = {"keep.txt": "victim"}
    else:
        victim.write_bytes(link.read_bytes() if link.is_file() else b'{"api_key": "secret"}')
        before = victim.read_bytes()
    if link.is_dir():
        import shutil
        shutil.rmtree(link)
    elif link.exists():
        link.unlink()
    link.symlink_to(victim)
    finished_run.update_summary(status="interrupted") if planted != "summary.json" else None
    capsys.readouterr()
    if entry == "resume":
        code = run_inproc(["--resume", finished_run.id, "--runs-dir", tmp_path / "runs", "--wandb", "disabled"])
    else:
        try:
            code = evaluate_main([str(finished_run.path), "--what", "collapse", "--runs-dir", str(tmp_path / "runs")])
        except SystemExit as e:
            code = e.code
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "symbolic link" in line and planted.split("/")[-1] in line, line
    after = {p.name: p.read_text() for p in victim.iterdir()} if victim.is_dir() else victim.read_bytes()
    assert after == before


@pytest.mark.parametrize("planted", ["sweep.yaml", "logs", "locks", "."])
def test_a_sweep_folder_with_a_planted_link_is_refused(tmp_path, capsys, planted):
    from bench.sweep.command import main as sweep_main

    y = tmp_path / "g3.yaml"
    y.write_text(GRID3 % 1)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "sweep.yaml").write_text("victim")
    target = tmp_path / "runs" / "g3" / planted if planted != "." else tmp_path / "runs" / "g3"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(victim / "sweep.yaml" if planted == "sweep.yaml" else victim)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        sweep_main([str(y), "--runs-dir", str(tmp_path / "runs"), "--wandb", "disabled", "--spawn", "exec"])
    line = _one_line(capsys.readouterr().err)
    assert e.value.code == 2 and "symbolic link" in line, line
    assert sorted(p.name for p in victim.iterdir()) == ["sweep.yaml"]
    assert (victim / "sweep.yaml").read_text() == "victim"


@pytest.mark.parametrize("tool", ["bench.evaluate", "bench.sweep"])
def test_evaluate_and_sweep_on_a_full_disk_are_one_line(tmp_path, finished_run, tool):
    def full_disk():  # every file write fails with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    y = tmp_path / "g3.yaml"
    y.write_text(GRID3 % 1)
    args = ([str(finished_run.path), "--what", "collapse"] if tool == "bench.evaluate"
            else [str(y), "--runs-dir", "runs", "--wandb", "disabled", "--spawn", "exec"])
    summary = (finished_run.path / "summary.json").read_bytes()
    p = subprocess.run([sys.executable, "-m", tool, *args], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=full_disk, timeout=hang_guard(300))
    line = _one_line(p.stderr)
    assert p.returncode == 2 and "cannot write" in line, line
    assert (finished_run.path / "summary.json").read_bytes() == summary
