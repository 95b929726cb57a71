"""Bad input across run.py, the sweep runner and analysis: exit 2, one line naming the
problem and what is valid, no traceback, and no run left marked finished."""
import json

import pytest

from bench.store import list_runs
from conftest import quick, run_cli, run_inproc


def _bad_config(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: [ae\n")
    return p


def _unknown_key_config(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"modle": "ae"}))
    return p


def _stopped_run(tmp_path):
    """A run that was stopped after 1 epoch, for the resume cases."""
    assert run_inproc(quick(tmp_path, epochs=1)) == 0
    run = list_runs(str(tmp_path / "runs"))[0]
    run.update_summary(status="interrupted")
    return run.id


RUN_CASES = [
    ("unknown model", lambda t: ["--model", "resnet"], "unknown model 'resnet'"),
    ("unknown dataset", lambda t: ["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    ("negative epochs", lambda t: ["--epochs", "-1"], "--epochs"),
    ("epochs not an int", lambda t: ["--epochs", "ten"], "expected an integer"),
    ("lr not a number", lambda t: ["--lr=fast"], "expected a finite number"),
    ("zero learning rate", lambda t: ["--lr", "0"], "out of range"),
    ("sigma out of range", lambda t: ["--model", "dae", "--noise-std", "3"], "--noise-std"),
    ("negative sigma", lambda t: ["--noise_std=-0.1"], "out of range"),
    ("mask ratio 1", lambda t: ["--model", "mcae", "--mask-ratio", "1.0"], "--mask-ratio"),
    ("negative lambda", lambda t: ["--model", "sparse_ae", "--l1-lambda", "-1e-3"], "--l1-lambda"),
    ("latent size 0", lambda t: ["--latent-dim", "0"], "--latent-dim"),
    ("dropout 1", lambda t: ["--model", "dropout_ae", "--dropout", "1"], "--dropout"),
    ("unknown noise type", lambda t: ["--noise-type", "pink"], "valid: gaussian, dropout, salt_pepper"),
    ("bad boolean", lambda t: ["--batchnorm=maybe"], "true/false"),
    ("unknown flag", lambda t: ["--nois-std", "0.1"], "did you mean --noise-std"),
    ("impossible architecture", lambda t: ["--channels", "8,8,8,8,8,8"], "at most"),
    ("pool_ae too small", lambda t: ["--model", "pool_ae", "--image-size", "16"], "image_size >= 20"),
    ("over parameter budget", lambda t: ["--max-params", "1000"], "over --max-params"),
    ("empty dataset", lambda t: ["--limit-train", "0"], "--limit-train"),
    ("too few images to split", lambda t: ["--limit-train", "1"], "none for training"),
    ("unreadable config", lambda t: ["--config", t / "missing.yaml"], "cannot read"),
    ("malformed config", lambda t: ["--config", _bad_config(t)], "not valid YAML"),
    ("unknown config key", lambda t: ["--config", _unknown_key_config(t)], "unknown key 'modle'"),
    ("missing data offline", lambda t: ["--dataset", "mnist", "--data-root", t / "nodata"], "place them in"),
    ("classifier on masks", lambda t: ["--model", "cnn_classifier", "--dataset", "synthetic_seg"], "needs a dataset"),
    ("wrong task", lambda t: ["--task", "segment"], "--task segment"),
    ("cuda absent", lambda t: ["--device", "cuda"], "no CUDA device"),
    ("unknown eval tool", lambda t: ["--eval", "probe,magic"], "unknown evaluation 'magic'"),
    ("resume of nothing", lambda t: ["--resume", "no-such-run"], "no run 'no-such-run'"),
    ("resume with other config", lambda t: ["--resume", _stopped_run(t), "--lr", "0.5"], "differs"),
    ("mlp dims too short", lambda t: ["--model", "mlp_vae", "--mlp-dims", "400"], "--mlp-dims"),
    ("bad color mode", lambda t: ["--color-mode", "rainbow"], "valid: class, random"),
]


def _base(tmp_path):
    return ["--model", "ae", "--dataset", "synthetic", "--epochs", 1, "--runs-dir", tmp_path / "runs",
            "--wandb", "disabled", "--limit-train", 200]


@pytest.mark.parametrize("name,make,needle", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_py_refuses(tmp_path, capsys, name, make, needle):
    extra = make(tmp_path)
    before = {r.id for r in list_runs(str(tmp_path / "runs"))}
    code = run_inproc(_base(tmp_path) + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0], err[0]
    assert {r.id for r in list_runs(str(tmp_path / "runs"))} == before  # no run created


def test_a_real_process_exits_2_with_one_line(tmp_path):
    p = run_cli(["--model", "nope"], cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "valid: ae," in p.stderr


OTHER_CASES = [
    ("bench.sweep", ["does/not/exist.yaml", "--dry-run"], "cannot read sweep file"),
    ("bench.sweep", ["sweeps/fashion_vae_dims.yaml", "--dry-run", "--epochs", "0"], "--epochs"),
    ("bench.sweep", ["sweeps/fashion_vae_dims.yaml", "--workers", "0"], "--workers"),
    ("analysis.tables", ["--runs", "nowhere"], "no runs found"),
    ("analysis.tables", ["--format", "pdf"], "invalid choice"),
    ("analysis.report", ["--runs", "nowhere"], "no runs found"),
    ("bench.evaluate", ["no-such-run"], "no run 'no-such-run'"),
]


@pytest.mark.parametrize("module,args,needle", OTHER_CASES, ids=[f"{c[0]}-{c[2]}" for c in OTHER_CASES])
def test_other_entry_points_refuse(tmp_path, module, args, needle):
    from conftest import ROOT
    p = run_cli(args, cwd=ROOT if module == "bench.sweep" else tmp_path, script=module)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
