"""Sweep YAMLs are valid W&B configs run.py accepts; the local runner runs, resumes, refuses."""
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, hang_guard, refusal, run_cli, with_sigint_ignored

from bench.config.cli import parse_args
from bench.config.spec import resolve
from bench.core.errors import UsageError
from bench.sweep.agent import command_for
from bench.sweep.file import load_sweep
from bench.sweep.plan import plan

YAMLS = sorted((ROOT / "sweeps").glob("*.yaml"))
# One sweep per experiment of the assignments (at least).
REQUIRED = {"fashion_vae_dims", "fashion_vae_depth", "cifar10_dae_noise", "cifar10_models", "cifar10_mcae_mask",
            "celeba_sparse_lambda", "celeba_models", "mnist_linear_vs_conv", "colored_mnist_denoise", "stl10_ssl",
            "latent_dims", "cifar10_cnn", "stl10_supervised", "stl10_resnet_probe", "brain_tumor_seg"}


def test_every_required_sweep_exists():
    assert REQUIRED <= {p.stem for p in YAMLS}


def grid_size(cfg: dict) -> int:
    """What a grid is by definition: the product of each parameter's number of values."""
    n = 1
    for spec in cfg["parameters"].values():
        n *= len(spec.get("values", [None]))
    return n


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_is_a_valid_wandb_sweep(path):
    cfg = load_sweep(str(path))  # W&B's schema plus run.py's keys, types and ranges
    assert cfg["program"] == "run.py" and cfg["project"] == "aebench"  # `wandb sweep` files it in the project
    # `wandb agent` runs the command: the literal --sweep puts its runs in the sweep's group and folder
    assert cfg["command"] == ["${env}", "${interpreter}", "${program}", f"--sweep={cfg['name']}", "${args}"]
    assert cfg["metric"]["name"].startswith("val/") and cfg["metric"]["goal"] in ("minimize", "maximize")
    runs = plan(cfg, None if cfg["method"] == "grid" else 5)
    assert len(runs) == (grid_size(cfg) if cfg["method"] == "grid" else 5)
    assert len({json.dumps(r, sort_keys=True) for r in runs}) == len(runs)  # no configuration twice
    if path.stem != "fashion_vae_dims" and cfg["method"] == "grid" and "seed" in cfg["parameters"]:
        assert len(cfg["parameters"]["seed"]["values"]) >= 3
    from bench.config.keys import own_keys, scope_of

    for params in runs:  # the exact argv an agent would pass, through run.py's parser
        argv = command_for(params, [], "x", "runs")[2:]
        cfg_run = resolve(parse_args(argv)[0])
        for k, v in own_keys(params).items():  # a key given for another model (dae.noise_level) is not this run's
            if k != "mlp_dims":
                assert getattr(cfg_run, scope_of(k)[1]) == (list(v) if isinstance(v, list) else v)


def test_fashion_pairs_stay_pairs():
    """(h, z) pairs are swept as pairs, not as the grid of every h with every z."""
    cfg = load_sweep(str(ROOT / "sweeps" / "fashion_vae_dims.yaml"))
    pairs = [tuple(p) for p in cfg["parameters"]["mlp_dims"]["values"]]
    runs = plan(cfg, None)
    assert [tuple(r["mlp_dims"]) for r in runs] == pairs and len(pairs) == 6
    assert len({h for h, _ in pairs}) * len({z for _, z in pairs}) > len(pairs)  # a grid would run more
    h, z = pairs[3]
    run_cfg = resolve(parse_args(command_for(runs[3], [], "x", "runs")[2:])[0])
    assert run_cfg.hidden_dims == [h] and run_cfg.latent_dim == z


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


@pytest.mark.slow(reason="a sweep runner killed and restarted over four real runs")
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
        assert proc.poll() is None and time.time() - t0 < hang_guard(300), proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its runs die together
    proc.wait()
    first = _finished(tmp_path / "runs")
    assert 2 <= len(first) < 4
    p = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=hang_guard(600))
    assert p.returncode == 0, p.stdout + p.stderr
    launched = [l for l in p.stdout.splitlines() if l.startswith("[")]
    assert len(launched) == 4 - len(first)  # only the remaining runs ran
    final = _finished(tmp_path / "runs")
    assert len(final) == 4 and set(first) <= set(final)


