"""The speed benchmark runs end to end and its three loops do the same work."""
import json
import math

import pytest
from conftest import run_cli, run_main


@pytest.mark.slow(reason="the speed benchmark's three loops on real Fashion-MNIST")
def test_speed_benchmark_loops_do_identical_work(tmp_path, fashion_root):
    out = tmp_path / "speed.json"
    p = run_cli(["--data-root", fashion_root, "--cases", "mlp_vae", "--limit-train", 1500, "--repeats", 1,
                 "--out", out], cwd=tmp_path, script="bench.speed")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())["results"][0]
    for loop in ("a_notebook", "b_bare", "c_harness"):
        assert res[loop]["images_per_sec"] > 0 and res[loop]["peak_rss_mb"] > 0
    # same weights, same batches, same order: the harness's model ends where the notebook's does
    # (bit-identical on a quiet machine; a loaded CPU may split float sums differently, ~1e-4)
    assert res["test_loss_rel_diff"] < 1e-3 and res["same_loss_within_1pct"]
    assert "c/b" in p.stdout and "mlp_vae 784-400-20" in p.stdout


@pytest.mark.slow(reason="timed pairs of a tiny run and the bare script")
def test_startup_benchmark_pairs_a_tiny_run_with_the_bare_script(tmp_path, fashion_root):
    out = tmp_path / "startup.json"
    p = run_cli(["--startup", "--pairs", 2, "--data-root", fashion_root, "--out", out], cwd=tmp_path,
                script="bench.speed")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert len(res["pairs"]) == 2 and all(r["run_cpu_s"] > 0 and r["bare_cpu_s"] > 0 for r in res["pairs"])
    assert res["min_ratio"] <= res["median_ratio"] <= res["max_ratio"]
    assert "matplotlib" not in res["imports_beyond"] and "training" in res["run_phases_s"]
    assert "median of 2 pairs" in p.stdout and "imports beyond the bare script" in p.stdout


@pytest.mark.slow(reason="ten timed epochs of a run beside a bare loop")
def test_epoch_benchmark_sets_the_runs_epochs_beside_the_bare_loops(tmp_path, fashion_root):
    out = tmp_path / "epoch.json"
    # 10 epochs, not 6: on a busy machine the run's start-up can outlast the bare loop's first epochs
    p = run_cli(["--epoch", "--sittings", 1, "--epochs", 10, "--limit-train", 3000, "--data-root", fashion_root,
                 "--wandb", "disabled", "--out", out],
                cwd=tmp_path, script="bench.speed")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    (sitting,) = res["sittings"]
    # only epochs while both trained count: some of each, never the first (warm-up) nor the run's last
    run_counted, bare_counted = sitting["epochs_counted"][:2]
    assert 1 <= run_counted <= res["epochs"] - 2 and bare_counted >= 1
    assert sitting["run_epoch_s"] > 0 and sitting["bare_epoch_s"] > 0
    # two rounds, the cores swapped (where there are two), the sitting's ratio their geometric mean
    a, b = sitting["rounds"]
    assert a["cores"] == b["cores"][::-1]
    assert res["median_ratio"] == pytest.approx(math.sqrt(a["run_epoch_s"] / a["bare_epoch_s"]
                                                          * b["run_epoch_s"] / b["bare_epoch_s"]))
    assert "last_checkpoint" in res["epoch_work_s"] and "median of 1 sittings" in p.stdout


@pytest.mark.parametrize("flag", ["--sittings", "--pairs", "--repeats"])
def test_a_count_below_one_is_refused_in_one_line(tmp_path, flag):
    p = run_main(["--epoch", flag, 0], cwd=tmp_path, script="bench.speed.benchmark")
    assert p.returncode == 2 and not (tmp_path / "speed.json").exists()
    assert f"argument {flag}: '0': give a whole number of at least 1" in p.stderr.strip().splitlines()[-1]


def test_the_epoch_benchmark_without_data_says_what_the_run_said_in_one_line(tmp_path):
    p = run_cli(["--epoch", "--sittings", 1, "--data-root", tmp_path / "nowhere", "--out", tmp_path / "e.json"],
                cwd=tmp_path, script="bench.speed")
    assert p.returncode != 0 and not (tmp_path / "e.json").exists()
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("python -m bench.speed --epoch: run.py exited 2: run.py: error: --data-root")