def _lr_sweep(tmp_path, lrs: str):
    """A one-epoch MLP VAE sweep over the learning rates `lrs` (an lr of 1e6 diverges), run."""
    y = tmp_path / "lr.yaml"
    y.write_text(SWEEP4.replace("latent_dim: {values: [4, 8]}", f"lr: {{values: [{lrs}]}}")
                 .replace("seed: {values: [0, 1]}", "seed: {value: 0}").replace("linear_ae", "mlp_vae") % 1)
    return run_cli([y, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 300], cwd=tmp_path,
                   script="bench.sweep")


def test_failing_run_is_recorded_and_sweep_goes_on(tmp_path):
    p = _lr_sweep(tmp_path, "1.0e6, 1.0e-3")
    assert p.returncode == 1
    assert "failed" in p.stdout and "finished" in p.stdout
    failed_line = next(line for line in p.stdout.splitlines() if line.startswith("[") and " failed " in line)
    log = failed_line.split("  log: ")[1]
    assert "non-finite loss" in (tmp_path / log).read_text()  # the line names the run's log
    from analysis.load import load_local
    f = load_local(str(tmp_path / "runs"))
    assert sorted(f["status"]) == ["failed", "finished"]


def test_a_sweep_whose_every_run_fails_for_one_reason_says_it_once_on_its_closing_line(tmp_path):
    p = _lr_sweep(tmp_path, "1.0e6, 9.0e5")
    assert p.returncode == 1
    closing = p.stdout.strip().splitlines()[-1]
    assert "2 failed" in closing and "every run failed: " in closing and "non-finite loss" in closing, p.stdout


def test_ctrl_c_on_a_local_sweep_says_that_the_same_command_resumes_it(tmp_path):
    y = tmp_path / "long.yaml"
    y.write_text(SWEEP4 % 400)
    args = [str(y), "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", "300"]
    proc = subprocess.Popen(with_sigint_ignored([sys.executable, "-m", "bench.sweep", *args]), cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list((tmp_path / "runs" / "s4").glob("*/summary.json")):  # a run has started
        assert proc.poll() is None and time.time() - t0 < hang_guard(300), proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=hang_guard(300))
    assert proc.returncode == 130, out + err
    closing = out.strip().splitlines()[-1]
    assert "the same command resumes it" in closing and f"python -m bench.sweep {y}" in closing, out


def test_a_sweep_without_its_data_is_refused_before_its_first_run(tmp_path):
    y = tmp_path / "fm.yaml"
    y.write_text(SWEEP4.replace("synthetic", "fashion_mnist") % 1)
    p = run_cli([y, "--runs-dir", "runs", "--data-root", tmp_path / "nowhere"], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "FashionMNIST" in lines[0], p.stderr
    assert not (tmp_path / "runs").exists()  # no run was started, no folder written


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
def test_bad_sweeps_exit_2_with_one_line(tmp_path, capsys, text, needle):
    from bench.sweep.command import main

    y = tmp_path / "bad.yaml"
    y.write_text(text)
    code, lines = refusal(main, [y, "--dry-run"], capsys)
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines


def test_packed_workers_give_the_runs_of_one_by_one(tmp_path):
    """`--workers auto` packs runs onto the cores (one thread each here) and changes nothing
    they compute: the final losses equal those of the same runs one by one."""
    y = tmp_path / "s2.yaml"
    y.write_text(SWEEP4.replace("seed: {values: [0, 1]}", "seed: {value: 0}") % 2)
    finals = {}
    for workers in ("1", "auto"):
        runs = tmp_path / f"runs-{workers}"
        p = run_cli([y, "--workers", workers, "--runs-dir", runs, "--wandb", "disabled", "--limit-train", 300],
                    cwd=tmp_path, script="bench.sweep")
        assert p.returncode == 0, p.stdout + p.stderr
        from analysis.load import load_local
        f = load_local(str(runs))
        finals[workers] = {r["latent_dim"]: r["history"][-1]["val/loss"] for _, r in f.iterrows()}
    cores = os.cpu_count() or 1
    assert f"{min(cores, 8)} worker(s) x 1 thread(s)" in p.stdout
    assert finals["1"].keys() == finals["auto"].keys() == {4, 8}
    for k, v in finals["1"].items():
        assert finals["auto"][k] == pytest.approx(v, rel=1e-5), (k, v, finals["auto"][k])


def test_a_copy_without_run_py_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """A plain `pip install .` copies the library without run.py: the runner says so."""
    import bench.sweep.agent as agent
    from bench.sweep.command import main

    monkeypatch.setattr(agent, "ROOT", tmp_path)
    with pytest.raises(SystemExit) as e:
        main([str(ROOT / "sweeps" / "latent_dims.yaml"), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "pip install -e ." in err[0]


def test_grid_plan_is_what_the_engine_proposes():
    """The plan of a grid (one pass over the combinations) holds exactly the configurations
    W&B's own engine proposes one after another, for every shipped grid."""
    from bench.sweep.plan import plan, propose

    for path in YAMLS:
        cfg = load_sweep(str(path))
        if cfg["method"] != "grid":
            continue
        proposed = []
        while (p := propose(cfg, [(q, None) for q in proposed], None)) is not None:
            proposed.append(p)
        as_set = lambda runs: sorted(json.dumps(r, sort_keys=True) for r in runs)  # noqa: E731
        assert as_set(plan(cfg, None)) == as_set(proposed), path.name
    big = {"method": "grid", "parameters": {k: {"values": list(range(10))} for k in ("a", "b", "c", "d")}}
    assert len({json.dumps(r, sort_keys=True) for r in plan(big, None)}) == 10 ** 4


def test_a_grid_over_a_range_is_refused(tmp_path):
    y = tmp_path / "g.yaml"
    y.write_text("program: run.py\nmethod: grid\nparameters:\n  lr: {min: 0.001, max: 0.01}\n")
    with pytest.raises(UsageError, match="method grid needs a list of values for 'lr'"):
        load_sweep(str(y))


def test_a_run_made_with_other_runner_flags_is_not_counted_as_done(tmp_path):
    """Rerunning a sweep with a flag that changes results (--limit-train 600 after 300) runs
    every configuration again; the same flags again find them finished."""
    y = tmp_path / "s.yaml"
    y.write_text(SWEEP4.replace("latent_dim: {values: [4, 8]}", "latent_dim: {value: 4}")
                 .replace("seed: {values: [0, 1]}", "seed: {value: 0}") % 1)

    def sweep(limit):
        p = run_cli([y, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", limit], cwd=tmp_path,
                    script="bench.sweep")
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "0 finished already" in sweep(300)
    out = sweep(600)
    assert "0 finished already" in out and "1 finished run(s) in the folder were made with other runner flags" in out
    assert "1 finished already" in sweep(600)
    from bench.records.store import list_runs
    runs = [r.read_summary() for r in list_runs(str(tmp_path / "runs" / "s4"))]
    assert sorted(r["n_train"] + r["n_val"] for r in runs) == [300, 600]
    assert sorted(json.loads(r["sweep_fixed"])["limit_train"] for r in runs) == [300, 600]


def _lambda_sweep(root, mse):
    """A finished sparse-AE lambda sweep, as the runner records it (no training)."""
    from conftest import fake_runs

    folder = root / "lam"
    fake_runs(folder, [({"model": "sparse_ae", "seed": s, "l1_lambda": lam},
                        {"val/mse": m + s / 1000, "model": "sparse_ae",
                         "sweep_params": json.dumps({"l1_lambda": lam, "model": "sparse_ae", "seed": s}, sort_keys=True)})
                       for lam, m in mse.items() for s in (0, 1)])
    (folder / "sweep.yaml").write_text("name: lam\nmethod: grid\nmetric: {name: val/mse, goal: minimize}\n"
                                       "parameters:\n  l1_lambda: {values: [1.0e-5, 1.0e-3, 1.0e-1]}\n")


@pytest.mark.parametrize("within,chosen", [(0, "1e-05"), (10, "0.001"), (60, "0.1")])
def test_from_best_carries_the_chosen_value_to_the_models_that_sweep_trained(tmp_path, capsys, within, chosen):
    from bench.sweep.command import main as sweep_main

    _lambda_sweep(tmp_path / "runs", {1e-5: 0.100, 1e-3: 0.108, 1e-1: 0.150})
    y = tmp_path / "cmp.yaml"
    y.write_text("name: cmp\nmethod: grid\nmetric: {name: val/mse, goal: minimize}\n"
                 "parameters:\n  model: {values: [ae, sparse_ae]}\n  epochs: {value: 1}\n")
    assert sweep_main([str(y), "--dry-run", "--runs-dir", str(tmp_path / "runs"), "--from-best", "lam",
                       "--within", str(within)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"sweep cmp: carrying l1_lambda={chosen} from sweep lam"), out[0]
    assert "over 2 seed(s), 3 configurations compared (for sparse_ae)" in out[0]
    ae, sparse = (line for line in out if "--model=" in line)
    assert "--l1-lambda" not in ae and f"--l1-lambda={chosen} " in sparse, sparse


def test_task_c_converts_task_b_best_pair_for_both_the_vae_and_the_plain_ae(tmp_path, capsys):
    """The shipped task-c sweep sets mlp_dims itself, so --from-best replaces it for every model
    of that sweep: the VAE and its plain-AE twin both get task b's best (h, z)."""
    from conftest import fake_runs

    from bench.sweep.command import main as sweep_main

    folder = tmp_path / "runs" / "fashion_vae_dims"
    fake_runs(folder, [({"model": "mlp_vae", "seed": 0, "mlp_dims": dims},
                        {"val/loss": loss, "model": "mlp_vae",
                         "sweep_params": json.dumps({"mlp_dims": dims, "model": "mlp_vae", "seed": 0}, sort_keys=True)})
                       for dims, loss in (([400, 50], 250.0), ([300, 5], 240.0), ([400, 10], 260.0))])
    (folder / "sweep.yaml").write_text((ROOT / "sweeps" / "fashion_vae_dims.yaml").read_text())
    assert sweep_main([str(ROOT / "sweeps" / "fashion_vae_best_ae.yaml"), "--dry-run", "--runs-dir",
                       str(tmp_path / "runs"), "--from-best", "fashion_vae_dims"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sweep fashion_vae_best_ae: carrying mlp_dims=[300, 5] from sweep fashion_vae_dims")
    assert out[0].endswith("(for mlp_ae, mlp_vae)"), out[0]
    lines = [line for line in out if "--model=" in line]
    assert len(lines) == 6 and {m for line in lines for m in ("mlp_vae", "mlp_ae") if f"--model={m} " in line} == \
        {"mlp_vae", "mlp_ae"}
    assert all(line.count("mlp") == 2 and "'--mlp_dims=[300, 5]'" in line for line in lines), lines[0]
    assert not any("400" in line for line in lines)


def test_from_best_of_a_sweep_not_run_is_one_line(tmp_path, capsys):
    from bench.sweep.command import main as sweep_main

    y = tmp_path / "cmp.yaml"
    y.write_text("name: cmp\nmethod: grid\nparameters:\n  model: {values: [ae, sparse_ae]}\n")
    with pytest.raises(SystemExit) as e:
        sweep_main([str(y), "--dry-run", "--runs-dir", str(tmp_path / "runs"), "--from-best", "lam"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "no sweep lam" in err[0] and "sweeps/lam.yaml" in err[0]


def test_a_large_grid_says_its_size_before_it_plans(tmp_path):
    y = tmp_path / "big.yaml"
    y.write_text("name: big\nprogram: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\nparameters:\n"
                 "  model: {value: mlp_vae}\n  dataset: {value: synthetic}\n  epochs: {value: 1}\n"
                 f"  seed: {{values: [{', '.join(map(str, range(100)))}]}}\n"
                 f"  latent_dim: {{values: [{', '.join(map(str, range(1, 101)))}]}}\n")
    p = run_cli([y, "--dry-run"], cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("sweep big: a grid of 10,000 configurations, 10,000 runs"), lines[0]
    assert lines[-1] == "10000 runs" and len(lines) == 10_002
    p = run_cli([y, "--count", 1, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 64, "--limit-test", 32],
                cwd=tmp_path, script="bench.sweep")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("sweep big: a grid of 10,000 configurations; --count 1 makes the first 1")
    assert "1 finished" in p.stdout.splitlines()[-1]


def test_the_sweep_line_of_a_collapsed_run_carries_the_flag(tmp_path):
    """The runner's line per run names a collapse in the words the run itself used."""
    from conftest import fake_runs

    from bench.records.store import list_runs
    from bench.sweep.plan import collapse_note

    fake_runs(tmp_path, [({"model": "ae", "seed": 0}, {"warning/output_collapsed": True}),
                         ({"model": "vae", "seed": 0}, {"warning/output_collapsed": False,
                                                        "collapse/posterior_collapse": True}),
                         ({"model": "sparse_ae", "seed": 0}, {"collapse/active_units": 0})])
    notes = {r.read_config()["model"]: collapse_note(r.read_summary()) for r in list_runs(str(tmp_path))}
    assert notes == {"ae": "COLLAPSED", "vae": "POSTERIOR COLLAPSE", "sparse_ae": None}


def test_the_sweep_console_relays_its_runs_long_one_off_work(tmp_path, capsys):
    """Progress lines in a running run's log (a feature network, a UMAP compile, a wait on a
    cache lock) reach the sweep's console once each, named by the run; other lines (a tool's
    steps, which every run has, included) do not,
    and a line still being written waits for its end."""
    from bench.core.progress import progress
    from bench.sweep import relay

    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        running = {1: ({"model": "vae", "dataset": "mnist", "seed": 2}, None, log, 0.0, 0)}
        with contextlib.redirect_stdout(log):
            progress("sample: training feature network seed 0 once for this dataset (epoch 2 of 3, about 9 s left)")
            print("epoch 1/1  train/loss 0.1  val/loss 0.1")
            progress("denoise: 500 test images at sigma 0.1 (step 2 of 4, about 10 s left)")  # every run's: not relayed
            print("  sample: training feature net", end="")  # a line still being written
        log.flush()
        relay._next[0] = 0.0
        relay.wait(running, seconds=0)
        log.write("work seed 1 ...\n")
        log.flush()
        relay._next[0] = 0.0
        relay.wait(running, seconds=0)
    out = capsys.readouterr().out.splitlines()
    assert out == ["  [model=vae seed=2] sample: training feature network seed 0 once for this dataset "
                   "(epoch 2 of 3, about 9 s left) ...",
                   "  [model=vae seed=2] sample: training feature network seed 1 ..."], out


@pytest.mark.slow(reason="trains the sample score's three feature networks on a cold cache")
def test_a_sweep_on_a_cold_cache_says_what_its_runs_are_making(tmp_path):
    y = tmp_path / "cold.yaml"
    y.write_text("name: cold\nprogram: run.py\nmethod: grid\nmetric: {name: val/loss, goal: minimize}\nparameters:\n"
                 "  model: {value: ae}\n  dataset: {value: synthetic_rgb}\n  epochs: {value: 1}\n"
                 "  eval: {value: [sample]}\n  seed: {values: [0, 1]}\n")
    p = run_cli([y, "--runs-dir", "runs", "--wandb", "disabled", "--limit-train", 200, "--limit-test", 64,
                 "--workers", 2], cwd=tmp_path, script="bench.sweep", env={"AEBENCH_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(re.search(r"\[model=ae epochs=1 seed=\d\] sample: training feature network seed 2 .*s left\) \.\.\.$",
                         line) for line in lines), p.stdout
    from bench.records.store import list_runs
    spent = [r.read_summary()["time/one_off_seconds"] for r in list_runs(str(tmp_path / "runs" / "cold"))]
    assert len(spent) == 2 and max(spent) > 1.0  # the networks' training is recorded as one-off work


def test_the_time_left_leaves_out_one_off_work_of_runs_finished_since_the_start(tmp_path):
    from conftest import fake_runs

    from bench.sweep import relay

    fake_runs(tmp_path, [({"model": "ae", "seed": s}, {"finished_at": t, "time/one_off_seconds": spent})
                         for s, (t, spent) in enumerate(((100.0, 60.0), (200.0, 0.5), (300.0, 30.0)))])
    assert relay.one_off_since(tmp_path, 150.0) == 30.5
    assert relay.one_off_since(tmp_path, 0.0) == 90.5
